package steps

import (
	"context"
	"fmt"
	"path/filepath"
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
		Version: "1",
		Config:  map[string]string{"mode": s.B.EmuMode, "cases": fmt.Sprint(len(smoke.Suite()))},
		Inputs:  []string{s.Kernel.Out.Runner},
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
	results := smoke.Run(ctx, execFor(sc, nil), runnerFor(s.Kernel), filepath.Join(sc.BuildDir, "smoke"),
		s.B.Seed, cases, s.B.EmuMode, logEnv(sc, s.B.RunID), func(i int, c smoke.Case) {
			sc.Progress(fmt.Sprintf("case %d/%d %s", i+1, len(cases), c.Name()))
		})
	if ctx.Err() != nil {
		return Result{}, ctx.Err()
	}
	s.Out = SmokeOut{Seed: s.B.Seed, Cases: len(results), RunID: s.B.RunID}
	fwd := checks.Check{ID: "forward", Title: "Forward (O, L) vs float64", Status: checks.Pass}
	bwd := checks.Check{ID: "backward", Title: "Backward (dQ, dK, dV) vs float64", Status: checks.Pass}
	criteria := fmt.Sprintf("criteria: ‖out−ref‖/‖ref‖ ≤ %.0e (float32), ≤ %.0e (float16); seed %d",
		reference.Float32RelTol, reference.Float16RelTol, s.B.Seed)
	// The worst case per dtype and half: each dtype has its own criterion.
	type worst struct {
		err  float64
		name string
	}
	worstF := map[npy.DType]*worst{npy.Float32: {}, npy.Float16: {}}
	worstB := map[npy.DType]*worst{npy.Float32: {}, npy.Float16: {}}
	for _, r := range results {
		s.Out.FWD += r.Dispatches["fwd"]
		s.Out.BWD += r.Dispatches["bwd"]
		name := r.Case.Name()
		fmt.Fprintf(sc.Log, "%-36s o %.2e lse %.2e dq %.2e dk %.2e dv %.2e %s\n", name,
			r.Errors["o"], r.Errors["lse"], r.Errors["dq"], r.Errors["dk"], r.Errors["dv"], r.Elapsed.Round(time.Millisecond))
		if r.Err != nil {
			msg := fmt.Sprintf("%s: runner failed: %v", name, r.Err)
			fwd.Status, bwd.Status = checks.Fail, checks.Fail
			fwd.Evidence = append(fwd.Evidence, msg)
			bwd.Evidence = append(bwd.Evidence, msg)
			continue
		}
		if w := worstF[r.Case.DType]; max(r.Errors["o"], r.Errors["lse"]) >= w.err {
			w.err, w.name = max(r.Errors["o"], r.Errors["lse"]), name
		}
		if w := worstB[r.Case.DType]; max(r.Errors["dq"], r.Errors["dk"], r.Errors["dv"]) >= w.err {
			w.err, w.name = max(r.Errors["dq"], r.Errors["dk"], r.Errors["dv"]), name
		}
		line := fmt.Sprintf("%s: O %.1e  L %.1e", name, r.Errors["o"], r.Errors["lse"])
		if !r.ForwardOK() {
			fwd.Status = checks.Fail
			fwd.Evidence = append(fwd.Evidence, line+"  FAIL "+strings.Join(only(r.Failures, "o", "lse"), "; "))
		} else {
			fwd.Evidence = append(fwd.Evidence, line)
		}
		line = fmt.Sprintf("%s: dQ %.1e  dK %.1e  dV %.1e", name, r.Errors["dq"], r.Errors["dk"], r.Errors["dv"])
		if !r.BackwardOK() {
			bwd.Status = checks.Fail
			bwd.Evidence = append(bwd.Evidence, line+"  FAIL "+strings.Join(only(r.Failures, "dq", "dk", "dv"), "; "))
		} else {
			bwd.Evidence = append(bwd.Evidence, line)
		}
	}
	// Lead with the summary, so a one-line rendering says the most.
	summary := func(w map[npy.DType]*worst) string {
		return fmt.Sprintf("%d cases; worst f32 %.1e (%s), f16 %.1e (%s)", len(results),
			w[npy.Float32].err, w[npy.Float32].name, w[npy.Float16].err, w[npy.Float16].name)
	}
	fwd.Evidence = append([]string{summary(worstF), criteria}, fwd.Evidence...)
	bwd.Evidence = append([]string{summary(worstB), criteria}, bwd.Evidence...)
	if fwd.Status == checks.Fail || bwd.Status == checks.Fail {
		hint := fmt.Sprintf("replay these inputs with 'orchard rebuild --seed %d'; per-case figures are in %s", s.B.Seed,
			filepath.Join(sc.BuildDir, "logs", "steps", "smoke.log"))
		fwd.Hint, bwd.Hint = hint, hint
	}
	return Result{Checks: []checks.Check{fwd, bwd},
		Detail: fmt.Sprintf("%d cases in %s, seed %d", len(results), time.Since(start).Round(100*time.Millisecond), s.B.Seed)}, nil
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
