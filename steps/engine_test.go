package steps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orchardkit/orchard/checks"
)

// copyStep is a real cacheable step: it copies its input file to an output
// with a child process (cp), keyed on the input, an env var and a config.
type copyStep struct {
	in, out string
	fail    bool
	runs    int
	Out     struct{ Bytes int }
}

func (s *copyStep) Name() string { return "copy" }
func (s *copyStep) Key(sc *Context) (KeyInputs, error) {
	return KeyInputs{
		Version:  "1",
		Config:   map[string]string{"backend": sc.Backend},
		Commands: [][]string{{"cp", s.in, s.out}},
		Env:      []string{"ORCHARD_TEST_FLAG"},
		Inputs:   []string{s.in},
		Outputs:  []string{s.out},
	}, nil
}
func (s *copyStep) Output() any { return &s.Out }
func (s *copyStep) Run(ctx context.Context, sc *Context) (Result, error) {
	s.runs++
	if s.fail {
		return Result{}, sc.Exec(ctx, Cmd{Args: []string{"false"}})
	}
	if err := sc.Exec(ctx, Cmd{Args: []string{"cp", s.in, s.out}}); err != nil {
		return Result{}, err
	}
	b, err := os.ReadFile(s.out)
	if err != nil {
		return Result{}, err
	}
	s.Out.Bytes = len(b)
	return Result{Detail: fmt.Sprintf("%d bytes", len(b))}, nil
}

type testEnv struct {
	dir  string
	env  map[string]string
	step *copyStep
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "src.txt")
	if err := os.WriteFile(in, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &testEnv{dir: dir, env: map[string]string{}, step: &copyStep{in: in, out: filepath.Join(dir, "build", "out.txt")}}
}

func (te *testEnv) run(t *testing.T, force bool) checks.StepSummary {
	t.Helper()
	e := New(Options{BuildDir: filepath.Join(te.dir, "build"), Backend: "emu", Force: force,
		Getenv: func(k string) string { return te.env[k] }})
	r, err := e.Run(context.Background(), []Step{te.step})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Steps) != 1 {
		t.Fatalf("steps = %+v", r.Steps)
	}
	return r.Steps[0]
}

func TestCacheReuseAndInvalidation(t *testing.T) {
	te := newTestEnv(t)
	if s := te.run(t, false); s.Cached || s.Status != checks.Pass {
		t.Fatalf("first run: %+v", s)
	}
	s := te.run(t, false)
	if !s.Cached || te.step.runs != 1 || te.step.Out.Bytes != 5 {
		t.Fatalf("second run should be cached with its output restored: %+v runs=%d out=%+v", s, te.step.runs, te.step.Out)
	}
	if s := te.run(t, true); s.Cached || s.Explain != "ran: --force" {
		t.Fatalf("--force: %+v", s)
	}

	// An env var in the allowlist changes the key.
	te.env["ORCHARD_TEST_FLAG"] = "1"
	s = te.run(t, false)
	if s.Cached || !strings.Contains(s.Explain, "env ORCHARD_TEST_FLAG changed") {
		t.Fatalf("env change: %+v", s)
	}
	// One outside the allowlist does not.
	te.env["UNRELATED"] = "x"
	if s := te.run(t, false); !s.Cached {
		t.Fatalf("unrelated env var reran the step: %+v", s)
	}

	// Changed input content.
	if err := os.WriteFile(te.step.in, []byte("hello, world"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = te.run(t, false)
	if s.Cached || !strings.Contains(s.Explain, "input "+te.step.in+" changed") || te.step.Out.Bytes != 12 {
		t.Fatalf("input change: %+v", s)
	}

	// A deleted output forces a rerun.
	os.Remove(te.step.out)
	s = te.run(t, false)
	if s.Cached || !strings.Contains(s.Explain, "is missing") {
		t.Fatalf("deleted output: %+v", s)
	}
	// A modified output too.
	os.WriteFile(te.step.out, []byte("tampered"), 0o644)
	s = te.run(t, false)
	if s.Cached || !strings.Contains(s.Explain, "changed since it was built") {
		t.Fatalf("modified output: %+v", s)
	}
}

func TestNoStampForFailedStep(t *testing.T) {
	te := newTestEnv(t)
	te.run(t, false)
	sp := stampPath(filepath.Join(te.dir, "build"), "copy")
	if _, err := os.Stat(sp); err != nil {
		t.Fatalf("no stamp after success: %v", err)
	}
	te.step.fail = true
	s := te.run(t, true)
	if s.Status != checks.Fail {
		t.Fatalf("status %v", s.Status)
	}
	if _, err := os.Stat(sp); !os.IsNotExist(err) {
		t.Fatalf("stamp present after a failed run: %v", err)
	}
	// The failure is not cached: the next run runs again (and fails again).
	s = te.run(t, false)
	if s.Cached || s.Status != checks.Fail || te.step.runs != 3 {
		t.Fatalf("after failure: %+v runs=%d", s, te.step.runs)
	}
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(sp), ".*tmp*"))
	if len(matches) != 0 {
		t.Fatalf("temp files left behind: %v", matches)
	}
}

func TestFailureSkipsLaterStepsAndKeepsEvidence(t *testing.T) {
	te := newTestEnv(t)
	te.step.fail = true
	after := &copyStep{in: te.step.in, out: filepath.Join(te.dir, "build", "b.txt")}
	e := New(Options{BuildDir: filepath.Join(te.dir, "build"), Backend: "emu"})
	r, err := e.Run(context.Background(), []Step{te.step, after})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Failed || r.Steps[1].Status != checks.Skip || after.runs != 0 {
		t.Fatalf("run: %+v", r)
	}
	if ev := strings.Join(r.Checks[0].Evidence, "\n"); !strings.Contains(ev, "false exited with status 1") {
		t.Fatalf("evidence: %q", ev)
	}
	log, _ := os.ReadFile(filepath.Join(te.dir, "build", "logs", "steps", "copy.log"))
	if !strings.Contains(string(log), "$ false") {
		t.Fatalf("step log: %q", log)
	}
}

// sleepStep runs a long child that writes its pid to a file first.
type sleepStep struct{ pidFile string }

func (s *sleepStep) Name() string { return "sleep" }
func (s *sleepStep) Key(sc *Context) (KeyInputs, error) {
	return KeyInputs{Version: "1", Outputs: []string{s.pidFile}}, nil
}
func (s *sleepStep) Output() any { return &struct{}{} }
func (s *sleepStep) Run(ctx context.Context, sc *Context) (Result, error) {
	return Result{}, sc.Exec(ctx, Cmd{Args: []string{"sh", "-c", `echo $$ > "$1"; exec sleep 60`, "sh", s.pidFile}})
}

func TestCancelKillsChildAndWritesNoStamp(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	ctx, cancel := context.WithCancel(context.Background())
	e := New(Options{BuildDir: filepath.Join(dir, "build"), Events: func(ev Event) {}})
	go func() {
		waitFor(t, func() bool { b, _ := os.ReadFile(pidFile); return len(b) > 0 })
		cancel()
	}()
	start := time.Now()
	_, err := e.Run(ctx, []Step{&sleepStep{pidFile: pidFile}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 20*time.Second {
		t.Fatal("cancellation took too long")
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid == 0 || processAlive(pid) {
		t.Fatalf("child %d still alive after cancel", pid)
	}
	if _, err := os.Stat(stampPath(filepath.Join(dir, "build"), "sleep")); !os.IsNotExist(err) {
		t.Fatal("stamp written for an interrupted step")
	}
}

func processAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	// A zombie is dead for our purpose.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

func waitFor(t *testing.T, cond func() bool) {
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Error("condition not met in 20s")
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// slowMarkStep appends "start name"/"end name" lines to a shared file with
// a pause between, so interleaving runs would show.
type slowMarkStep struct {
	name, file string
}

func (s *slowMarkStep) Name() string { return "mark" }
func (s *slowMarkStep) Run(ctx context.Context, sc *Context) (Result, error) {
	appendLine(s.file, "start "+s.name)
	time.Sleep(300 * time.Millisecond)
	appendLine(s.file, "end "+s.name)
	return Result{}, nil
}

var appendMu sync.Mutex

func appendLine(path, line string) {
	appendMu.Lock()
	defer appendMu.Unlock()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	fmt.Fprintln(f, line)
	f.Close()
}

func TestLockSerialisesConcurrentRuns(t *testing.T) {
	dir := t.TempDir()
	build := filepath.Join(dir, "build")
	marks := filepath.Join(dir, "marks")
	var waited sync.WaitGroup
	var wg sync.WaitGroup
	waitMsgs := make(chan string, 2)
	for _, n := range []string{"a", "b"} {
		wg.Add(1)
		waited.Add(1)
		go func(n string) {
			defer wg.Done()
			e := New(Options{BuildDir: build, Who: "test " + n, Events: func(ev Event) {
				if ev.Kind == EventWaiting {
					waitMsgs <- ev.Message
				}
			}})
			if _, err := e.Run(context.Background(), []Step{&slowMarkStep{name: n, file: marks}}); err != nil {
				t.Error(err)
			}
		}(n)
	}
	wg.Wait()
	b, _ := os.ReadFile(marks)
	lines := strings.Fields(strings.ReplaceAll(string(b), "\n", " "))
	// start X end X start Y end Y
	if len(lines) != 8 || lines[1] != lines[3] || lines[5] != lines[7] {
		t.Fatalf("runs interleaved: %q", b)
	}
	select {
	case m := <-waitMsgs:
		if !strings.Contains(m, "waiting for pid") {
			t.Fatalf("wait message: %q", m)
		}
	default:
		t.Fatal("the second run did not say it was waiting")
	}
}

func TestLockNoWaitFailsAtOnce(t *testing.T) {
	dir := t.TempDir()
	release, err := Lock(context.Background(), dir, "holder run", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	// flock locks are per open file description: a second open in this
	// process conflicts like another process would.
	_, err = Lock(context.Background(), dir, "second", true, nil)
	var busy *ErrBusy
	if !errors.As(err, &busy) || !strings.Contains(busy.Error(), "holder run") {
		t.Fatalf("err = %v", err)
	}
}

// TestSignalHelper is not a test: TestSIGINTExits130 re-executes the test
// binary into it to get a process running the engine under a real signal.
func TestSignalHelper(t *testing.T) {
	dir := os.Getenv("ORCHARD_SIGNAL_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process for TestSIGINT (runs only when re-executed)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	e := New(Options{BuildDir: filepath.Join(dir, "build")})
	_, err := e.Run(ctx, []Step{&sleepStep{pidFile: filepath.Join(dir, "child.pid")}})
	if errors.Is(err, context.Canceled) {
		os.Exit(130)
	}
	os.Exit(0)
}

func TestSIGINTExits130AndRerunWorks(t *testing.T) {
	dir := t.TempDir()
	run := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSignalHelper$")
		cmd.Env = append(os.Environ(), "ORCHARD_SIGNAL_HELPER_DIR="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	pidFile := filepath.Join(dir, "child.pid")
	cmd := run()
	waitFor(t, func() bool { b, _ := os.ReadFile(pidFile); return len(b) > 0 })
	b, _ := os.ReadFile(pidFile)
	child, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	var xe *exec.ExitError
	if !errors.As(err, &xe) || xe.ExitCode() != 130 {
		t.Fatalf("exit: %v", err)
	}
	if processAlive(child) {
		t.Fatalf("child %d survived SIGINT", child)
	}
	// A rerun takes the lock again and starts the step afresh.
	os.Remove(pidFile)
	cmd = run()
	waitFor(t, func() bool { b, _ := os.ReadFile(pidFile); return len(b) > 0 })
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); !errors.As(err, &xe) || xe.ExitCode() != 130 {
		t.Fatalf("rerun exit: %v", err)
	}
}
