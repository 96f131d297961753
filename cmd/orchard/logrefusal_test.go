package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orchardkit/orchard/checks"
)

// A hard link planted at the kernel-call log: the runner refuses it, and
// the report says so once — the runner's own message with the path and why,
// the cases not run, a hint that points at it — with the planted file's
// other name untouched, instead of 44 cases of "exited with status 1".
func TestVerifyReportsARefusedLogPath(t *testing.T) {
	dir := sharedBuild(t)
	tmp := t.TempDir()
	victim, planted := filepath.Join(tmp, "victim.log"), filepath.Join(tmp, "calls.log")
	if err := os.WriteFile(victim, []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(victim, planted); err != nil {
		t.Fatal(err)
	}
	cmd := orchardCmd("verify", "--build-dir", dir, "--json")
	cmd.Env = append(cmd.Env, "ORCHARD_KERNEL_LOG="+planted)
	out, _ := cmd.Output()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit %d, want 1; stdout:\n%s", code, out)
	}
	var r checks.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, out)
	}
	fwd := reportCheck(&r, "forward")
	ev := strings.Join(fwd.Evidence, "\n")
	for _, want := range []string{"case 1 of 44", planted, "hard links", "43 cases after it not run"} {
		if !strings.Contains(ev, want) {
			t.Errorf("forward evidence lacks %q:\n%s", want, ev)
		}
	}
	if n := strings.Count(ev+fwd.Hint, "hard links"); n != 1 {
		t.Errorf("the runner's message appears %d times, want once:\n%s\nfix: %s", n, ev, fwd.Hint)
	}
	if !strings.Contains(fwd.Hint, "refused its log file") || !strings.Contains(fwd.Hint, "--build-dir "+dir) {
		t.Errorf("hint = %q, want the log-refusal fix with the user's --build-dir", fwd.Hint)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep\n" {
		t.Errorf("the hard link's other name was written: %q", b)
	}
}
