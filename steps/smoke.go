package steps

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/orchardkit/orchard/metalkern/npy"
	"github.com/orchardkit/orchard/metalkern/reference"
	"github.com/orchardkit/orchard/metalkern/smoke"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/logs"
)

// SmokeOut is the smoke step's typed output.
type SmokeOut struct {
	Seed  uint64 `json:"seed"`
	Cases int    `json:"cases"`
	// Dispatches the runner reported (one log line each), for the log inspection.
	FWD int `json:"fwd"`
	BWD int `json:"bwd"`
	// Storage is the dispatches (FWD+BWD) per storage mode: the log
	// inspection expects as many lines with each storage= value.
	Storage map[string]int `json:"storage"`
	// RunID tagged the runner's log lines.
	RunID string `json:"run_id"`
}

// SmokeStep runs the built-in suite (smoke.Suite) through the
// runner against the float64 reference and reports two checks: forward
// (O, L) and backward (dQ, dK, dV), with each case's figures as evidence.
type SmokeStep struct {
	B      *Build
	Kernel *KernelStep
	// Cached: a rebuild may reuse a verdict for the same runner binary;
	// verify never does (the engine's NoCache).
	Out SmokeOut
}

func (s *SmokeStep) Name() string  { return "smoke" }
func (s *SmokeStep) Title() string { return "Smoke forward/backward" }
func (s *SmokeStep) Output() any   { return &s.Out }

// CheckIDs: the forward and the backward verdicts.
func (s *SmokeStep) CheckIDs(string) []string { return []string{"forward", "backward"} }

// Key: the runner binary (and metallib), the suite, the mode; the seed
// only when the user chose one (fresh inputs otherwise).
func (s *SmokeStep) Key(sc *Context) (KeyInputs, error) {
	k := KeyInputs{
		Version: "3",
		Config:  map[string]string{"mode": s.B.EmuMode, "cases": fmt.Sprint(len(smoke.Suite())), "validate": fmt.Sprint(s.B.Validate)},
		// The split cap and the device choice change what the runner does.
		Env:    []string{"ORCHARD_DISPATCH_GROUPS", "ORCHARD_METAL_DEVICE"},
		Inputs: []string{s.Kernel.Out.Runner},
	}
	if s.Kernel.Out.Metallib != "" {
		k.Inputs = append(k.Inputs, s.Kernel.Out.Metallib)
	}
	if s.B.SeedSet {
		k.Config["seed"] = fmt.Sprint(s.B.Seed)
	}
	return k, nil
}

func (s *SmokeStep) Run(ctx context.Context, sc *Context) (Result, error) {
	cases := smoke.Suite()
	fmt.Fprintf(sc.Log, "seed %d (replay with --seed %d)\n", s.B.Seed, s.B.Seed)
	start := time.Now()
	dir := filepath.Join(sc.BuildDir, "smoke")
	// A run killed half-way leaves its case dirs; nothing in them is reused.
	if err := os.RemoveAll(dir); err != nil {
		return Result{}, fmt.Errorf("clear %s: %w", dir, err)
	}
	env, watchdog := runnerEnv(sc, s.B)
	results := smoke.Run(ctx, execFor(sc, s.B, nil), runnerFor(s.Kernel), dir,
		s.B.Seed, cases, s.B.EmuMode, env, func(i int, c smoke.Case) {
			sc.Progress(fmt.Sprintf("case %d/%d %s", i+1, len(cases), c.Name()))
		})
	if ctx.Err() != nil {
		return Result{}, ctx.Err()
	}
	s.Out = SmokeOut{Seed: s.B.Seed, Cases: len(results), RunID: s.B.RunID, Storage: map[string]int{}}
	logPath := filepath.Join(sc.BuildDir, "logs", "steps", "smoke.log")
	fwd := checks.Check{ID: "forward", Title: "Forward (O, L) vs float64", Status: checks.Pass}
	bwd := checks.Check{ID: "backward", Title: "Backward (dQ, dK, dV) vs float64", Status: checks.Pass}
	criteria := fmt.Sprintf("criteria: ‖out−ref‖/‖ref‖ ≤ %.0e (float32), ≤ %.0e (float16); seed %d",
		reference.Float32RelTol, reference.Float16RelTol, s.B.Seed)
	half := func(c *checks.Check, outputs []string, ok func(smoke.CaseResult) bool) (failing []smoke.CaseResult, worst map[npy.DType]smoke.CaseResult) {
		worst = map[npy.DType]smoke.CaseResult{}
		for _, r := range results {
			if r.Err != nil {
				continue
			}
			if w, seen := worst[r.Case.DType]; !seen || r.Badness(outputs...) >= w.Badness(outputs...) {
				worst[r.Case.DType] = r
			}
			if !ok(r) {
				failing = append(failing, r)
			}
		}
		sort.SliceStable(failing, func(i, j int) bool { return failing[i].Badness(outputs...) > failing[j].Badness(outputs...) })
		if len(failing) > 0 {
			c.Status = checks.Fail
		}
		return failing, worst
	}
	fwdOut, bwdOut := []string{"o", "lse"}, []string{"dq", "dk", "dv"}
	fwdFail, fwdWorst := half(&fwd, fwdOut, smoke.CaseResult.ForwardOK)
	bwdFail, bwdWorst := half(&bwd, bwdOut, smoke.CaseResult.BackwardOK)

	failed := 0
	for _, r := range results {
		s.Out.FWD += r.Dispatches["fwd"]
		s.Out.BWD += r.Dispatches["bwd"]
		if n := r.Dispatches["fwd"] + r.Dispatches["bwd"]; n > 0 {
			s.Out.Storage[r.Case.StorageName()] += n
		}
		if r.Err == nil && (!r.ForwardOK() || !r.BackwardOK()) {
			failed++
		}
		fmt.Fprintln(sc.Log, caseLogLine(r))
	}

	// The worst case per dtype and half: each dtype has its own criterion.
	compared := 0 // cases the runner finished (a failed runner call is not one)
	for _, r := range results {
		if r.Err == nil {
			compared++
		}
	}
	summary := func(worst map[npy.DType]smoke.CaseResult, outputs []string, nfail int) string {
		head := fmt.Sprintf("%d cases", compared)
		if nfail > 0 {
			head = fmt.Sprintf("%d of %d cases failed", nfail, compared)
		}
		fig := func(dt npy.DType) string {
			r, ok := worst[dt]
			if !ok {
				return "-"
			}
			return worstFigure(r, outputs) + " (" + r.Case.Name() + ")"
		}
		return fmt.Sprintf("%s; worst f32 %s, f16 %s", head, fig(npy.Float32), fig(npy.Float16))
	}
	evidence := func(failing []smoke.CaseResult, line func(smoke.CaseResult) string) []string {
		var ev []string
		shown := failing
		if sc.Verbose {
			shown = results
		}
		if len(shown) > maxCaseLines && !sc.Verbose {
			shown = shown[:maxCaseLines]
		}
		for _, r := range shown {
			if r.Err == nil {
				ev = append(ev, line(r))
			}
		}
		switch more := len(failing) - len(shown); {
		case more > 0:
			ev = append(ev, fmt.Sprintf("%d more in %s", more, logPath))
		case !sc.Verbose:
			ev = append(ev, "per-case figures in "+logPath)
		}
		return ev
	}
	fwd.Evidence = append([]string{summary(fwdWorst, fwdOut, len(fwdFail)), criteria}, evidence(fwdFail, func(r smoke.CaseResult) string {
		return caseLine(r, fwdOut, map[string]string{"o": "O", "lse": "L"}, r.ForwardOK())
	})...)
	bwd.Evidence = append([]string{summary(bwdWorst, bwdOut, len(bwdFail)), criteria}, evidence(bwdFail, func(r smoke.CaseResult) string {
		return caseLine(r, bwdOut, map[string]string{"dq": "dQ", "dk": "dK", "dv": "dV"}, r.BackwardOK())
	})...)
	detail := fmt.Sprintf("%d cases in %s, seed %d", len(results), time.Since(start).Round(100*time.Millisecond), s.B.Seed)
	if failed > 0 {
		detail = fmt.Sprintf("%d of %d cases failed, seed %d", failed, len(cases), s.B.Seed)
	}
	if fwd.Status == checks.Fail || bwd.Status == checks.Fail {
		hint := fmt.Sprintf("replay these inputs with '%s'; per-case figures are in %s", s.B.Rerun("rebuild", seedFlag(s.B)...), logPath)
		fwd.Hint, bwd.Hint = hint, hint
	}

	// The runner itself failed: that case stopped the suite.
	if n := len(results); n > 0 && results[n-1].Err != nil {
		r := results[n-1]
		f := describeRunnerFailure(r.Err, s.B, sc, watchdog)
		ev := []string{fmt.Sprintf("case %d of %d (%s): %s", n, len(cases), r.Case.Name(), f.Summary)}
		for _, l := range f.Tail {
			ev = append(ev, "  stderr: "+l)
		}
		ev = append(ev, fmt.Sprintf("%d cases after it not run", len(cases)-n))
		for _, c := range []*checks.Check{&fwd, &bwd} {
			c.Status = checks.Fail
			if compared == 0 { // no figures to show: just the failure
				c.Evidence = append(append([]string{}, ev...), "per-case log: "+logPath)
			} else {
				c.Evidence = append(append([]string{}, ev...), c.Evidence...)
			}
			c.Hint = f.Hint
		}
		fmt.Fprintf(sc.Log, "# stopped: %s; %d cases not run\n", f.Summary, len(cases)-n)
		detail = fmt.Sprintf("the runner failed at case %d of %d (%s); %d not run", n, len(cases), r.Case.Name(), len(cases)-n)
	}
	return Result{Checks: []checks.Check{fwd, bwd}, Detail: detail}, nil
}

// maxCaseLines is how many failing cases a check's evidence lists (the
// worst first); the rest are in the step log.
const maxCaseLines = 5

// caseLine is one case's figures for the named outputs, with FAIL and the
// reasons when it failed.
func caseLine(r smoke.CaseResult, outputs []string, labels map[string]string, ok bool) string {
	parts := []string{caseLabel(r.Case) + ":"}
	for _, o := range outputs {
		parts = append(parts, labels[o]+" "+r.Figure(o))
	}
	line := strings.Join(parts, "  ")
	if !ok {
		line += "  FAIL " + strings.Join(only(r.Failures, outputs...), "; ")
	}
	return line
}

// caseLabel is the case's name and its storage mode:
// "f32-full-b2h3-1x1-d1 [private]".
func caseLabel(c smoke.Case) string {
	l := c.Name() + " [" + c.StorageName() + "]"
	if c.BufferOffset != 0 {
		l += fmt.Sprintf(" [offset %d]", c.BufferOffset)
	}
	return l
}

// caseLogLine is a case's line in smoke.log: every figure, the time, and
// ok, FAIL with the reasons, or the runner's failure.
func caseLogLine(r smoke.CaseResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-46s", caseLabel(r.Case))
	for _, o := range smoke.Outputs {
		fmt.Fprintf(&b, " %s %s", o, r.Figure(o))
	}
	fmt.Fprintf(&b, " %s", r.Elapsed.Round(time.Millisecond))
	switch {
	case r.Err != nil:
		fmt.Fprintf(&b, "  FAIL runner: %v", r.Err)
	case len(r.Failures) > 0:
		fmt.Fprintf(&b, "  FAIL %s", strings.Join(r.Failures, "; "))
	default:
		b.WriteString("  ok")
	}
	return b.String()
}

// worstFigure is the figure of r's worst output among outputs.
func worstFigure(r smoke.CaseResult, outputs []string) string {
	worst := outputs[0]
	for _, o := range outputs {
		if r.Badness(o) > r.Badness(worst) {
			worst = o
		}
	}
	return r.Figure(worst)
}

// seedFlag is --seed N for a hint, unless the user's flags already carry it.
func seedFlag(b *Build) []string {
	for _, f := range b.RerunFlags {
		if f == "--seed" || strings.HasPrefix(f, "--seed ") || strings.HasPrefix(f, "--seed=") {
			return nil
		}
	}
	return []string{"--seed", fmt.Sprint(b.Seed)}
}

// emuWatchdogEnv is the emu's hang detector (emu_backend.cpp).
const emuWatchdogEnv = "ORCHARD_EMU_WATCHDOG_SECONDS"

// runnerEnv is the environment of the smoke's runner calls: the log
// switches, and on emu a watchdog well inside the runner timeout (unless
// the user set one), which it returns (0: not set by orchard).
func runnerEnv(sc *Context, b *Build) ([]string, int) {
	env := logEnv(sc, b.RunID)
	if sc.Backend != BackendEmu {
		return env, 0
	}
	if v := sc.Getenv(emuWatchdogEnv); v != "" {
		n, _ := strconv.Atoi(v)
		return env, n
	}
	w := watchdogFor(b.runnerTimeout())
	return append(env, fmt.Sprintf("%s=%d", emuWatchdogEnv, w)), w
}

// logEnv switches the runner's logs on for this run, at the paths the log
// inspection reads (ORCHARD_KERNEL_LOG and ORCHARD_TENSOR_PROFILE_LOG, when
// the user set them, are honoured).
func logEnv(sc *Context, runID string) []string {
	return []string{
		logs.EnvDebugFlashAttn + "=1",
		logs.EnvTensorProfile + "=1",
		logs.EnvKernelLog + "=" + logs.KernelLogPath(sc.BuildDir, sc.Getenv),
		logs.EnvTensorProfileLog + "=" + logs.ProfileLogPath(sc.BuildDir, sc.Getenv),
		logs.EnvRunID + "=" + runID,
	}
}

// only keeps the failures about the named outputs.
func only(fs []string, outputs ...string) []string {
	var out []string
	for _, f := range fs {
		for _, o := range outputs {
			if strings.HasPrefix(f, o+":") {
				out = append(out, f)
			}
		}
	}
	return out
}
