package torchop

// One build of the op library per test run: the embedded runtime is
// materialised into a temporary directory (so the suite never writes into
// the source tree, which is embedded with all:), its kernels go through
// emugen.Generate, and runtime/torch/CMakeLists.txt builds
// liborchard_ops.so against the PyTorch of $ORCHARD_TORCH_PYTHON (default
// /usr/bin/python3, Debian's python3-torch). The tests skip only when that
// interpreter cannot import torch.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orchardkit/orchard/logs"
	"github.com/orchardkit/orchard/metalkern"
	"github.com/orchardkit/orchard/metalkern/emugen"
)

type opBuild struct {
	python  string // the interpreter with torch
	rt      string // the materialised runtime
	dir     string // the CMake build directory
	lib     string // <dir>/liborchard_ops.so
	seconds float64
	skip    string // why there is no torch
	err     error
}

var (
	buildOnce sync.Once
	built     *opBuild
	tmpRoot   string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "orchard-torchop-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpRoot = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func torchPython() string {
	if p := os.Getenv("ORCHARD_TORCH_PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

// opLibrary returns the shared build, building it on first use, or skips.
func opLibrary(t *testing.T) *opBuild {
	t.Helper()
	buildOnce.Do(func() { built = build(tmpRoot) })
	if built.skip != "" {
		t.Skip(built.skip)
	}
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built
}

func build(root string) *opBuild {
	b := &opBuild{python: torchPython()}
	out, err := exec.Command(b.python, "-c",
		"import os, torch; p = torch.utils.cmake_prefix_path; print(torch.__version__); print(p if os.path.isdir(p) else '')").Output()
	if err != nil {
		b.skip = fmt.Sprintf("%s cannot import torch (%v): install python3-torch libtorch-dev python3-pytest "+
			"(apt-get), or set ORCHARD_TORCH_PYTHON to a python3 with torch", b.python, err)
		return b
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	prefix := ""
	if len(lines) > 1 {
		prefix = strings.TrimSpace(lines[1])
	}
	if b.rt, b.err = metalkern.Embedded().Materialize(filepath.Join(root, "runtime")); b.err != nil {
		return b
	}
	gen := filepath.Join(root, "gen")
	if b.err = generate(b.rt, gen); b.err != nil {
		return b
	}
	b.dir = filepath.Join(root, "build")
	configure := []string{"cmake", "-S", filepath.Join(b.rt, "torch"), "-B", b.dir, "-DORCHARD_GEN_DIR=" + gen}
	if prefix != "" {
		configure = append(configure, "-DCMAKE_PREFIX_PATH="+prefix)
	}
	start := time.Now()
	for _, argv := range [][]string{configure, {"cmake", "--build", b.dir, "-j", strconv.Itoa(runtime.NumCPU())}} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, tail(out, 60))
			return b
		}
	}
	b.seconds = time.Since(start).Seconds()
	b.lib = filepath.Join(b.dir, "liborchard_ops.so")
	if _, err := os.Stat(b.lib); err != nil {
		b.err = fmt.Errorf("the build made no %s: %v", b.lib, err)
	}
	return b
}

// generate writes <gen>/*.emu.cpp for the runtime's kernels.
func generate(rt, gen string) error {
	return emugen.GenerateDir(filepath.Join(rt, "kernels"), gen, filepath.Join(rt, "include"))
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var summaryRE = regexp.MustCompile(`(?m)^=*\s*((?:\d+ (?:passed|failed|error|errors|skipped|xfailed|xpassed|warnings?|deselected)(?:, )?)+) in [\d.]+s`)

// The pytest suite the runtime ships (runtime/python/tests), on the CPU:
// every test must pass, and the kernel-call log it writes must parse.
func TestPytestSuitePasses(t *testing.T) {
	b := opLibrary(t)
	t.Logf("op library built in %.1f s: %s", b.seconds, b.lib)
	logCopy := filepath.Join(t.TempDir(), "calls.log")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rf",
		filepath.Join(b.rt, "python", "tests"))
	cmd.Env = append(cleanEnv(),
		"ORCHARD_OPS_LIBRARY="+b.lib,
		"PYTHONPATH="+filepath.Join(b.rt, "python"),
		"PYTHONDONTWRITEBYTECODE=1",
		"ORCHARD_TEST_DEVICE=cpu",
		"ORCHARD_TEST_KERNEL_LOG_OUT="+logCopy,
		"XDG_CACHE_HOME="+t.TempDir())
	start := time.Now()
	out, err := cmd.CombinedOutput()
	m := summaryRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("pytest printed no summary (%v):\n%s", err, tail(out, 80))
	}
	summary := string(m[1])
	t.Logf("pytest: %s in %.1f s", summary, time.Since(start).Seconds())
	if err != nil || strings.Contains(summary, "failed") || strings.Contains(summary, "error") {
		t.Fatalf("pytest: %s (%v):\n%s", summary, err, tail(out, 120))
	}
	if strings.Contains(summary, "skipped") {
		t.Errorf("pytest skipped tests on the CPU, where every test can run: %s", summary)
	}
	checkLog(t, logCopy)
}

// cleanEnv is the environment without orchard's own switches (a developer's
// ORCHARD_DEBUG_FLASH_ATN must not change what the suite sees).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ORCHARD_") {
			env = append(env, kv)
		}
	}
	return env
}

// checkLog parses the op's kernel-call lines with the log parser orchard's
// `logs` step uses: each must parse, validate, and read back byte for byte.
func checkLog(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("the suite left no kernel-call log to parse: %v", err)
	}
	defer f.Close()
	var words []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		l, err := logs.Parse(line)
		if err != nil {
			t.Fatalf("the op wrote a line logs.Parse refuses: %v\n%s", err, line)
		}
		if err := l.Validate(); err != nil {
			t.Errorf("line does not validate: %v\n%s", err, line)
		}
		if got := logs.Format(l); got != line {
			t.Errorf("line does not read back:\n got %s\nwant %s", got, line)
		}
		if l.Backend != "emu" || l.Storage != "shared" || l.Kernel == "" {
			t.Errorf("line has backend=%q storage=%q kernel=%q, want emu, shared and a kernel", l.Backend, l.Storage, l.Kernel)
		}
		words = append(words, l.Word)
	}
	if want := "FWD BWD BWD FWD BWD BWD"; strings.Join(words, " ") != want {
		t.Errorf("log words %v, want %s", words, want)
	}
}

func TestSummaryLineIsFound(t *testing.T) {
	for out, want := range map[string]string{
		"....F.\n=========== short test summary info ===========\nFAILED a.py::t - x\n1 failed, 104 passed in 25.07s\n": "1 failed, 104 passed",
		"........\n105 passed in 1.2s\n":                                                     "105 passed",
		"==== 3 passed, 1 skipped, 2 warnings in 0.50s ====\n":                               "3 passed, 1 skipped, 2 warnings",
		"E   ImportError\n!!! Interrupted: 1 error during collection !!!\n1 error in 0.3s\n": "1 error",
	} {
		m := summaryRE.FindStringSubmatch(out)
		if m == nil || m[1] != want {
			t.Errorf("summary of %q = %v, want %q", out, m, want)
		}
	}
}
