package attn

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// These run real child processes (small sh scripts standing in for a
// runner that misbehaves) through RunnerExec: what is under test is how a
// process that exits, crashes or hangs is reported and stopped, not the
// runtime, which the cmd/orchard and steps tests run for real.
func script(t *testing.T, body string) []string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "runner.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{p}
}

func TestRunnerExecRefusedInputIsAnInputError(t *testing.T) {
	err := RunnerExec(0)(context.Background(), script(t, `echo "orchard-runner: --q: D=300 exceeds 256" >&2; exit 2`), nil, io.Discard)
	var ie *InputError
	if !errors.As(err, &ie) || ie.Msg != "--q: D=300 exceeds 256" {
		t.Fatalf("err = %v, want an InputError with the runner's message", err)
	}
}

func TestRunnerExecOwnErrorIsItsMessage(t *testing.T) {
	err := RunnerExec(0)(context.Background(), script(t, `echo "orchard-runner: cannot open log /x/y.log: is a hard link" >&2; exit 1`), nil, io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), "cannot open log /x/y.log: is a hard link") || !strings.Contains(err.Error(), "status 1") {
		t.Fatalf("err = %v, want the runner's own message first, then its status", err)
	}
}

func TestRunnerExecCrashNamesSignalAndStderr(t *testing.T) {
	err := RunnerExec(0)(context.Background(), script(t, `echo "dispatching attn_fwd_f32" >&2; kill -SEGV $$`), nil, io.Discard)
	if err == nil {
		t.Fatal("a crashing runner returned no error")
	}
	for _, want := range []string{"SIGSEGV", "dispatching attn_fwd_f32"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestRunnerExecTimeoutKillsAHangingRunner(t *testing.T) {
	start := time.Now()
	err := RunnerExec(300*time.Millisecond)(context.Background(), script(t, `sleep 60`), nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "timed out after 300ms") {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("a 300ms timeout took %s to end the run", d)
	}
}

func TestRunnerExecCancelReturnsAtOnceWhileAGrandchildHoldsStdout(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	// The grandchild leaves the process group and keeps stdout open.
	err := RunnerExec(0)(ctx, script(t, `setsid sleep 60 & sleep 60`), nil, io.Discard)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancel took %s; a grandchild holding the pipe must not keep orchard waiting", d)
	}
}
