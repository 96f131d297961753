package checks

import (
	"bytes"
	"errors"
	"fmt"
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
	if err := WriteGitHubAnnotations(&b, r, ""); err != nil {
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
	if !strings.Contains(string(data), "rows and the fixes left out") || !strings.Contains(string(data), "`shaders.compile`") {
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

// Four compiler diagnostics are four annotations, each at its own file,
// line and column (made relative to the workspace), with its own message.
func TestGitHubOneAnnotationPerDiagnostic(t *testing.T) {
	ws := "/home/runner/work/proj"
	r := &Report{Command: "rebuild", BuildDir: "/tmp/b", Checks: []Check{
		{ID: "toolchain.cmake", Status: Pass, Evidence: []string{"cmake 3.25"}},
		{ID: "shaders", Title: "Shaders compile", Status: Fail, Hint: "fix the error at the .metal line above",
			File: ws + "/rt/kernels/attn_fwd.metal", Line: 42,
			Evidence: []string{strings.Repeat("long evidence ", 100)},
			Locations: []Location{
				{File: ws + "/rt/kernels/attn_fwd.metal", Line: 42, Col: 7, Message: "'simd_maxx' was not declared"},
				{File: ws + "/rt/kernels/attn_fwd.metal", Line: 61, Col: 12, Message: "expected ';' before 'return'"},
				{File: "metalkern/runtime/include/softmax.h", Line: 9, Col: 1, Message: "expected '}'"},
				{File: ws + "/rt/kernels/attn_bwd.metal", Line: 7, Message: "no column"},
			}},
	}}
	var b bytes.Buffer
	if err := WriteGitHubAnnotations(&b, r, ws); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"::error file=rt/kernels/attn_fwd.metal,line=42,col=7,title=shaders::'simd_maxx' was not declared%0Afix: fix the error at the .metal line above",
		"::error file=rt/kernels/attn_fwd.metal,line=61,col=12,title=shaders::expected ';' before 'return'%0Afix: fix the error at the .metal line above",
		"::error file=metalkern/runtime/include/softmax.h,line=9,col=1,title=shaders::expected '}'%0Afix: fix the error at the .metal line above",
		"::error file=rt/kernels/attn_bwd.metal,line=7,title=shaders::no column%0Afix: fix the error at the .metal line above",
	}
	if got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("annotations:\n%s\nwant:\n%s", b.String(), strings.Join(want, "\n"))
	}
}

// A failure with kilobytes of evidence is annotated in at most 1 KB, its fix
// kept, the rest pointed to the job summary; build-dir paths read
// <build-dir>/….
func TestGitHubAnnotationsAreShort(t *testing.T) {
	var ev []string
	for i := range 120 {
		ev = append(ev, fmt.Sprintf("case %03d: O 3.1e-02  L 1.0e-03  FAIL o: 3.1e-02 > 1e-05", i))
	}
	r := &Report{BuildDir: "/tmp/b", Checks: []Check{{ID: "forward", Title: "Forward", Status: Fail, Evidence: ev,
		Hint: "replay with --seed 7; per-case figures are in /tmp/b/logs/steps/smoke.log"}}}
	var b bytes.Buffer
	if err := WriteGitHubAnnotations(&b, r, ""); err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSuffix(b.String(), "\n")
	msg := line[strings.Index(line, "::forward::")+len("::forward::"):]
	if len(msg) > MaxAnnotation || strings.Contains(line, "\n") {
		t.Fatalf("message is %d bytes (max %d)", len(msg), MaxAnnotation)
	}
	for _, want := range []string{"case 000", "more in the job summary", "fix: replay with --seed 7; per-case figures are in <build-dir>/logs/steps/smoke.log"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
}

// The summary lists failures first, passes on one line, and says how to
// keep the logs.
func TestGitHubSummaryFailuresFirst(t *testing.T) {
	r := &Report{Command: "rebuild", BuildDir: "/tmp/b", Checks: []Check{
		{ID: "toolchain.cmake", Status: Pass, Evidence: []string{"cmake 3.25"}},
		{ID: "forward", Status: Pass, Evidence: []string{"44 cases; worst 1e-7", "case 1", "case 2", "case 3"}},
		{ID: "backward", Status: Fail, Evidence: []string{"2 of 44 failed", "case 9: FAIL"}},
		{ID: "races", Status: Skip, Evidence: []string{"emu only"}},
	}}
	md := summaryMarkdown(r, StepSummaryLimit)
	var rows []string
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(l, "| ") && !strings.HasPrefix(l, "| |") && !strings.HasPrefix(l, "| ---") {
			rows = append(rows, l)
		}
	}
	if len(rows) != 4 || !strings.Contains(rows[0], "`backward`") || !strings.Contains(rows[0], "2 of 44 failed<br>case 9: FAIL") ||
		!strings.Contains(rows[1], "`races`") {
		t.Fatalf("rows:\n%s", strings.Join(rows, "\n"))
	}
	if !strings.Contains(rows[3], "44 cases; worst 1e-7 · case 1 · case 2 · (1 more; in the JSON report) |") || strings.Contains(rows[3], "<br>") {
		t.Errorf("a pass is one line: %s", rows[3])
	}
	if !strings.Contains(md, "path: /tmp/b/logs") || !strings.Contains(md, "actions/upload-artifact") {
		t.Errorf("no artifact note:\n%s", md)
	}
}
