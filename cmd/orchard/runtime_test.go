package main

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/orchardkit/orchard/metalkern"
	"github.com/orchardkit/orchard/metalkern/npy"
	"github.com/orchardkit/orchard/metalkern/reference"

	"github.com/orchardkit/orchard/checks"
)

var (
	sharedOnce sync.Once
	sharedDir  string
	sharedErr  string
)

// sharedBuild is one real emu build of the embedded runtime that tests
// which only use a build (attn, verify) share.
func sharedBuild(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the runtime (-short)")
	}
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "orchard-shared-build-")
		if err != nil {
			sharedErr = err.Error()
			return
		}
		sharedDir = dir
		code, out, errOut := runCLI(t, nil, "rebuild", "--build-dir", dir)
		if code != 0 {
			sharedErr = out + errOut
		}
	})
	if sharedErr != "" {
		t.Fatalf("shared build failed:\n%s", sharedErr)
	}
	return sharedDir
}

func writeArray(t *testing.T, path string, shape []int, dt npy.DType, rng *rand.Rand) *npy.Array {
	t.Helper()
	n := 1
	for _, d := range shape {
		n *= d
	}
	a := &npy.Array{Shape: shape, DType: dt, Data: reference.RandNormal(rng, n)}
	if dt == npy.Float16 {
		for i, v := range a.Data {
			a.Data[i] = npy.RoundToFloat16(v)
		}
	}
	if err := npy.Write(path, a); err != nil {
		t.Fatal(err)
	}
	return a
}

// attnFixture writes q, k, v, do of the given shape into a temp dir.
func attnFixture(t *testing.T, b, h, nq, nk, d int, dt npy.DType) (dir string, arrs map[string]*npy.Array) {
	dir = t.TempDir()
	rng := rand.New(rand.NewPCG(7, 11))
	arrs = map[string]*npy.Array{
		"q":  writeArray(t, filepath.Join(dir, "q.npy"), []int{b, h, nq, d}, dt, rng),
		"k":  writeArray(t, filepath.Join(dir, "k.npy"), []int{b, h, nk, d}, dt, rng),
		"v":  writeArray(t, filepath.Join(dir, "v.npy"), []int{b, h, nk, d}, dt, rng),
		"do": writeArray(t, filepath.Join(dir, "do.npy"), []int{b, h, nq, d}, dt, rng),
	}
	return dir, arrs
}

func TestAttnBadInputIsExit2AndLeavesNothing(t *testing.T) {
	dir, _ := attnFixture(t, 1, 2, 5, 7, 3, npy.Float32)
	p := func(n string) string { return filepath.Join(dir, n) }
	rng := rand.New(rand.NewPCG(1, 2))
	writeArray(t, p("k_wrong_d.npy"), []int{1, 2, 7, 4}, npy.Float32, rng)
	writeArray(t, p("v_wrong_n.npy"), []int{1, 2, 6, 3}, npy.Float32, rng)
	writeArray(t, p("k_half.npy"), []int{1, 2, 7, 3}, npy.Float16, rng)
	writeArray(t, p("q3d.npy"), []int{2, 5, 3}, npy.Float32, rng)
	writeArray(t, p("q_d300.npy"), []int{1, 1, 2, 300}, npy.Float32, rng)
	writeArray(t, p("k_d300.npy"), []int{1, 1, 2, 300}, npy.Float32, rng)
	writeArray(t, p("do_wrong.npy"), []int{1, 2, 7, 3}, npy.Float32, rng)
	nan := &npy.Array{Shape: []int{1, 2, 5, 3}, DType: npy.Float32, Data: make([]float32, 30)}
	for i := range nan.Data {
		nan.Data[i] = 1
	}
	nan.Data[17] = float32(math.NaN())
	npy.Write(p("q_nan.npy"), nan)
	os.WriteFile(p("garbage.npy"), []byte("not an array"), 0o644)

	out := filepath.Join(dir, "out")
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, "keep.txt"), []byte("user file"), 0o644)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--q", p("garbage.npy"), "--k", p("k.npy"), "--v", p("v.npy")}, "garbage.npy"},
		{[]string{"--q", p("missing.npy"), "--k", p("k.npy"), "--v", p("v.npy")}, "missing.npy"},
		{[]string{"--q", p("q.npy"), "--k", p("k_wrong_d.npy"), "--v", p("v.npy")}, "does not match Q"},
		{[]string{"--q", p("q.npy"), "--k", p("k.npy"), "--v", p("v_wrong_n.npy")}, "must equal K's"},
		{[]string{"--q", p("q.npy"), "--k", p("k_half.npy"), "--v", p("v.npy")}, "dtypes differ"},
		{[]string{"--q", p("q3d.npy"), "--k", p("k.npy"), "--v", p("v.npy")}, "want 4"},
		{[]string{"--q", p("q_d300.npy"), "--k", p("k_d300.npy"), "--v", p("k_d300.npy")}, "D=300"},
		{[]string{"--q", p("q.npy"), "--k", p("k.npy"), "--v", p("v.npy"), "--do", p("do_wrong.npy")}, "--do"},
		{[]string{"--q", p("q_nan.npy"), "--k", p("k.npy"), "--v", p("v.npy")}, "--allow-nonfinite"},
		{[]string{"--q", p("q.npy"), "--k", p("k.npy"), "--v", p("v.npy"), "--scale", "-1"}, "--scale"},
	} {
		args := append([]string{"attn", "--out", out}, tc.args...)
		code, stdout, stderr := runCLI(t, nil, args...)
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 mentioning %q", tc.args, code, stderr, tc.want)
		}
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 1 || ents[0].Name() != "keep.txt" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("out dir after failures: %v", names)
	}
}

// Both dtypes in both storage modes (--storage private stages every tensor
// through a shared buffer and a copy).
func TestAttnOnEmuMatchesReference(t *testing.T) {
	build := sharedBuild(t)
	for _, dt := range []npy.DType{npy.Float32, npy.Float16} {
		for _, storage := range metalkern.Storages {
			dir, in := attnFixture(t, 2, 1, 33, 20, 24, dt)
			out := filepath.Join(dir, "out")
			code, _, stderr := runCLI(t, nil, "attn", "--build-dir", build, "--out", out, "--storage", storage,
				"--q", filepath.Join(dir, "q.npy"), "--k", filepath.Join(dir, "k.npy"), "--v", filepath.Join(dir, "v.npy"), "--do", filepath.Join(dir, "do.npy"))
			if code != 0 {
				t.Fatalf("%s %s: exit %d: %s", dt, storage, code, stderr)
			}
			attnCheckReference(t, dt, storage, in, out)
		}
	}
}

func attnCheckReference(t *testing.T, dt npy.DType, storage string, in map[string]*npy.Array, out string) {
	t.Helper()
	{
		s := reference.Shape{B: 2, H: 1, Nq: 33, Nk: 20, D: 24}
		q, k, v := reference.Float64s(in["q"].Data), reference.Float64s(in["k"].Data), reference.Float64s(in["v"].Data)
		o, lse := reference.Forward(q, k, v, s, false, reference.DefaultScale(24))
		dq, dk, dv := reference.Backward(q, k, v, o, lse, reference.Float64s(in["do"].Data), s, false, reference.DefaultScale(24))
		tol, _ := reference.ToleranceFor(dt)
		for name, ref := range map[string][]float64{"o": o, "lse": lse, "dq": dq, "dk": dk, "dv": dv} {
			a, err := npy.Read(filepath.Join(out, name+".npy"))
			if err != nil {
				t.Fatal(err)
			}
			wantDT := dt
			if name == "lse" {
				wantDT = npy.Float32
			}
			if a.DType != wantDT {
				t.Errorf("%s %s: dtype %s", dt, name, a.DType)
			}
			if e := reference.RelErr(a.Data, ref); !(e <= tol.MaxRelErr) {
				t.Errorf("%s %s %s: rel err %g > %g", dt, storage, name, e, tol.MaxRelErr)
			}
		}
	}
}

func TestEjectRefusesNonEmptyDir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "mine.txt"), []byte("x"), 0o644)
	code, _, stderr := runCLI(t, nil, "eject", dir)
	if code != exitUsage || !strings.Contains(stderr, "not empty") {
		t.Fatalf("eject into non-empty: %d %q", code, stderr)
	}
	if code, _, _ := runCLI(t, nil, "eject", "--force", dir); code != 0 {
		t.Fatalf("eject --force: %d", code)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "mine.txt")); string(b) != "x" {
		t.Fatal("eject --force touched a user file")
	}
	if _, err := os.Stat(filepath.Join(dir, "kernels", "attn_fwd.metal")); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI(t, nil, "rebuild", "--runtime", t.TempDir())
	if code != exitUsage || !strings.Contains(stderr, "orchard eject") {
		t.Fatalf("--runtime on a non-runtime dir: %d %q", code, stderr)
	}
}

// editKernel ejects the runtime to a temp dir and applies edit to one file.
func editKernel(t *testing.T, file string, edit func(lines []string) []string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "runtime")
	if code, _, stderr := runCLI(t, nil, "eject", dir); code != 0 {
		t.Fatalf("eject: %s", stderr)
	}
	p := filepath.Join(dir, "kernels", file)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := edit(strings.Split(string(b), "\n"))
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSyntaxErrorFailsShadersWithFileLine(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the runtime (-short)")
	}
	var line int
	rt := editKernel(t, "attn_fwd.metal", func(ls []string) []string {
		for i, l := range ls {
			if strings.Contains(l, "l[r] = 0.0f;") {
				ls[i] = strings.Replace(l, "l[r] = 0.0f;", "l[r] = undeclared_in_metal;", 1)
				line = i + 1
				return ls
			}
		}
		t.Fatal("anchor line not found in attn_fwd.metal")
		return ls
	})
	r, code, _ := runJSON(t, "rebuild", "--runtime", rt, "--build-dir", t.TempDir())
	c := reportCheck(r, "shaders")
	if code != 1 || c.Status != checks.Fail {
		t.Fatalf("exit %d, shaders %+v", code, c)
	}
	wantFile := filepath.Join(rt, "kernels", "attn_fwd.metal")
	if c.File != wantFile || c.Line != line {
		t.Fatalf("points at %s:%d, want %s:%d", c.File, c.Line, wantFile, line)
	}
	if !strings.Contains(c.Evidence[0], "attn_fwd.metal:") || !strings.Contains(c.Evidence[0], "undeclared_in_metal") {
		t.Fatalf("evidence: %v", c.Evidence)
	}
	if s := stepByName(r, "kernel"); s.Status != checks.Skip {
		t.Fatalf("kernel step after a shader failure: %+v", s)
	}
}

func TestMissingBarrierFailsRaceCheckWithMetalLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the ThreadSanitizer runner (-short)")
	}
	var removed, qtile int
	rt := editKernel(t, "attn_fwd.metal", func(ls []string) []string {
		// The _qtg kernels load their Q block once, before the loop; the same
		// barrier publishes it, so the race found may be on either tile.
		for i, l := range ls {
			if strings.Contains(l, "load_tile<T, BQ, BD>(qs, qb") {
				qtile = i + 1
			}
		}
		if qtile == 0 {
			t.Fatal("Q block load not found in attn_fwd.metal")
		}
		// The barrier between loading the K tile and reading it.
		for i := 1; i < len(ls); i++ {
			if strings.Contains(ls[i-1], "load_tile<T, BK, BD>(kv, kb") && strings.Contains(ls[i], "threadgroup_barrier") {
				removed = i + 1
				return append(ls[:i], ls[i+1:]...)
			}
		}
		t.Fatal("barrier not found in attn_fwd.metal")
		return ls
	})
	build := t.TempDir()
	r, code, stderr := runJSON(t, "rebuild", "--runtime", rt, "--race", "--build-dir", build)
	c := reportCheck(r, "races")
	if code != 1 || c.Status != checks.Fail {
		t.Fatalf("exit %d, races %+v\n%s", code, c, stderr)
	}
	nearBarrier := c.Line >= removed-2 && c.Line <= removed+2
	if c.File != filepath.Join(rt, "kernels", "attn_fwd.metal") || !(nearBarrier || c.Line == qtile) {
		t.Fatalf("race points at %s:%d; the barrier was at line %d (the Q block load at line %d)", c.File, c.Line, removed, qtile)
	}
	if !strings.Contains(strings.Join(c.Evidence, "\n"), "data race") {
		t.Fatalf("evidence: %v", c.Evidence)
	}

	// Editing a host file reruns the kernel build, not the shader compile.
	f, err := os.OpenFile(filepath.Join(rt, "host", "runner.cpp"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\n// edited by a test\n")
	f.Close()
	r, _, _ = runJSON(t, "rebuild", "--runtime", rt, "--race", "--build-dir", build, "--explain")
	if s := stepByName(r, "shaders"); !s.Cached {
		t.Errorf("shaders reran after a host edit: %+v", s)
	}
	if s := stepByName(r, "kernel"); s.Cached || !strings.Contains(s.Explain, "changed") {
		t.Errorf("kernel did not rerun after a host edit: %+v", s)
	}
}

func TestUnbindableKernelParameterFailsShadersWithFileLine(t *testing.T) {
	var line int
	rt := editKernel(t, "attn_fwd.metal", func(ls []string) []string {
		for i, l := range ls {
			if strings.HasPrefix(l, "[[kernel]] void attn_fwd(") && strings.Contains(l, "q [[buffer(0)]]") {
				ls[i] = strings.Replace(l, "q [[buffer(0)]]", "q", 1)
				line = i + 1
				return ls
			}
		}
		t.Fatal("kernel signature not found in attn_fwd.metal")
		return ls
	})
	r, code, _ := runJSON(t, "rebuild", "--runtime", rt, "--build-dir", t.TempDir())
	c := reportCheck(r, "shaders")
	if code != 1 || c.Status != checks.Fail || c.File != filepath.Join(rt, "kernels", "attn_fwd.metal") || c.Line < line || c.Line > line+3 {
		t.Fatalf("exit %d, shaders %s at %s:%d (signature at line %d): %v", code, c.Status, c.File, c.Line, line, c.Evidence)
	}
}

// A construct Metal rejects (a std:: call in a kernel) fails the shaders
// step at the .metal line, before any compile.
func TestMetalSubsetViolationFailsShadersWithFileLine(t *testing.T) {
	var line int
	rt := editKernel(t, "attn_fwd.metal", func(ls []string) []string {
		for i, l := range ls {
			if strings.Contains(l, "l[r] = 0.0f;") {
				ls[i] = strings.Replace(l, "l[r] = 0.0f;", "l[r] = std::max(0.0f, 0.0f);", 1)
				line = i + 1
				return ls
			}
		}
		t.Fatal("anchor line not found in attn_fwd.metal")
		return ls
	})
	r, code, _ := runJSON(t, "rebuild", "--runtime", rt, "--build-dir", t.TempDir())
	c := reportCheck(r, "shaders")
	if code != 1 || c.Status != checks.Fail {
		t.Fatalf("exit %d, shaders %+v", code, c)
	}
	if want := filepath.Join(rt, "kernels", "attn_fwd.metal"); c.File != want || c.Line != line {
		t.Fatalf("points at %s:%d, want %s:%d", c.File, c.Line, want, line)
	}
	if ev := strings.Join(c.Evidence, "\n"); !strings.Contains(ev, "the C++ standard library is not available in Metal") {
		t.Fatalf("evidence: %v", c.Evidence)
	}
}
