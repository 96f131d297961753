package logs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/orchardkit/orchard/checks"
)

// runLines writes the lines a run of nf forward and nb backward calls
// leaves, in the grammar, with extra lines appended.
func runLines(run, backend string, nf, nb int, extra ...string) string {
	tag := TagEmu
	if backend == "metal" {
		tag = TagMetal
	}
	var b strings.Builder
	for i := 1; i <= nf; i++ {
		b.WriteString(Format(Line{Tag: tag, Word: WordFWD, Call: i, Run: run, Backend: backend,
			Shape: Shape{1, 2, 64, 64, 64}, DType: "f32", Causal: Bool(false), Storage: "shared", DurUS: 10}) + "\n")
	}
	for i := 1; i <= nb; i++ {
		b.WriteString(Format(Line{Tag: tag, Word: WordBWD, Call: i, Run: run, Backend: backend}) + "\n")
	}
	for _, e := range extra {
		b.WriteString(e + "\n")
	}
	return b.String()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func statuses(cs []checks.Check) map[string]checks.Status {
	m := map[string]checks.Status{}
	for _, c := range cs {
		m[c.ID] = c.Status
	}
	return m
}

func wantStatuses(t *testing.T, cs []checks.Check, want map[string]checks.Status) {
	t.Helper()
	if got := statuses(cs); fmt.Sprint(got) != fmt.Sprint(want) {
		for _, c := range cs {
			t.Logf("%s %s %q hint=%q", c.ID, c.Status, c.Evidence, c.Hint)
		}
		t.Fatalf("statuses = %v, want %v", got, want)
	}
}

var allPass = map[string]checks.Status{CheckKernelCalls: checks.Pass, CheckLogsClean: checks.Pass, CheckOnAccelerator: checks.Pass}

func TestStaleLogDoesNotChangeTheVerdict(t *testing.T) {
	path := filepath.Join(t.TempDir(), KernelLogName)
	// An old run left many calls, an error and a fallback on another backend.
	stale := runLines("old-run", "metal", 50, 50,
		`[flashattn.mm] ERROR run=old-run backend=metal msg="dispatch failed"`,
		`[flashattn.mm] FALLBACK run=old-run backend=metal msg="cpu"`,
		`[flashattn.mm] FWD call=1`, // the seed format: no run at all
		`garbage that is not a log line`)
	writeFile(t, path, stale+runLines("new-run", "emu", 2, 2))

	cs := CheckRun(path, "new-run", 2, 2, "emu")
	wantStatuses(t, cs, allPass)
	if ev := strings.Join(cs[0].Evidence, "\n"); !strings.Contains(ev, "FWD lines: 2 (expected 2)") ||
		!strings.Contains(ev, "104 lines of other runs ignored") {
		t.Errorf("evidence: %s", ev)
	}
	// The same stale log with a new run that is missing a call fails.
	writeFile(t, path, stale+runLines("new-run", "emu", 2, 1))
	wantStatuses(t, CheckRun(path, "new-run", 2, 2, "emu"), map[string]checks.Status{
		CheckKernelCalls: checks.Fail, CheckLogsClean: checks.Pass, CheckOnAccelerator: checks.Pass})
}

func TestRunErrorsAndFallbacksAreQuoted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	errLine := `[flashattn.mm] ERROR run=r2 backend=metal op=bwd msg="pipeline \"x\" failed"`
	fbLine := `[flashattn.mm] FALLBACK run=r2 backend=metal op=fwd msg="head dim 96"`
	writeFile(t, path, runLines("r2", "metal", 1, 1, errLine, fbLine))
	cs := CheckRun(path, "r2", 1, 1, "metal")
	wantStatuses(t, cs, map[string]checks.Status{
		CheckKernelCalls: checks.Pass, CheckLogsClean: checks.Fail, CheckOnAccelerator: checks.Fail})
	ev := strings.Join(cs[1].Evidence, "\n")
	if !strings.Contains(ev, fmt.Sprintf("ERROR: %q", errLine)) || !strings.Contains(ev, fmt.Sprintf("FALLBACK: %q", fbLine)) {
		t.Errorf("logs-clean evidence does not quote the lines:\n%s", ev)
	}
}

func TestBackendMismatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	writeFile(t, path, runLines("r", "emu", 1, 1))
	cs := CheckRun(path, "r", 1, 1, "metal")
	wantStatuses(t, cs, map[string]checks.Status{
		CheckKernelCalls: checks.Pass, CheckLogsClean: checks.Pass, CheckOnAccelerator: checks.Fail})
	if !strings.Contains(cs[2].Hint, "ran on emu, not metal") {
		t.Errorf("hint = %q", cs[2].Hint)
	}
	// Two backends in one run also fail.
	writeFile(t, path, runLines("r", "emu", 1, 0)+runLines("r", "metal", 0, 1))
	wantStatuses(t, CheckRun(path, "r", 1, 1, "metal"), map[string]checks.Status{
		CheckKernelCalls: checks.Pass, CheckLogsClean: checks.Pass, CheckOnAccelerator: checks.Fail})
}

func TestMissingLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.log")
	cs := CheckRun(path, "r", 1, 1, "emu")
	wantStatuses(t, cs, map[string]checks.Status{
		CheckKernelCalls: checks.Fail, CheckLogsClean: checks.Skip, CheckOnAccelerator: checks.Skip})
	if !strings.Contains(cs[0].Hint, "ORCHARD_DEBUG_FLASH_ATN=1") {
		t.Errorf("hint = %q", cs[0].Hint)
	}
	if _, err := Inspect(path, "r"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Inspect err = %v, want fs.ErrNotExist", err)
	}
}

func TestRotatedSiblingReadFirst(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "k.log")
	writeFile(t, path+".1", runLines("r", "emu", 2, 0))
	writeFile(t, path, runLines("r", "emu", 1, 3))
	s, err := Inspect(path, "r")
	if err != nil {
		t.Fatal(err)
	}
	if s.FWD != 3 || s.BWD != 3 || strings.Join(s.Files, ",") != path+".1,"+path {
		t.Errorf("got FWD %d BWD %d files %v", s.FWD, s.BWD, s.Files)
	}
	// path.1 as a hard link to path (same inode) is read once.
	os.Remove(path + ".1")
	if err := os.Link(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if s, _ := Inspect(path, "r"); s.FWD != 1 || len(s.Files) != 1 {
		t.Errorf("hard link read twice: FWD %d files %v", s.FWD, s.Files)
	}
}

func TestPartialMalformedAndLongLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	long := `[flashattn.emu] FWD run=r msg="` + strings.Repeat("x", 2<<20) + `"`
	content := runLines("r", "emu", 1, 1, long, `[flashattn.emu] FWD run=r shape=1x`) +
		`[flashattn.emu] BWD call=2 run=r backend=emu` // no newline yet: being written
	writeFile(t, path, content)
	s, err := Inspect(path, "r")
	if err != nil {
		t.Fatal(err)
	}
	if s.FWD != 1 || s.BWD != 1 || s.Malformed != 1 || s.Lines != 2 {
		t.Errorf("got %+v", s)
	}
	wantStatuses(t, s.Checks(1, 1, "emu"), map[string]checks.Status{
		CheckKernelCalls: checks.Pass, CheckLogsClean: checks.Fail, CheckOnAccelerator: checks.Pass})
}

func TestNoCallsExpected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	writeFile(t, path, runLines("other", "emu", 3, 3))
	wantStatuses(t, CheckRun(path, "r", 0, 0, "emu"), map[string]checks.Status{
		CheckKernelCalls: checks.Pass, CheckLogsClean: checks.Pass, CheckOnAccelerator: checks.Skip})
}

// TestInspectDuringRotation rotates the log (path → path.1, a new empty
// path) at random moments while Inspect reads it: every line is counted
// once whichever way the race goes.
func TestInspectDuringRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "k.log")
	content := runLines("r", "emu", 300, 200)
	for i := range 200 {
		os.Remove(path + ".1")
		writeFile(t, path, content)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range i % 50 { // a varying delay, in scheduler yields
				runtime.Gosched()
			}
			os.Rename(path, path+".1")
			os.WriteFile(path, nil, 0o600) // not writeFile: no t.Fatal off the test goroutine
		}()
		s, err := Inspect(path, "r")
		<-done
		if err != nil || s.FWD != 300 || s.BWD != 200 {
			t.Fatalf("iteration %d: FWD %d BWD %d files %v err %v", i, s.FWD, s.BWD, s.Files, err)
		}
	}
}

// The smoke suite runs both storage modes: kernel-calls-logged counts the
// FWD/BWD lines per storage= mode and fails when they differ from the
// dispatches run in each mode (a runner that logs every call as shared, or
// never got --storage private), with the counts as evidence.
func TestStorageModesAreCounted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	line := func(word string, call int, storage string) string {
		return Format(Line{Tag: TagEmu, Word: word, Call: call, Run: "r", Backend: "emu", Storage: storage})
	}
	both := strings.Join([]string{line(WordFWD, 1, "shared"), line(WordBWD, 1, "shared"), line(WordFWD, 2, "private"),
		line(WordBWD, 2, "private"), line(WordBWD, 3, "private")}, "\n") + "\n"
	writeFile(t, path, both)
	want := Want{FWD: 2, BWD: 3, Storage: map[string]int{"shared": 2, "private": 3}}
	cs := CheckRunWant(path, "r", want, "emu")
	wantStatuses(t, cs, allPass)
	if ev := strings.Join(cs[0].Evidence, "\n"); !strings.Contains(ev, "storage modes: private 3, shared 2 (expected private 3, shared 2)") {
		t.Errorf("evidence:\n%s", ev)
	}

	// Every line says shared although three dispatches ran private.
	writeFile(t, path, strings.ReplaceAll(both, "storage=private", "storage=shared"))
	cs = CheckRunWant(path, "r", want, "emu")
	wantStatuses(t, cs, map[string]checks.Status{CheckKernelCalls: checks.Fail, CheckLogsClean: checks.Pass, CheckOnAccelerator: checks.Pass})
	if ev := strings.Join(cs[0].Evidence, "\n"); !strings.Contains(ev, "storage modes: shared 5 (expected private 3, shared 2)") ||
		!strings.Contains(cs[0].Hint, "storage=") {
		t.Errorf("evidence:\n%s\nhint: %s", ev, cs[0].Hint)
	}

	// Without an expectation the modes are reported, not judged.
	cs = CheckRun(path, "r", 2, 3, "emu")
	wantStatuses(t, cs, allPass)
	if ev := strings.Join(cs[0].Evidence, "\n"); !strings.Contains(ev, "storage modes: shared 5\n") {
		t.Errorf("evidence:\n%s", ev)
	}
}
