package steps

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/orchardkit/orchard/checks"
)

// A step blocked by an earlier failure reports every id it declares as
// skipped, so the checklist has the ids a passing run has.
func TestBlockedStepsReportTheirDeclaredIDs(t *testing.T) {
	te := newTestEnv(t)
	te.step.fail = true
	smoke := &SmokeStep{}
	pipeline := []Step{te.step, &KernelStep{}, smoke, &LogInspectStep{Smoke: smoke}}
	r, err := New(Options{BuildDir: filepath.Join(te.dir, "build"), Backend: "emu"}).Run(context.Background(), pipeline)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range r.Checks {
		ids = append(ids, c.ID)
		if c.ID != "copy" && (c.Status != checks.Skip || len(c.Evidence) == 0 || c.Evidence[0] != "not run: copy failed" || c.Step == "") {
			t.Errorf("blocked check %+v", c)
		}
	}
	want := []string{"copy", "kernel", "forward", "backward", "kernel-calls-logged", "logs-clean", "on-accelerator"}
	if !slices.Equal(ids, want) {
		t.Fatalf("ids %v, want %v", ids, want)
	}
	AttributeChecks(pipeline, "emu", r.Checks)
	if r.Checks[0].Step != "copy" || r.Checks[3].Step != "smoke" || r.Checks[6].Step != "logs" {
		t.Fatalf("attribution: %+v", r.Checks)
	}
}

func TestToolchainDeclaresItsProbes(t *testing.T) {
	linux := &ToolchainStep{Prober: &Prober{GOOS: "linux"}}
	if got := linux.CheckIDs("emu"); !slices.Equal(got, []string{ProbeOS, ProbeCMake, ProbeCXX}) {
		t.Errorf("linux emu: %v", got)
	}
	mac := &ToolchainStep{Prober: &Prober{GOOS: "darwin"}}
	if got := mac.CheckIDs("emu"); !slices.Contains(got, ProbeMetal) || slices.Contains(got, ProbeGPU) {
		t.Errorf("mac emu: %v", got)
	}
	if got := mac.CheckIDs("metal"); len(got) != 8 {
		t.Errorf("mac metal: %v", got)
	}
}

// A cached step says when the run that produced it ran.
func TestCachedStepSaysWhen(t *testing.T) {
	te := newTestEnv(t)
	before := time.Now().UTC().Add(-time.Second)
	te.run(t, false)
	s := te.run(t, false)
	if !s.Cached {
		t.Fatalf("second run not cached: %+v", s)
	}
	at, err := time.Parse(time.RFC3339, s.CachedAt)
	if err != nil || at.Before(before.Truncate(time.Second)) || at.After(time.Now().UTC()) {
		t.Fatalf("cached_at %q (%v)", s.CachedAt, err)
	}
}
