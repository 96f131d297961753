package steps

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orchardkit/orchard/checks"
)

// probeCacheEnv is a build dir and a PATH whose c++ is a wrapper script
// around this machine's real compiler that logs each call: the probe
// really compiles and runs its program, and the test counts compiles.
type probeCacheEnv struct {
	buildDir string
	wrapper  string // <dir>/c++
	calls    string // one line per wrapper call: its arguments
	env      map[string]string
}

func newProbeCacheEnv(t *testing.T) *probeCacheEnv {
	t.Helper()
	real, err := exec.LookPath("c++")
	if err != nil {
		t.Fatalf("no c++ on this machine's PATH: %v", err)
	}
	dir := t.TempDir()
	e := &probeCacheEnv{buildDir: t.TempDir(), wrapper: filepath.Join(dir, "c++"), calls: filepath.Join(dir, "calls.log")}
	script := "#!/bin/sh\necho \"$*\" >> '" + e.calls + "'\nexec '" + real + "' \"$@\"\n"
	if err := os.WriteFile(e.wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e.env = map[string]string{"PATH": dir + string(filepath.ListSeparator) + realPath()}
	return e
}

// compiles is how many times the wrapper compiled the probe program.
func (e *probeCacheEnv) compiles(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(e.calls)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), cxxProbeSrcName)
}

// run runs the toolchain step as a new orchard process would: a fresh
// Prober, the build dir's probe cache. It fails the test unless the step
// passes with this wrapper as the compiler.
func (e *probeCacheEnv) run(t *testing.T, force bool) (*ToolchainStep, Result, string) {
	t.Helper()
	s := &ToolchainStep{Prober: testProber(t, e.env, "os-release-debian")}
	var log bytes.Buffer
	res, err := s.Run(context.Background(), &Context{Backend: "emu", BuildDir: e.buildDir, Force: force, Log: &log})
	if err != nil || res.Status() != checks.Pass {
		t.Fatalf("toolchain step: %v, status %s: %s\n%s", err, res.Status(), ids(res.Checks), log.String())
	}
	if s.Out.CXXPath != e.wrapper {
		t.Fatalf("compiler %q, want the wrapper %s", s.Out.CXXPath, e.wrapper)
	}
	return s, res, log.String()
}

// expect runs the step and checks whether the probe compiled (reprobe) or
// its cached answer was used.
func (e *probeCacheEnv) expect(t *testing.T, what string, force, reprobe bool) (*ToolchainStep, Result, string) {
	t.Helper()
	before := e.compiles(t)
	s, res, log := e.run(t, force)
	switch got := e.compiles(t) - before; {
	case reprobe && got != 1:
		t.Fatalf("%s: the probe compiled %d times, want 1 (a re-probe); step log:\n%s", what, got, log)
	case !reprobe && got != 0:
		t.Fatalf("%s: the probe compiled %d times, want 0 (the cached answer); step log:\n%s", what, got, log)
	}
	return s, res, log
}

func TestProbeCacheReusedWhenNothingChanged(t *testing.T) {
	e := newProbeCacheEnv(t)
	first, _, _ := e.expect(t, "first run", false, true)
	if _, err := os.Stat(probeCacheFile(e.buildDir)); err != nil {
		t.Fatalf("no probe cache after a passing probe: %v", err)
	}
	second, res, log := e.expect(t, "second run, nothing changed", false, false)
	if !reflect.DeepEqual(first.Out, second.Out) {
		t.Errorf("cached output differs:\nfirst  %+v\nsecond %+v", first.Out, second.Out)
	}
	if !strings.Contains(log, "probes reused from") {
		t.Errorf("the step log does not say the probes were reused:\n%s", log)
	}
	for _, c := range res.Checks {
		reused := strings.Contains(strings.Join(c.Evidence, "\n"), "--force probes again")
		if want := c.ID == ProbeCMake || c.ID == ProbeCXX; reused != want {
			t.Errorf("%s: evidence says reused=%v, want %v: %q", c.ID, reused, want, c.Evidence)
		}
	}
	e.expect(t, "third run", false, false)
}

func TestProbeCacheRerunsWhenTheCompilerFileChanges(t *testing.T) {
	e := newProbeCacheEnv(t)
	e.expect(t, "first run", false, true)
	e.expect(t, "nothing changed", false, false)

	// Touched: same content, new mtime.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(e.wrapper, later, later); err != nil {
		t.Fatal(err)
	}
	_, _, log := e.expect(t, "after touching the compiler", false, true)
	if !strings.Contains(log, "tool c++ changed") {
		t.Errorf("the step log does not name the change:\n%s", log)
	}
	e.expect(t, "touched compiler, then nothing changed", false, false)

	// Replaced by another file with the same content and the old mtime (as
	// a package manager does): the inode and ctime differ.
	b, err := os.ReadFile(e.wrapper)
	if err != nil {
		t.Fatal(err)
	}
	tmp := e.wrapper + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, later, later); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, e.wrapper); err != nil {
		t.Fatal(err)
	}
	e.expect(t, "after replacing the compiler", false, true)
	e.expect(t, "replaced compiler, then nothing changed", false, false)
}

func TestProbeCacheRerunsWhenPATHChanges(t *testing.T) {
	e := newProbeCacheEnv(t)
	e.expect(t, "first run", false, true)
	e.expect(t, "nothing changed", false, false)
	// A new directory ahead of everything (here empty: the same tools are
	// found, but only the probe may say so).
	e.env["PATH"] = t.TempDir() + string(filepath.ListSeparator) + e.env["PATH"]
	_, _, log := e.expect(t, "after changing PATH", false, true)
	if !strings.Contains(log, "env PATH changed") {
		t.Errorf("the step log does not name the change:\n%s", log)
	}
	e.expect(t, "new PATH, then nothing changed", false, false)
}

func TestProbeCacheRerunsWhenCXXChanges(t *testing.T) {
	e := newProbeCacheEnv(t)
	e.expect(t, "first run", false, true)
	e.expect(t, "nothing changed", false, false)
	e.env["CXX"] = "c++"
	e.expect(t, "after setting CXX", false, true)
	e.expect(t, "CXX set, then nothing changed", false, false)
}

func TestProbeCacheForceReprobesThroughTheEngine(t *testing.T) {
	e := newProbeCacheEnv(t)
	e.expect(t, "first run", false, true)
	e.expect(t, "nothing changed", false, false)
	// --force reaches the step through the engine's Options.
	before := e.compiles(t)
	getenv := func(k string) string { return e.env[k] }
	run, err := New(Options{BuildDir: e.buildDir, Force: true, NoWait: true, Getenv: getenv}).
		Run(context.Background(), []Step{&ToolchainStep{Prober: testProber(t, e.env, "os-release-debian")}})
	if err != nil || run.Failed {
		t.Fatalf("engine run: %v failed=%v: %s", err, run != nil && run.Failed, ids(run.Checks))
	}
	if got := e.compiles(t) - before; got != 1 {
		t.Fatalf("--force: the probe compiled %d times, want 1", got)
	}
	e.expect(t, "after --force, nothing changed", false, false)
}

func TestProbeCacheDamagedFileMeansReprobe(t *testing.T) {
	e := newProbeCacheEnv(t)
	e.expect(t, "first run", false, true)
	for _, junk := range []string{"", "{", `{"key": 1}`, "\x00\xff garbage"} {
		if err := os.WriteFile(probeCacheFile(e.buildDir), []byte(junk), 0o644); err != nil {
			t.Fatal(err)
		}
		e.expect(t, "damaged cache "+strconv.Quote(junk), false, true)
		e.expect(t, "rewritten cache", false, false)
	}
	// A cache whose answers were edited to a failure is not believed.
	b, err := os.ReadFile(probeCacheFile(e.buildDir))
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), `"status": "pass"`, `"status": "fail"`, 1)
	if err := os.WriteFile(probeCacheFile(e.buildDir), []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	e.expect(t, "edited cache", false, true)
}

func TestProbeCacheNeverKeepsAFailure(t *testing.T) {
	e := newProbeCacheEnv(t)
	// The wrapper compiler without the C++ headers: <barrier> is missing.
	e.env["CXX"] = "c++ -nostdinc++"
	for i := 0; i < 2; i++ {
		before := e.compiles(t)
		s := &ToolchainStep{Prober: testProber(t, e.env, "os-release-debian")}
		res, err := s.Run(context.Background(), &Context{Backend: "emu", BuildDir: e.buildDir})
		if err != nil || !res.EnvFailure {
			t.Fatalf("run %d: want an environment failure, got %v %s", i, err, ids(res.Checks))
		}
		if got := e.compiles(t) - before; got != 1 {
			t.Fatalf("run %d: the failing probe compiled %d times, want 1 (never cached)", i, got)
		}
	}
	if _, err := os.Stat(probeCacheFile(e.buildDir)); !os.IsNotExist(err) {
		t.Errorf("a failing probe left a cache file: %v", err)
	}
}
