package steps

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orchardkit/orchard/checks"
)

// These tests run the real probes on this Linux machine (cmake, c++,
// python3 are installed here). Scripts standing in for other cmake versions
// or broken tools are named "stand-in" below.

// testProber probes with the given environment (PATH, CXX) and os-release.
func testProber(t *testing.T, env map[string]string, osRelease string) *Prober {
	t.Helper()
	getenv := func(k string) string { return env[k] }
	p := NewProber(getenv)
	p.OSRelease = filepath.Join("testdata", "probe", osRelease)
	p.Root = true
	return p
}

// realPath is this machine's PATH.
func realPath() string { return os.Getenv("PATH") }

// standIns writes executable scripts named like tools into a temp dir.
func standIns(t *testing.T, scripts map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func evidence(r ProbeResult) string { return strings.Join(r.Check.Evidence, "\n") }

func TestProbeCXXCompilesHere(t *testing.T) {
	p := testProber(t, map[string]string{"PATH": realPath()}, "os-release-debian")
	start := time.Now()
	r := p.CXX(context.Background())
	t.Logf("C++ probe took %s: %s", time.Since(start).Round(time.Millisecond), evidence(r))
	if r.Check.Status != checks.Pass {
		t.Fatalf("status %s: %s", r.Check.Status, evidence(r))
	}
	if r.Check.ID != ProbeCXX || r.Path == "" || r.VersionLine == "" || r.Version == "" {
		t.Errorf("incomplete result: %+v", r)
	}
	if !strings.Contains(evidence(r), "version: "+r.VersionLine) || !strings.Contains(evidence(r), "-std=c++20 -pthread") {
		t.Errorf("evidence lacks the version line or flags:\n%s", evidence(r))
	}
}

func TestProbeCXXFailsWithoutBarrier(t *testing.T) {
	// A real compiler that cannot see the C++ headers: <barrier> is missing,
	// as with g++ < 11.
	p := testProber(t, map[string]string{"PATH": realPath(), "CXX": "c++ -nostdinc++"}, "os-release-debian")
	r := p.CXX(context.Background())
	t.Logf("reason: %s\nevidence:\n%s\nhint: %s", r.Reason, evidence(r), r.Check.Hint)
	if r.Check.Status != checks.Fail {
		t.Fatalf("status %s, want fail: %s", r.Check.Status, evidence(r))
	}
	if !strings.HasPrefix(r.Reason, "CXX=c++ -nostdinc++ cannot build C++20") {
		t.Errorf("reason %q", r.Reason)
	}
	if !strings.Contains(evidence(r), "barrier") || !strings.Contains(evidence(r), "compile failed") {
		t.Errorf("evidence lacks the compiler's error:\n%s", evidence(r))
	}
	if want := "apt-get update && apt-get install -y g++-12; then export CXX=g++-12"; r.Check.Hint != want {
		t.Errorf("hint %q, want %q", r.Check.Hint, want)
	}
}

func TestProbeCXXNoneFound(t *testing.T) {
	p := testProber(t, map[string]string{"PATH": t.TempDir()}, "os-release-debian")
	r := p.CXX(context.Background())
	if r.Check.Status != checks.Fail || !strings.Contains(r.Reason, "no C++ compiler found") {
		t.Fatalf("got %s %q", r.Check.Status, r.Reason)
	}
	if want := "apt-get update && apt-get install -y g++"; r.Check.Hint != want {
		t.Errorf("hint %q, want %q", r.Check.Hint, want)
	}
	if !strings.Contains(evidence(r), "clang++: not found on PATH") {
		t.Errorf("evidence does not list the candidates tried:\n%s", evidence(r))
	}
}

func TestProbeCMakeHere(t *testing.T) {
	p := testProber(t, map[string]string{"PATH": realPath()}, "os-release-debian")
	r := p.CMake(context.Background())
	if r.Check.Status != checks.Pass {
		t.Fatalf("status %s: %s", r.Check.Status, evidence(r))
	}
	if ok, _ := VersionAtLeast(r.Version, MinCMake); !ok {
		t.Errorf("passed with version %q", r.Version)
	}
	for _, want := range []string{"path: ", "found: " + r.Version, "required: >= 3.20"} {
		if !strings.Contains(evidence(r), want) {
			t.Errorf("evidence lacks %q:\n%s", want, evidence(r))
		}
	}
}

func TestProbeCMakeMissingHints(t *testing.T) {
	tests := []struct {
		osRelease, goos string
		root            bool
		want            string
	}{
		{"os-release-debian", "linux", true, "apt-get update && apt-get install -y cmake"},
		{"os-release-ubuntu", "linux", false, "sudo apt-get update && sudo apt-get install -y cmake"},
		{"os-release-fedora", "linux", true, "dnf install -y cmake"},
		{"os-release-alpine", "linux", true, "install CMake >= 3.20 with your package manager or from https://cmake.org/download/"},
		{"os-release-debian", "darwin", false, "brew install cmake"},
	}
	for _, tt := range tests {
		p := testProber(t, map[string]string{"PATH": t.TempDir()}, tt.osRelease)
		p.GOOS, p.Root = tt.goos, tt.root
		r := p.CMake(context.Background())
		if r.Check.Status != checks.Fail || r.Reason != "cmake not found on PATH" {
			t.Errorf("%s/%s: got %s %q", tt.osRelease, tt.goos, r.Check.Status, r.Reason)
		}
		if r.Check.Hint != tt.want {
			t.Errorf("%s/%s: hint %q, want %q", tt.osRelease, tt.goos, r.Check.Hint, tt.want)
		}
	}
}

func TestProbeCMakeVersionGate(t *testing.T) {
	dir := standIns(t, map[string]string{"cmake": "cat " + filepath.Join(mustAbs(t, "testdata/probe"), "cmake-3.19.8.txt")})
	p := testProber(t, map[string]string{"PATH": dir + ":/usr/bin:/bin"}, "os-release-debian")
	r := p.CMake(context.Background())
	if r.Check.Status != checks.Fail || r.Reason != "cmake 3.19.8 is older than 3.20" {
		t.Fatalf("3.19.8: got %s %q", r.Check.Status, r.Reason)
	}
	if !strings.Contains(r.Check.Hint, "https://cmake.org/download/") {
		t.Errorf("hint %q", r.Check.Hint)
	}

	dir = standIns(t, map[string]string{"cmake": "cat " + filepath.Join(mustAbs(t, "testdata/probe"), "cmake-3.29.0-rc1.txt")})
	p = testProber(t, map[string]string{"PATH": dir + ":/usr/bin:/bin"}, "os-release-debian")
	if r := p.CMake(context.Background()); r.Check.Status != checks.Pass || r.Version != "3.29.0-rc1" {
		t.Fatalf("3.29.0-rc1: got %s %q %s", r.Check.Status, r.Version, evidence(r))
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestProbeCrashIsFailure(t *testing.T) {
	dir := standIns(t, map[string]string{"cmake": "echo 'about to crash' >&2; kill -SEGV $$"})
	p := testProber(t, map[string]string{"PATH": dir + ":/usr/bin:/bin"}, "os-release-debian")
	r := p.CMake(context.Background())
	if r.Check.Status != checks.Fail {
		t.Fatalf("a crashing cmake gave %s", r.Check.Status)
	}
	for _, want := range []string{"cmake --version crashed", "segmentation fault", "about to crash"} {
		if !strings.Contains(r.Reason, want) {
			t.Errorf("reason %q lacks %q", r.Reason, want)
		}
	}
}

func TestProbeTimeoutIsFailure(t *testing.T) {
	// The stand-in starts a child that would outlive a killed shell: the
	// whole process group must go.
	dir := standIns(t, map[string]string{"cmake": "sleep 30; echo cmake version 3.25.1"})
	p := testProber(t, map[string]string{"PATH": dir + ":/usr/bin:/bin"}, "os-release-debian")
	p.Timeout = 300 * time.Millisecond
	start := time.Now()
	r := p.CMake(context.Background())
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("timed-out probe returned after %s", el)
	}
	if r.Check.Status != checks.Fail || r.Reason != "cmake --version timed out after 300ms" {
		t.Fatalf("got %s %q", r.Check.Status, r.Reason)
	}
}

func TestProbeExitStatusKeepsStderr(t *testing.T) {
	dir := standIns(t, map[string]string{"cmake": "echo 'cmake: error while loading shared libraries: libjsoncpp.so.25' >&2; exit 127"})
	p := testProber(t, map[string]string{"PATH": dir + ":/usr/bin:/bin"}, "os-release-debian")
	r := p.CMake(context.Background())
	want := "cmake --version exited with status 127: cmake: error while loading shared libraries: libjsoncpp.so.25"
	if r.Check.Status != checks.Fail || r.Reason != want {
		t.Fatalf("got %s %q, want %q", r.Check.Status, r.Reason, want)
	}
}

// countingRunner counts the commands a real runner runs.
type countingRunner struct {
	ExecRunner
	mu sync.Mutex
	n  int
}

func (c *countingRunner) Run(ctx context.Context, dir string, argv ...string) ([]byte, []byte, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.ExecRunner.Run(ctx, dir, argv...)
}

func TestProbeMemoised(t *testing.T) {
	p := testProber(t, map[string]string{"PATH": realPath()}, "os-release-debian")
	cr := &countingRunner{ExecRunner: ExecRunner{Getenv: p.Getenv}}
	p.Runner = cr
	a := p.CMake(context.Background())
	b := p.CMake(context.Background())
	if cr.n != 1 {
		t.Errorf("two CMake probes ran %d commands, want 1", cr.n)
	}
	if a.Version != b.Version || a.Check.Status != b.Check.Status {
		t.Errorf("memoised result differs: %+v vs %+v", a, b)
	}
	p.Reset()
	p.CMake(context.Background())
	if cr.n != 2 {
		t.Errorf("after Reset: %d commands, want 2", cr.n)
	}
	// An interrupted probe is not remembered.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.Reset()
	if r := p.CMake(ctx); r.Check.Status != checks.Fail {
		t.Errorf("cancelled probe: %s", r.Check.Status)
	}
	if r := p.CMake(context.Background()); r.Check.Status != checks.Pass {
		t.Errorf("after a cancelled probe: %s %s", r.Check.Status, evidence(r))
	}
}

func TestProbePythonAndTorchAreOptional(t *testing.T) {
	p := testProber(t, map[string]string{"PATH": realPath()}, "os-release-debian")
	py, tr := p.Python(context.Background()), p.Torch(context.Background())
	t.Logf("python3: %s %s; torch: %s %s", py.Check.Status, evidence(py), tr.Check.Status, evidence(tr))
	if py.Check.Status == checks.Fail || tr.Check.Status == checks.Fail {
		t.Fatalf("optional probes failed: %s / %s", evidence(py), evidence(tr))
	}
	if tr.Check.Status == checks.Skip && !strings.Contains(tr.Reason, "not installed") && !strings.Contains(tr.Reason, "python3 not found") {
		t.Errorf("torch skipped without a reason: %q", tr.Reason)
	}
	if tr.Check.Status == checks.Pass && !strings.Contains(evidence(tr), "MPS: available=false") {
		t.Errorf("torch on Linux should report MPS unavailable:\n%s", evidence(tr))
	}

	p = testProber(t, map[string]string{"PATH": t.TempDir()}, "os-release-debian")
	py, tr = p.Python(context.Background()), p.Torch(context.Background())
	if py.Check.Status != checks.Skip || tr.Check.Status != checks.Skip || !strings.Contains(tr.Reason, "python3 not found") {
		t.Errorf("no python3: got %s %q / %s %q", py.Check.Status, py.Reason, tr.Check.Status, tr.Reason)
	}
}

func TestProbeOS(t *testing.T) {
	p := testProber(t, map[string]string{"PATH": realPath()}, "os-release-fedora")
	p.GOOS, p.GOARCH = "linux", "arm64"
	r := p.OS(context.Background())
	if r.Check.Status != checks.Pass || evidence(r) != "platform: linux/arm64\ndistribution: Fedora Linux 41 (Workstation Edition)" {
		t.Errorf("linux: %s %q", r.Check.Status, evidence(r))
	}
	p = testProber(t, nil, "os-release-debian")
	p.GOOS = "windows"
	if r := p.OS(context.Background()); r.Check.Status != checks.Fail {
		t.Errorf("windows: %s", r.Check.Status)
	}
}
