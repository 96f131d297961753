package metalkern

// Helpers of runlog_test.go: build the real runner (every kernel, or
// attn_fwd.metal alone), write a case's inputs, run the runner with a clean
// environment, and read a log back through logs.Parse and logs.Format.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orchardkit/orchard/metalkern/emugen"
	"github.com/orchardkit/orchard/metalkern/npy"
	"github.com/orchardkit/orchard/metalkern/reference"

	"github.com/orchardkit/orchard/logs"
)

type runlogBuild struct {
	once sync.Once
	bin  string
	err  error
}

var runlogFull, runlogFwdOnly runlogBuild

// runlogRunner returns the runner built from every kernel file.
func runlogRunner(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: building the runner takes about a minute")
	}
	emuNeedTools(t, "cmake", "g++", "make")
	rt := emuRuntimeDir(t)
	runlogFull.once.Do(func() { runlogFull.bin, runlogFull.err = runlogBuildRunner(rt, "full") })
	if runlogFull.err != nil {
		t.Fatal(runlogFull.err)
	}
	return runlogFull.bin
}

// runlogFwdRunner returns a runner built from attn_fwd.metal alone. It
// reuses the full build's directory (after the full runner was copied out),
// so only the forward kernels are compiled again.
func runlogFwdRunner(t *testing.T) string {
	t.Helper()
	runlogRunner(t)
	runlogFwdOnly.once.Do(func() {
		runlogFwdOnly.bin, runlogFwdOnly.err = runlogBuildRunner(emuRuntimeDir(t), "fwd", "attn_fwd.metal")
	})
	if runlogFwdOnly.err != nil {
		t.Fatal(runlogFwdOnly.err)
	}
	return runlogFwdOnly.bin
}

// runlogBuildRunner generates the named kernel files (under runtime/kernels;
// none = all) into <root>/gen-<name>, builds the real runner from them with
// the runtime's CMakeLists.txt and copies it to <root>/orchard-runner-<name>.
func runlogBuildRunner(rt, name string, kernels ...string) (string, error) {
	root := filepath.Join(emuTmpRoot, "runlog")
	gen, build := filepath.Join(root, "gen-"+name), filepath.Join(root, "build")
	if len(kernels) == 0 {
		if err := emuGenerateAll(rt, filepath.Join(rt, "kernels"), gen); err != nil {
			return "", err
		}
	} else {
		if err := os.MkdirAll(gen, 0o755); err != nil {
			return "", err
		}
		for _, k := range kernels {
			p := filepath.Join(rt, "kernels", k)
			src, err := os.ReadFile(p)
			if err != nil {
				return "", err
			}
			code, _, err := emugen.Generate(p, src, filepath.Join(rt, "include"))
			if err != nil {
				return "", err
			}
			if err := os.WriteFile(filepath.Join(gen, emugen.OutputName(p)), code, 0o644); err != nil {
				return "", err
			}
		}
	}
	for _, argv := range [][]string{
		{"cmake", "-S", rt, "-B", build, "-DORCHARD_BACKEND=emu", "-DORCHARD_GEN_DIR=" + gen, "-DCMAKE_BUILD_TYPE=Release"},
		{"cmake", "--build", build, "-j", strconv.Itoa(runtime.NumCPU()), "--target", "orchard-runner-emu"},
	} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			return "", fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, emuTail(out, 60))
		}
	}
	bin, err := os.ReadFile(filepath.Join(build, "orchard-runner-emu"))
	if err != nil {
		return "", err
	}
	dst := filepath.Join(root, "orchard-runner-"+name)
	return dst, os.WriteFile(dst, bin, 0o755)
}

// runlogCase is one runner invocation's inputs.
type runlogCase struct {
	s      reference.Shape
	dt     npy.DType
	causal bool
	bwd    bool
}

// args writes the case's inputs to dir and returns `run` arguments (with
// --out dir/out).
func (c runlogCase) args(t *testing.T, dir string) []string {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(c.s.Nq), uint64(c.s.D)))
	qs, ks := []int{c.s.B, c.s.H, c.s.Nq, c.s.D}, []int{c.s.B, c.s.H, c.s.Nk, c.s.D}
	write := func(name string, shape []int, n int) string {
		p := filepath.Join(dir, name+".npy")
		if err := npy.Write(p, &npy.Array{Shape: shape, DType: c.dt, Data: reference.RandNormal(rng, n)}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	a := []string{"run", "--q", write("q", qs, c.s.QLen()), "--k", write("k", ks, c.s.KVLen()),
		"--v", write("v", ks, c.s.KVLen()), "--out", filepath.Join(dir, "out")}
	if c.bwd {
		a = append(a, "--do", write("do", qs, c.s.QLen()))
	}
	if c.causal {
		a = append(a, "--causal")
	}
	return a
}

type runlogResult struct {
	stats          Stats
	stdout, stderr string
	code, pid      int
	start, end     time.Time
}

// runlogExec runs bin with env added to an environment cleared of ORCHARD_*
// variables (so the caller's shell cannot switch logs on or off).
func runlogExec(t *testing.T, bin string, env []string, args ...string) runlogResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ORCHARD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	r := runlogResult{start: time.Now()}
	err := cmd.Run()
	r.end = time.Now()
	r.stdout, r.stderr = stdout.String(), stderr.String()
	if cmd.Process != nil {
		r.pid = cmd.Process.Pid
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil: // Errorf, not Fatalf: this may run on another goroutine
		t.Errorf("%s: %v", bin, err)
		r.code = -1
	}
	if r.code == 0 {
		if err := json.Unmarshal([]byte(r.stdout), &r.stats); err != nil {
			t.Errorf("runner stdout is not one JSON line (%v): %q", err, r.stdout)
			r.code = -1
		}
	}
	return r
}

// runlogEnv switches both logs on at the given paths, with run id runID.
func runlogEnv(calls, profile, runID string) []string {
	return []string{logs.EnvDebugFlashAttn + "=1", logs.EnvTensorProfile + "=1",
		logs.EnvKernelLog + "=" + calls, logs.EnvTensorProfileLog + "=" + profile, logs.EnvRunID + "=" + runID}
}

// runlogLines reads a log: every line must end in \n, parse, and come out of
// logs.Format unchanged (typed keys in the table's order, quoting as Go does).
func runlogLines(t *testing.T, path string) []logs.Line {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) == 0 || data[len(data)-1] != '\n' {
		t.Fatalf("%s does not end with a newline: %q", path, data)
	}
	var out []logs.Line
	for _, raw := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		l, err := logs.Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v\n%q", path, err, raw)
		}
		if f := logs.Format(l); f != raw {
			t.Errorf("line does not round-trip through logs.Format:\n got %q\nwant %q", raw, f)
		}
		if len(raw) >= 4096 {
			t.Errorf("line of %d bytes (the writer keeps lines under 4 KiB)", len(raw))
		}
		out = append(out, l)
	}
	return out
}

func runlogOfPID(ls []logs.Line, pid int, words ...string) []logs.Line {
	var out []logs.Line
	for _, l := range ls {
		if l.PID == pid && slices.Contains(words, l.Word) {
			out = append(out, l)
		}
	}
	return out
}

func runlogMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}
