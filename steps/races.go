package steps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/orchardkit/orchard/metalkern/smoke"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/metalkern"
)

// RacesStep runs a few small cases on the ThreadSanitizer build of the emu
// runner (threads mode: one OS thread per GPU thread). A data race — say, a
// missing threadgroup_barrier — fails the check with the .metal line.
type RacesStep struct {
	B      *Build
	Kernel *KernelStep
}

func (s *RacesStep) Name() string  { return "races" }
func (s *RacesStep) Title() string { return "No data races (ThreadSanitizer)" }

// CheckIDs: one item for all the race cases.
func (s *RacesStep) CheckIDs(string) []string { return []string{"races"} }

// A TSan frame that points into a kernel source: "#0 attn_fwd<…> /x/attn_fwd.metal:123:9 (…)".
var tsanFrameRE = regexp.MustCompile(`#\d+ (.*) (\S+\.(?:metal|h)):(\d+)`)

func (s *RacesStep) Run(ctx context.Context, sc *Context) (Result, error) {
	if sc.Backend != BackendEmu || s.Kernel.Out.TSanRunner == "" {
		return Result{}, Skip("ThreadSanitizer runs on the emu backend only")
	}
	var out strings.Builder
	onLine := func(l string) { out.WriteString(l + "\n") }
	r := metalkern.Runner{Path: s.Kernel.Out.TSanRunner}
	cases := smoke.RaceSuite()
	c := checks.Check{ID: "races", Title: s.Title(), Status: checks.Pass}
	dir := filepath.Join(sc.BuildDir, "races")
	// A run killed half-way leaves its case dirs; nothing in them is reused.
	if err := os.RemoveAll(dir); err != nil {
		return Result{}, fmt.Errorf("clear %s: %w", dir, err)
	}
	watchdog := watchdogFor(s.B.runnerTimeout())
	env := []string{"TSAN_OPTIONS=halt_on_error=1 exitcode=66 second_deadlock_stack=1"}
	if v := sc.Getenv(emuWatchdogEnv); v != "" {
		watchdog, _ = strconv.Atoi(v)
	} else {
		env = append(env, fmt.Sprintf("%s=%d", emuWatchdogEnv, watchdog))
	}
	raced := false
	for i, k := range cases {
		sc.Progress(fmt.Sprintf("case %d/%d %s under TSan", i+1, len(cases), k.Name()))
		res := smoke.Run(ctx, execForEnv(sc, s.B, onLine, env...), r, dir, s.B.Seed, []smoke.Case{k}, "threads", nil, nil)
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		if len(res) != 1 || res[0].Err == nil {
			c.Evidence = append(c.Evidence, k.Name()+": clean")
			continue
		}
		c.Status = checks.Fail
		var ee *ExecError
		if errors.As(res[0].Err, &ee) && ee.ExitCode == 66 {
			c.Evidence = append(c.Evidence, k.Name()+": ThreadSanitizer reported a data race")
			raced = true
			break
		}
		// The runner itself failed: stop here, as the smoke step does.
		f := describeRunnerFailure(res[0].Err, s.B, sc, watchdog)
		c.Evidence = append(c.Evidence, fmt.Sprintf("case %d of %d (%s): %s", i+1, len(cases), k.Name(), f.Summary))
		for _, l := range f.Tail {
			c.Evidence = append(c.Evidence, "  stderr: "+l)
		}
		if n := len(cases) - i - 1; n > 0 {
			c.Evidence = append(c.Evidence, fmt.Sprintf("%d cases after it not run", n))
		}
		c.Hint = f.Hint
		break
	}
	if raced {
		report := out.String()
		c.Evidence = append(c.Evidence, tsanSummary(report, &c)...)
		c.Hint = "a threadgroup_barrier(mem_flags::mem_threadgroup) is probably missing between the write and the read above; after the fix, rerun '" +
			s.B.Rerun("rebuild", "--race") + "'"
	}
	return Result{Checks: []checks.Check{c}, Detail: fmt.Sprintf("%d cases under ThreadSanitizer", len(cases))}, nil
}

// tsanSummary picks the race's kind and the kernel source lines involved
// (frames in the shim and the C++ library are left out) and points the check
// at the first .metal line.
func tsanSummary(report string, c *checks.Check) []string {
	var ev []string
	seen := map[string]bool{}
	for _, line := range strings.Split(report, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "WARNING: ThreadSanitizer:") {
			if !seen[t] {
				ev = append(ev, strings.TrimSpace(strings.Split(t, "(pid=")[0]))
				seen[t] = true
			}
			continue
		}
		m := tsanFrameRE.FindStringSubmatch(t)
		if m == nil || !kernelSource(m[2]) {
			continue
		}
		loc := m[2] + ":" + m[3]
		if seen[loc] {
			continue
		}
		seen[loc] = true
		fn, _, _ := strings.Cut(m[1], "<")
		fn, _, _ = strings.Cut(fn, "(")
		if f := strings.Fields(fn); len(f) > 0 {
			fn = f[len(f)-1]
		}
		ev = append(ev, "at "+loc+" in "+fn)
		if c.File == "" && strings.HasSuffix(m[2], ".metal") {
			c.File = m[2]
			c.Line, _ = strconv.Atoi(m[3])
		}
		if len(ev) >= 8 {
			break
		}
	}
	return ev
}

// kernelSource: a .metal file or a header beside the kernels, not the emu
// shim or the C++ library.
func kernelSource(path string) bool {
	return strings.HasSuffix(path, ".metal") || filepath.Base(filepath.Dir(path)) == "kernels"
}
