package steps

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The summary of a recorded pytest run (-q -rfE) with a failure, an error
// and a skip: counts, and the failing tests' names.
func TestParsePytestRecorded(t *testing.T) {
	b, err := os.ReadFile("testdata/pytest-failures.txt")
	if err != nil {
		t.Fatal(err)
	}
	s := ParsePytest(string(b))
	want := map[string]int{"failed": 1, "passed": 2, "skipped": 1, "error": 1}
	if !s.Found || !reflect.DeepEqual(s.Counts, want) || s.Seconds != "0.02s" {
		t.Fatalf("summary %+v, want counts %v in 0.02s", s, want)
	}
	if got := s.Line(); got != "2 passed, 1 failed, 1 error, 1 skipped" {
		t.Errorf("Line() = %q", got)
	}
	if len(s.Failed) != 1 || TestName(s.Failed[0]) != "test_a.py::test_bad[2]" || !strings.Contains(s.Failed[0], "assert 2 == 1") {
		t.Errorf("failed %q, want test_a.py::test_bad[2] with its message", s.Failed)
	}
	if len(s.Errors) != 1 || TestName(s.Errors[0]) != "test_a.py::test_err" {
		t.Errorf("errors %q, want test_a.py::test_err", s.Errors)
	}
}

func TestParsePytestForms(t *testing.T) {
	for out, want := range map[string]map[string]int{
		"....\n4 passed in 1.62s\n":                                 {"passed": 4},
		"==== 3 passed, 2 warnings in 0.10s ====\n":                 {"passed": 3, "warning": 2},
		"== 1 failed, 2 errors, 1 xfailed, 1 deselected in 3s ==\n": {"failed": 1, "error": 2, "xfailed": 1, "deselected": 1},
		"\nno tests ran in 0.01s\n":                                 {},
	} {
		s := ParsePytest(out)
		if !s.Found || !reflect.DeepEqual(s.Counts, want) {
			t.Errorf("%q: %+v, want %v", out, s, want)
		}
	}
	// A run that died before its summary has none.
	if s := ParsePytest("..F\nFatal Python error: Segmentation fault\n"); s.Found {
		t.Errorf("a run without a summary line parsed as %+v", s)
	}
}

func TestTorchSupported(t *testing.T) {
	for v, ok := range map[string]bool{
		"1.13.0a0+gitunknown": true, "1.13.1": true, "2.5.1+cpu": true, "10.0": true,
		"1.12.1": false, "0.4.1": false, "unknown": false, "": false,
	} {
		if got := TorchSupported(v); got != ok {
			t.Errorf("TorchSupported(%q) = %v, want %v", v, got, ok)
		}
	}
}

// An interpreter without torch (the test double: a real python3 with its
// site-packages hidden) is found and reported with the reason; the default
// search passes over it.
func TestResolvePythonWithoutTorch(t *testing.T) {
	double, err := filepath.Abs("testdata/python/python3-without-torch")
	if err != nil {
		t.Fatal(err)
	}
	info := resolvePython(double, func(string) string { return "" })
	if info.Path != double || info.Torch != "" || info.Version == "" || !strings.Contains(info.Problem, "no PyTorch for "+double) {
		t.Fatalf("--python %s: %+v", double, info)
	}
	if r := noTorch("torch-extension", "t", info); r.Checks[0].Status != "skip" || r.Checks[0].Hint != TorchFix {
		t.Errorf("the skipped check %+v has not the fix", r.Checks[0])
	}

	// On PATH as python3 it is not chosen: the search goes on to
	// DefaultPython (which may or may not have torch here).
	dir := t.TempDir()
	if err := os.Symlink(double, filepath.Join(dir, "python3")); err != nil {
		t.Fatal(err)
	}
	info = resolvePython("", func(k string) string {
		if k == "PATH" {
			return dir
		}
		return ""
	})
	if info.Path != DefaultPython || !strings.Contains(info.Why, "no python3 on PATH has torch") {
		t.Errorf("default search over %s: %+v, want %s", dir, info, DefaultPython)
	}

	if info := resolvePython(filepath.Join(dir, "nope"), func(string) string { return "" }); !strings.Contains(info.Problem, "no executable file") {
		t.Errorf("a missing --python: %+v", info)
	}
}

// The python probe cache: a second resolution in the same build dir asks
// no interpreter; a package installed on its sys.path and --force ask
// again. The installed "torch" is too old: refused with its version.
func TestPythonProbeCache(t *testing.T) {
	if !isExecutable(DefaultPython) {
		t.Skipf("no %s for the test double", DefaultPython)
	}
	// Test double: a python3 without site-packages whose sys.path holds a
	// directory of the test's, counting its starts.
	dir := t.TempDir()
	count := filepath.Join(dir, "starts")
	site := filepath.Join(dir, "site")
	if err := os.Mkdir(site, 0o755); err != nil {
		t.Fatal(err)
	}
	counting := filepath.Join(dir, "python3")
	script := "#!/bin/sh\necho x >> '" + count + "'\nPYTHONPATH='" + site + "' exec " + DefaultPython + " -S \"$@\"\n"
	if err := os.WriteFile(counting, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	starts := func() int {
		b, _ := os.ReadFile(count)
		return strings.Count(string(b), "x")
	}
	build := filepath.Join(dir, "build")
	resolve := func(force bool) PythonInfo {
		p := &Python{Flag: counting, From: "--python"}
		return p.Info(&Context{BuildDir: build, Force: force, getenv: func(string) string { return "" }})
	}
	first := resolve(false)
	if first.Version == "" || first.Torch != "" || starts() != 1 || first.Why != "--python" {
		t.Fatalf("first resolution: %+v after %d starts", first, starts())
	}
	if again := resolve(false); starts() != 1 || again.Version != first.Version || again.Problem != first.Problem {
		t.Errorf("second resolution started the interpreter (%d starts) or answered otherwise: %+v", starts(), again)
	}
	if _ = resolve(true); starts() != 2 {
		t.Errorf("--force: %d starts, want 2", starts())
	}

	// "Install" an old torch into the sys.path directory.
	if err := os.MkdirAll(filepath.Join(site, "torch"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"__init__.py": "", "version.py": "__version__ = '1.12.1'\n"} {
		if err := os.WriteFile(filepath.Join(site, "torch", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := resolve(false)
	if starts() != 3 || old.Torch != "1.12.1" || !strings.Contains(old.Problem, "PyTorch 1.12.1 for "+counting+" is older than 1.13") {
		t.Errorf("after installing torch 1.12.1: %d starts, %+v", starts(), old)
	}
}
