package checks

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEscapeGitHub(t *testing.T) {
	tests := map[string]struct{ in, data, prop string }{
		"plain":    {"abc", "abc", "abc"},
		"percent":  {"100%", "100%25", "100%25"},
		"newlines": {"a\r\nb\nc", "a%0D%0Ab%0Ac", "a%0D%0Ab%0Ac"},
		"colon":    {"a:b", "a:b", "a%3Ab"},
		"comma":    {"a,b", "a,b", "a%2Cb"},
		// % is escaped first, so an escape in the input is not decoded later.
		"already escaped": {"%0A", "%250A", "%250A"},
	}
	for name, tt := range tests {
		if got := escapeData(tt.in); got != tt.data {
			t.Errorf("%s: escapeData(%q) = %q, want %q", name, tt.in, got, tt.data)
		}
		if got := escapeProperty(tt.in); got != tt.prop {
			t.Errorf("%s: escapeProperty(%q) = %q, want %q", name, tt.in, got, tt.prop)
		}
	}
}

func TestGitHubAnnotations(t *testing.T) {
	r := sampleReport()
	r.Checks = append(r.Checks, Check{ID: "odd:id,1", Title: "t", Status: Fail, File: "a,b.metal"})
	var b bytes.Buffer
	if err := WriteGitHubAnnotations(&b, r); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	var errs, warns int
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "::error "):
			errs++
		case strings.HasPrefix(l, "::warning "):
			warns++
		default:
			t.Errorf("a line is not a workflow command (a newline leaked?): %q", l)
		}
	}
	if errs != 3 || warns != 1 {
		t.Errorf("got %d errors and %d warnings, want 3 and 1:\n%s", errs, warns, b.String())
	}
	for _, want := range []string{
		"::error file=metalkern/runtime/kernels/attn_fwd.metal,line=42,title=shaders.compile::Kernels compile%0A",
		"100%25 of rows differ: check the causal mask, alignment: bottom-right,%0Athen rerun",
		"::error file=a%2Cb.metal,title=odd%3Aid%2C1::t\n", // no line without one
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("annotations lack %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "metal.device") || strings.Contains(b.String(), "toolchain.cmake") {
		t.Errorf("skips and passes must not be annotated:\n%s", b.String())
	}
}

func TestGitHubGroup(t *testing.T) {
	var b bytes.Buffer
	boom := errors.New("boom")
	err := GitHubGroup(&b, "build\nlog", func() error {
		b.WriteString("inside\n")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want the body's error", err)
	}
	if want := "::group::build%0Alog\ninside\n::endgroup::\n"; b.String() != want {
		t.Errorf("got %q, want %q (the group must close even when the body fails)", b.String(), want)
	}
}

func TestAppendGitHubSummary(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "step_summary.md")
	if err := os.WriteFile(path, []byte("earlier step\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := AppendGitHubSummary(path, sampleReport()); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "earlier step\n### orchard verify") || strings.Count(string(data), "### orchard verify") != 2 {
		t.Errorf("not appended:\n%s", data)
	}
	if err := AppendGitHubSummary("", sampleReport()); err != nil {
		t.Errorf("an empty path (not in Actions) should be a no-op, got %v", err)
	}
	if err := AppendGitHubSummary(filepath.Join(dir, "missing", "x.md"), sampleReport()); err == nil {
		t.Error("want an error for an unwritable path")
	}
}

// A nearly full summary file, or a huge report, never pushes the file past
// GitHub's 1 MiB; what is left out is said.
func TestAppendGitHubSummaryCap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.md")
	big := sampleReport()
	for i := 0; i < 3000; i++ {
		big.Checks = append(big.Checks, Check{ID: "bulk", Title: "bulk", Status: Fail,
			Evidence: []string{strings.Repeat("x", 10_000)}, Hint: "h"})
	}
	if err := AppendGitHubSummary(path, big); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if len(data) > StepSummaryLimit {
		t.Errorf("wrote %d bytes, limit %d", len(data), StepSummaryLimit)
	}
	if !strings.Contains(string(data), "rows and the fixes left out") || !strings.Contains(string(data), "`toolchain.cmake`") {
		t.Errorf("want the first rows and a note:\n%.300s … %s", data, data[max(0, len(data)-200):])
	}

	full := filepath.Join(t.TempDir(), "full.md")
	if err := os.WriteFile(full, bytes.Repeat([]byte("x"), StepSummaryLimit-50), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := AppendGitHubSummary(full, sampleReport()); err == nil {
		t.Error("want an error when the file has no room left")
	}
	if fi, _ := os.Stat(full); fi.Size() != StepSummaryLimit-50 {
		t.Errorf("a full file grew to %d", fi.Size())
	}
}
