package steps

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/metalkern"
)

// faultRig is one ejected runtime and one build dir, built with the real
// cmake and compiler, into which each fault is edited in turn (and edited
// out again): after the first full build every fault costs only the
// incremental rebuild of the edited file.
type faultRig struct {
	t        *testing.T
	rt, dir  string
	original map[string]string
	b        *Build
}

// testLogf is the running fault test's t.Logf.
var testLogf = func(string, ...any) {}

func newFaultRig(t *testing.T) *faultRig {
	t.Helper()
	testLogf = t.Logf
	t.Cleanup(func() { testLogf = func(string, ...any) {} })
	if testing.Short() {
		t.Skip("builds an ejected runtime (-short)")
	}
	rt := filepath.Join(t.TempDir(), "runtime")
	if _, err := metalkern.Embedded().Eject(rt, false); err != nil {
		t.Fatal(err)
	}
	src, err := metalkern.FromDir(rt)
	if err != nil {
		t.Fatal(err)
	}
	r := &faultRig{t: t, rt: rt, dir: filepath.Join(t.TempDir(), "build"), original: map[string]string{}}
	r.b = &Build{Source: src, Toolchain: &ToolchainStep{Prober: NewProber(r.getenv)}, Seed: 7, SeedSet: true,
		EmuMode: "fibers", RunID: "faults-1",
		// As the cmd side fills them: the hints must repeat them.
		RerunFlags: []string{"--runtime " + rt, "--build-dir " + r.dir}}
	return r
}

// getenv hides the user's ORCHARD_* settings (log paths, watchdog).
func (r *faultRig) getenv(k string) string {
	if strings.HasPrefix(k, "ORCHARD_") {
		return ""
	}
	return os.Getenv(k)
}

// edit replaces old with new in the runtime file rel (once; it must occur).
func (r *faultRig) edit(rel, old, new string) {
	r.t.Helper()
	p := filepath.Join(r.rt, rel)
	b, err := os.ReadFile(p)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, ok := r.original[rel]; !ok {
		r.original[rel] = string(b)
	}
	if !strings.Contains(string(b), old) {
		r.t.Fatalf("%s: anchor %q not found", rel, old)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// revert restores every edited file.
func (r *faultRig) revert() {
	for rel, s := range r.original {
		if err := os.WriteFile(filepath.Join(r.rt, rel), []byte(s), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.original = map[string]string{}
}

// run runs the rebuild pipeline up to the smoke step.
func (r *faultRig) run(runnerTimeout time.Duration) (*Run, string) {
	r.t.Helper()
	r.b.RunnerTimeout = runnerTimeout
	shaders := &ShadersStep{B: r.b}
	kernel := &KernelStep{B: r.b, Shaders: shaders}
	e := New(Options{BuildDir: r.dir, Backend: BackendEmu, Getenv: r.getenv})
	run, err := e.Run(context.Background(), []Step{r.b.Toolchain, shaders, kernel,
		&RuntimeLoadsStep{B: r.b, Shaders: shaders, Kernel: kernel}, &SmokeStep{B: r.b, Kernel: kernel}})
	if err != nil {
		r.t.Fatal(err)
	}
	for _, s := range run.Steps[:3] {
		if s.Status != checks.Pass {
			r.t.Fatalf("step %s: %s %s\n%+v", s.Name, s.Status, s.Detail, run.Checks)
		}
	}
	log, _ := os.ReadFile(filepath.Join(r.dir, "logs", "steps", "smoke.log"))
	return run, string(log)
}

func check(run *Run, id string) checks.Check {
	for _, c := range run.Checks {
		if c.ID == id {
			if c.Status == checks.Fail {
				testLogf("%s: %s\n  %s\n  fix: %s", id, c.Status, strings.Join(c.Evidence, "\n  "), c.Hint)
			}
			return c
		}
	}
	return checks.Check{ID: id, Status: "absent"}
}

func step(run *Run, name string) checks.StepSummary {
	for _, s := range run.Steps {
		if s.Name == name {
			return s
		}
	}
	return checks.StepSummary{Name: name, Status: "absent"}
}

func wantAll(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

// TestRunnerFaultsEndFastAndSpeak edits real faults into an ejected
// runtime: a hanging host, a crashing runner, a misspelt host_name, a
// hanging kernel and a kernel that writes NaN. Each ends at the first case
// (one runner call, not 44) with how the runner ended, the end of its
// stderr and a fix that keeps the user's --runtime and --build-dir; the
// NaN is named with its index while every case still runs.
func TestRunnerFaultsEndFastAndSpeak(t *testing.T) {
	r := newFaultRig(t)
	keepsFlags := []string{"--runtime " + r.rt, "--build-dir " + r.dir}

	t.Run("hanging host", func(t *testing.T) {
		r.edit("host/runner.cpp", "#include <chrono>\n", "#include <chrono>\n#include <thread>\n")
		r.edit("host/runner.cpp", "int cmd_run(const Args& a) {\n",
			"int cmd_run(const Args& a) {\n  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));  // fault\n")
		run, log := r.run(3 * time.Second)
		f, b := check(run, "forward"), check(run, "backward")
		if f.Status != checks.Fail || b.Status != checks.Fail {
			t.Fatalf("forward %s, backward %s", f.Status, b.Status)
		}
		ev := strings.Join(f.Evidence, "\n")
		wantAll(t, "evidence", ev, "case 1 of 44", "timed out after 3s and was killed", "43 cases after it not run")
		wantAll(t, "hint", f.Hint, "did not finish within 3s", "--runner-timeout 12s", "host code")
		wantAll(t, "hint", f.Hint, keepsFlags...)
		wantAll(t, "step detail", step(run, "smoke").Detail, "failed at case 1 of 44")
		if n := strings.Count(log, "$ "); n != 1 {
			t.Errorf("%d runner calls after a hang, want 1:\n%s", n, log)
		}
	})

	t.Run("crashing runner", func(t *testing.T) {
		r.edit("host/runner.cpp", "  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));  // fault\n",
			"  std::fprintf(stderr, \"inputs read\\n\");\n  std::fprintf(stderr, \"about to crash in cmd_run\\n\");\n  std::abort();  // fault\n")
		run, log := r.run(time.Minute)
		f := check(run, "forward")
		ev := strings.Join(f.Evidence, "\n")
		wantAll(t, "evidence", ev, "case 1 of 44", "killed by SIGABRT (aborted): about to crash in cmd_run", "stderr: inputs read", "43 cases after it not run")
		if strings.Contains(ev, "stderr: about to crash") {
			t.Errorf("the runner's last line is quoted twice:\n%s", ev)
		}
		wantAll(t, "hint", f.Hint, "crashed (SIGABRT)", "core", "smoke.log")
		wantAll(t, "hint", f.Hint, keepsFlags...)
		if c := check(run, "runtime-loads"); c.Status != checks.Pass {
			t.Errorf("runtime-loads: %+v", c)
		}
		if n := strings.Count(log, "$ "); n != 1 {
			t.Errorf("%d runner calls after a crash, want 1", n)
		}
		wantAll(t, "smoke.log", log, "FAIL runner:", "# stopped:")
	})
	r.revert()

	t.Run("misspelt host_name", func(t *testing.T) {
		r.edit("kernels/attn_fwd.metal", `host_name("attn_fwd_f16_bq32_bk32_bd64")`, `host_name("attn_fwd_f16_bq32_bk32_bd46")`)
		run, _ := r.run(time.Minute)
		c := check(run, "runtime-loads")
		if c.Status != checks.Fail {
			t.Fatalf("runtime-loads passed with a misspelt host_name: %+v", c)
		}
		ev := strings.Join(c.Evidence, "\n")
		wantAll(t, "evidence", ev, "the host dispatches but the runner lacks: attn_fwd_f16_bq32_bk32_bd64",
			"the host never dispatches: attn_fwd_f16_bq32_bk32_bd46")
		wantAll(t, "hint", c.Hint, "host_name", "select.h")
		wantAll(t, "hint", c.Hint, keepsFlags...)
	})
	r.revert()

	t.Run("hanging kernel", func(t *testing.T) {
		r.edit("kernels/attn_fwd.metal", "    const float lsum = row_sum(l[r]);\n",
			"    while (true) {\n    }  // fault\n    const float lsum = row_sum(l[r]);\n")
		run, log := r.run(8 * time.Second) // the emu watchdog: 2 s
		f := check(run, "forward")
		ev := strings.Join(f.Evidence, "\n")
		wantAll(t, "evidence", ev, "case 1 of 44", "exited with status 1", "no progress for 2 s", "43 cases after it not run")
		wantAll(t, "hint", f.Hint, "emu watchdog", "after 2s", "ORCHARD_EMU_WATCHDOG_SECONDS", "--runner-timeout 32s")
		wantAll(t, "hint", f.Hint, keepsFlags...)
		if n := strings.Count(log, "$ "); n != 1 {
			t.Errorf("%d runner calls after a hang, want 1", n)
		}
	})
	r.revert()

	t.Run("NaN output", func(t *testing.T) {
		r.edit("kernels/attn_fwd.metal", "lse[bh * p.Nq + qrow] = lsum > 0.0f ?", "lse[bh * p.Nq + qrow] = qrow == 3 ? NAN : lsum > 0.0f ?")
		run, log := r.run(time.Minute)
		f := check(run, "forward")
		if f.Status != checks.Fail {
			t.Fatalf("forward: %+v", f)
		}
		ev := strings.Join(f.Evidence, "\n")
		// Every case has a row 3 but the 1x1, 4x4 ... ones: 1×1 and the
		// others with Nq <= 3 pass.
		wantAll(t, "evidence", ev, "cases failed; worst f32 NaN at [0,0,3] (", "L NaN at [0,0,3]  FAIL lse: NaN at [0,0,3] (the first non-finite element",
			"more in "+filepath.Join(r.dir, "logs", "steps", "smoke.log"))
		if strings.Contains(ev, "0.0e+00") {
			t.Errorf("a NaN shows as an error of 0:\n%s", ev)
		}
		if strings.Count(ev, "FAIL") != maxCaseLines {
			t.Errorf("want the %d worst cases in the evidence:\n%s", maxCaseLines, ev)
		}
		wantAll(t, "hint", f.Hint, "--seed 7", "smoke.log")
		wantAll(t, "hint", f.Hint, keepsFlags...)
		wantAll(t, "step detail", step(run, "smoke").Detail, "of 44 cases failed")
		if n := strings.Count(log, "$ "); n != 44 {
			t.Errorf("a numeric failure ran %d cases, want all 44", n)
		}
		wantAll(t, "smoke.log", log, "FAIL lse: NaN at [")
	})
}
