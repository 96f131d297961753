package proc

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets a test re-execute this binary as a parent that runs a child
// through Run (PROC_TEST_PARENT=pidfile), so the test can SIGKILL it.
func TestMain(m *testing.M) {
	if pidfile := os.Getenv("PROC_TEST_PARENT"); pidfile != "" {
		// The child writes its pid, then sleeps far longer than any test.
		_ = Run(context.Background(), Cmd{Args: []string{"sh", "-c", "echo $$ > " + pidfile + "; exec sleep 600"}})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// waitGone waits (at most d) for pid to be gone; a reaped or zombie-free
// check is enough: the tests' children are reparented and reaped by init.
func waitGone(pid int, d time.Duration) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if !alive(pid) {
			return true
		}
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && strings.Contains(string(b), ") Z ") {
			return true
		}
	}
	return false
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(path)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return pid
		}
	}
	t.Fatalf("no pid in %s", path)
	return 0
}

func TestExitStatusAndTail(t *testing.T) {
	err := Run(context.Background(), Cmd{Args: []string{"sh", "-c", "echo one >&2; echo 'orchard-runner: cannot open the log' >&2; exit 3"}})
	var pe *Error
	if !errors.As(err, &pe) || pe.ExitCode != 3 || pe.Signal != "" || pe.Error() != "sh exited with status 3" {
		t.Fatalf("err = %v (%+v)", err, pe)
	}
	if pe.LastLine() != "orchard-runner: cannot open the log" || len(pe.Tail) != 2 {
		t.Fatalf("tail %q, last line %q", pe.Tail, pe.LastLine())
	}
}

func TestCrashNamesTheSignal(t *testing.T) {
	err := Run(context.Background(), Cmd{Args: []string{"sh", "-c", "echo dying >&2; kill -SEGV $$"}})
	var pe *Error
	if !errors.As(err, &pe) || pe.Signal != "SIGSEGV" || !pe.Crashed() || pe.ExitCode != -1 {
		t.Fatalf("err = %v (%+v)", err, pe)
	}
	if !strings.Contains(pe.Error(), "killed by SIGSEGV (segmentation fault)") || pe.LastLine() != "dying" {
		t.Fatalf("message %q, last line %q", pe.Error(), pe.LastLine())
	}
}

// A timeout kills the whole group: the grandchild too.
func TestTimeoutKillsTheGroup(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	err := Run(context.Background(), Cmd{Timeout: 300 * time.Millisecond,
		Args: []string{"sh", "-c", "sleep 600 & echo $! > " + pidfile + "; wait"}})
	var pe *Error
	if !errors.As(err, &pe) || pe.TimedOut != 300*time.Millisecond || pe.Crashed() {
		t.Fatalf("err = %v (%+v)", err, pe)
	}
	if !strings.Contains(pe.Error(), "timed out after 300ms and was killed") {
		t.Fatalf("message %q", pe.Error())
	}
	if pid := readPID(t, pidfile); !waitGone(pid, 5*time.Second) {
		t.Fatalf("grandchild %d outlived the timeout", pid)
	}
}

// A cancelled call returns at once even when a grandchild outside the
// group (setsid) holds the output pipe open.
func TestCancelDoesNotWaitForAPipeAGrandchildHolds(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("no setsid")
	}
	pidfile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Cmd{Args: []string{"sh", "-c", "setsid sh -c 'echo $$ > " + pidfile + "; exec sleep 600' & sleep 600"}})
	}()
	pid := readPID(t, pidfile)
	defer syscall.Kill(pid, syscall.SIGKILL)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(WaitDelay + 20*time.Second):
		t.Fatal("Run still waits on the pipe the grandchild holds")
	}
}

// A SIGKILLed parent leaves no child running (Linux: the parent-death signal).
func TestKilledParentLeavesNoChild(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("parent-death signals are Linux only")
	}
	pidfile := filepath.Join(t.TempDir(), "pid")
	parent := exec.Command(os.Args[0], "-test.run=^$")
	parent.Env = append(os.Environ(), "PROC_TEST_PARENT="+pidfile)
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	child := readPID(t, pidfile)
	defer syscall.Kill(child, syscall.SIGKILL)
	if err := parent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = parent.Wait()
	if !waitGone(child, 10*time.Second) {
		t.Fatalf("child %d still runs after its parent was SIGKILLed", child)
	}
}
