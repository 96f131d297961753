package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/logs"
)

// These tests run the real pipeline: the real cmake and compiler build the
// embedded runtime, and the real kernels run on the emu backend.

// TestMain lets a test re-execute this binary as orchard itself (for real
// signals and exit codes): ORCHARD_TEST_AS_MAIN=1 runs main.
func TestMain(m *testing.M) {
	if os.Getenv("ORCHARD_TEST_AS_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// orchardCmd returns a command running this test binary as orchard.
func orchardCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "ORCHARD_TEST_AS_MAIN=1", "NO_COLOR=1", "ORCHARD_PYTHON="+pythonWithoutTorch)
	return cmd
}

// pythonWithoutTorch is the test double of an interpreter without PyTorch
// (a real python3 with its site-packages hidden). The tests run the torch
// steps with it unless they set ORCHARD_PYTHON (or --python) themselves:
// each op-library build costs tens of seconds, so only the torch tests
// (torch_test.go) do one.
var pythonWithoutTorch = func() string {
	p, err := filepath.Abs("../../steps/testdata/python/python3-without-torch")
	if err != nil {
		panic(err)
	}
	return p
}()

func runJSON(t *testing.T, args ...string) (*checks.Report, int, string) {
	t.Helper()
	return runJSONEnv(t, nil, args...)
}

func stepByName(r *checks.Report, name string) checks.StepSummary {
	for _, s := range r.Steps {
		if s.Name == name {
			return s
		}
	}
	return checks.StepSummary{Name: name, Status: "absent"}
}

func reportCheck(r *checks.Report, id string) checks.Check {
	for _, c := range r.Checks {
		if c.ID == id {
			return c
		}
	}
	return checks.Check{ID: id, Status: "absent"}
}

func TestRebuildCachesVerifiesAndForces(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the runtime (-short)")
	}
	dir := t.TempDir()
	r, code, stderr := runJSON(t, "rebuild", "--build-dir", dir)
	if code != 0 || !r.OK {
		t.Fatalf("first rebuild: exit %d ok=%v\n%+v\nstderr:\n%s", code, r.OK, r.Checks, stderr)
	}
	for _, id := range []string{"toolchain.cmake", "toolchain.cxx", "shaders", "kernel", "runtime-loads", "forward", "backward"} {
		if c := reportCheck(r, id); c.Status != checks.Pass {
			t.Errorf("check %s: %s %v", id, c.Status, c.Evidence)
		}
	}
	for _, s := range r.Steps {
		if s.Cached {
			t.Errorf("first run: step %s cached", s.Name)
		}
	}
	if r.Backend != "emu" || r.BuildDir != dir {
		t.Errorf("backend %q build dir %q", r.Backend, r.BuildDir)
	}
	checkSmokeRanBothStorageModes(t, r, dir)

	r, code, _ = runJSON(t, "rebuild", "--build-dir", dir, "--explain")
	if code != 0 {
		t.Fatalf("second rebuild: exit %d", code)
	}
	for _, name := range []string{"shaders", "kernel", "smoke"} {
		if s := stepByName(r, name); !s.Cached || !strings.HasPrefix(s.Explain, "cached:") {
			t.Errorf("second run: step %s not cached: %+v", name, s)
		}
	}
	if s := stepByName(r, "toolchain"); s.Cached {
		t.Error("the toolchain check must run every time")
	}

	r, code, _ = runJSON(t, "verify", "--build-dir", dir)
	if code != 0 || !r.OK {
		t.Fatalf("verify: exit %d %+v", code, r.Checks)
	}
	for _, s := range r.Steps {
		if s.Cached {
			t.Errorf("verify used the cache for %s", s.Name)
		}
	}
	if c := reportCheck(r, "forward"); c.Status != checks.Pass {
		t.Errorf("verify forward: %+v", c)
	}
	defaultCalls := reportCheck(r, "kernel-calls-logged").Evidence

	// Split dispatches: with at most one threadgroup per dispatch every pass
	// is split, the suite still matches the float64 reference, and the logs
	// step expects what the runner reported (one line per dispatch). A cap
	// of 3 also leaves partial boxes. --validate on emu says what it is.
	for _, groups := range []string{"1", "3"} {
		cmd := orchardCmd("verify", "--build-dir", dir, "--validate", "--json")
		cmd.Env = append(cmd.Env, "ORCHARD_DISPATCH_GROUPS="+groups)
		out, err := cmd.Output()
		var vr checks.Report
		if jerr := json.Unmarshal(out, &vr); jerr != nil || err != nil || !vr.OK {
			t.Fatalf("verify with ORCHARD_DISPATCH_GROUPS=%s: %v %v\n%s", groups, err, jerr, out)
		}
		calls := reportCheck(&vr, "kernel-calls-logged")
		if calls.Status != checks.Pass || slices.Equal(calls.Evidence[:2], defaultCalls[:2]) {
			t.Errorf("ORCHARD_DISPATCH_GROUPS=%s: the split made no more dispatches than the default run:\n%v\n%v", groups, calls.Evidence, defaultCalls)
		}
		loads := strings.Join(reportCheck(&vr, "runtime-loads").Evidence, "\n")
		if !strings.Contains(loads, "validation: --validate turns on Metal's API and shader validation, a Metal feature") ||
			!strings.Contains(loads, "time_source=emu") {
			t.Errorf("runtime-loads evidence:\n%s", loads)
		}
	}

	// Deleting an output reruns the step that made it, and only what follows.
	runner := builtRunner(t, dir)
	if err := os.Remove(runner); err != nil {
		t.Fatal(err)
	}
	r, code, _ = runJSON(t, "rebuild", "--build-dir", dir)
	if s := stepByName(r, "kernel"); code != 0 || s.Cached || !strings.Contains(s.Explain, "missing") {
		t.Errorf("after deleting the runner: exit %d kernel %+v", code, s)
	}
	if s := stepByName(r, "shaders"); !s.Cached {
		t.Errorf("shaders reran although nothing it depends on changed: %+v", s)
	}

	r, code, _ = runJSON(t, "rebuild", "--build-dir", dir, "--force")
	if code != 0 {
		t.Fatalf("--force: exit %d", code)
	}
	for _, s := range r.Steps {
		if s.Cached {
			t.Errorf("--force: step %s cached", s.Name)
		}
	}
}

// The smoke suite runs its cases in shared and in private storage: the
// kernel-call log says storage=private on the private cases' lines, the
// logs step counts both modes, and smoke.log names each case's mode.
func checkSmokeRanBothStorageModes(t *testing.T, r *checks.Report, dir string) {
	t.Helper()
	calls := reportCheck(r, logs.CheckKernelCalls)
	ev := strings.Join(calls.Evidence, "\n")
	if calls.Status != checks.Pass || !regexp.MustCompile(`storage modes: private \d+, shared \d+ \(expected private \d+, shared \d+\)`).MatchString(ev) {
		t.Errorf("%s: %s, evidence:\n%s\nwant both storage modes counted and expected", logs.CheckKernelCalls, calls.Status, ev)
	}
	data, err := os.ReadFile(logs.KernelLogPath(dir, func(string) string { return "" }))
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]int{}
	for _, raw := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if l, err := logs.Parse(raw); err == nil && (l.Word == logs.WordFWD || l.Word == logs.WordBWD) {
			modes[l.Storage]++
		}
	}
	if modes["private"] == 0 || modes["shared"] == 0 || len(modes) != 2 {
		t.Errorf("kernel-call log storage modes %v: want shared and private lines only", modes)
	}
	smokeLog, err := os.ReadFile(filepath.Join(dir, "logs", "steps", "smoke.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(smokeLog), " [private] "); n != 22 {
		t.Errorf("smoke.log names %d private cases, want 22 of 44:\n%s", n, smokeLog)
	}
}

func TestVerifyWithoutBuildSaysRebuild(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runCLI(t, nil, "verify", "--build-dir", dir)
	if code != exitEnvironment || !strings.Contains(out, "run 'orchard rebuild") || !strings.Contains(out, "[✗] A build to verify") {
		t.Fatalf("verify on an empty dir: %d %q %q", code, out, errOut)
	}
}

// descendants lists the pids whose parent chain leads to pid.
func descendants(pid int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 {
			parent[p], _ = strconv.Atoi(f[1])
		}
	}
	var out []int
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

func TestRebuildSIGINTKillsChildrenExits130AndRerunWorks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the runtime (-short)")
	}
	dir := t.TempDir()
	cmd := orchardCmd("rebuild", "--build-dir", dir)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the kernel step's compiler is running.
	started := make(chan struct{})
	var once sync.Once
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "==> kernel") {
				once.Do(func() { close(started) })
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(5 * time.Minute):
		cmd.Process.Kill()
		t.Fatal("the kernel step never started")
	}
	var kids []int
	deadline := time.Now().Add(time.Minute)
	for len(kids) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		kids = descendants(cmd.Process.Pid)
	}
	if len(kids) == 0 {
		t.Fatal("no child process seen during the kernel build")
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var xe *exec.ExitError
	if !errors.As(err, &xe) || xe.ExitCode() != 130 {
		t.Fatalf("exit after SIGINT: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	for _, k := range kids {
		if alive(k) {
			t.Errorf("child %d survived the interrupt", k)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "stamps", "kernel.json")); !os.IsNotExist(err) {
		t.Errorf("the interrupted kernel step left a stamp (%v)", err)
	}
	r, code, stderrText := runJSON(t, "rebuild", "--build-dir", dir)
	if code != 0 || !r.OK {
		t.Fatalf("rerun after the interrupt: exit %d\n%s", code, stderrText)
	}
}
