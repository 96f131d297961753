package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/steps"
)

func plainRenderer(w *bytes.Buffer) *lipgloss.Renderer {
	r := lipgloss.NewRenderer(w)
	r.SetColorProfile(termenv.Ascii)
	return r
}

func TestProgressPlainLines(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b, false, false, plainRenderer(&b))
	p.Event(steps.Event{Kind: steps.EventStarted, Step: "kernel"})
	for _, m := range []string{"cmake configure", "[ 10%] Building CXX object a.o", "[ 50%] Building CXX object b.o", "[100%] Linking"} {
		p.Event(steps.Event{Kind: steps.EventProgress, Step: "kernel", Message: m})
	}
	p.Event(steps.Event{Kind: steps.EventFinished, Step: "kernel", Summary: checks.StepSummary{Name: "kernel", Status: checks.Pass, DurationMS: 1500, Detail: "built orchard-runner-emu"}})
	p.Event(steps.Event{Kind: steps.EventFinished, Step: "smoke", Summary: checks.StepSummary{Name: "smoke", Status: checks.Skip, Detail: "not run: kernel failed"}})
	p.Close()
	got := b.String()
	want := "==> kernel\n    cmake configure\n    [ 50%] Building CXX object b.o\n    [100%] Linking\n" +
		"✓ kernel             1.5s  built orchard-runner-emu\n" +
		"- smoke                    not run: kernel failed\n"
	if got != want {
		t.Fatalf("plain progress:\n got %q\nwant %q", got, want)
	}
	if strings.Contains(got, "\x1b") || strings.Contains(got, "\r") {
		t.Fatal("plain progress has terminal control sequences")
	}
}

func TestProgressLiveRedrawsOneLine(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b, true, false, plainRenderer(&b))
	p.Event(steps.Event{Kind: steps.EventStarted, Step: "smoke"})
	p.Event(steps.Event{Kind: steps.EventProgress, Step: "smoke", Message: "case 3/44 f32-full-b2h3-4x4-d1"})
	time.Sleep(250 * time.Millisecond) // the spinner ticks every 100 ms
	p.Event(steps.Event{Kind: steps.EventFinished, Step: "smoke", Summary: checks.StepSummary{Name: "smoke", Status: checks.Fail, DurationMS: 300}})
	p.Close()
	got := b.String()
	if strings.Count(got, "\r\x1b[2K") < 3 || !strings.Contains(got, "case 3/44") {
		t.Fatalf("live progress did not redraw in place: %q", got)
	}
	if !strings.Contains(got, "\r\x1b[2K✗ smoke") || !strings.Contains(got, "300ms\n") {
		t.Fatalf("final line: %q", got)
	}
}

func TestProgressGitHubGroupsStepLog(t *testing.T) {
	var b bytes.Buffer
	log := filepath.Join(t.TempDir(), "kernel.log")
	os.WriteFile(log, []byte("$ cmake --build\n[100%] Linking\n"), 0o644)
	p := newProgress(&b, false, true, plainRenderer(&b))
	p.Event(steps.Event{Kind: steps.EventFinished, Step: "kernel", Summary: checks.StepSummary{Name: "kernel", Status: checks.Pass, Log: log}})
	p.Event(steps.Event{Kind: steps.EventFinished, Step: "shaders", Summary: checks.StepSummary{Name: "shaders", Status: checks.Pass, Cached: true, Log: log}})
	got := b.String()
	if !strings.Contains(got, "::group::kernel output\n$ cmake --build\n[100%] Linking\n::endgroup::") {
		t.Fatalf("github group: %q", got)
	}
	if strings.Count(got, "::group::") != 1 {
		t.Fatalf("a cached step's old log was grouped too: %q", got)
	}
}

func TestMilestonesThinCaseCounters(t *testing.T) {
	var kept []int
	for i := 1; i <= 44; i++ {
		if isMilestone(fmt.Sprintf("case %d/44 f32-full-b1h1-1x1-d1", i)) {
			kept = append(kept, i)
		}
	}
	if want := []int{1, 11, 22, 33, 44}; !slices.Equal(kept, want) {
		t.Errorf("case milestones = %v, want %v", kept, want)
	}
	for _, msg := range []string{"cmake configure", "[ 50%] Building CXX object x.o", "compiling 2 kernel files for emu"} {
		if !isMilestone(msg) {
			t.Errorf("%q should be printed", msg)
		}
	}
	if isMilestone("[ 42%] Building CXX object x.o") {
		t.Error("[ 42%] should not be printed")
	}
}
