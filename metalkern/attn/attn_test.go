package attn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orchardkit/orchard/metalkern"
	"github.com/orchardkit/orchard/metalkern/npy"
	"github.com/orchardkit/orchard/metalkern/reference"
)

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

type fixture struct {
	dir  string
	arrs map[string]*npy.Array
}

func (f fixture) p(name string) string { return filepath.Join(f.dir, name+".npy") }

// opts runs the reference on the fixture's q, k, v (and do when grads).
func (f fixture) opts(out string, grads bool) Options {
	o := Options{Q: f.p("q"), K: f.p("k"), V: f.p("v"), Out: out, Reference: true}
	if grads {
		o.DO = f.p("do")
	}
	return o
}

func newFixture(t *testing.T, b, h, nq, nk, d int, dt npy.DType) fixture {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 11))
	f := fixture{dir: dir, arrs: map[string]*npy.Array{}}
	for _, x := range []struct {
		n string
		s []int
	}{{"q", []int{b, h, nq, d}}, {"k", []int{b, h, nk, d}}, {"v", []int{b, h, nk, d}}, {"do", []int{b, h, nq, d}}} {
		f.arrs[x.n] = writeArray(t, f.p(x.n), x.s, dt, rng)
	}
	return f
}

// snapshot is a directory's files and their contents (nil: missing).
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		m[e.Name()] = string(b)
	}
	return m
}

func sameSnapshot(a, b map[string]string) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func names(m map[string]string) []string {
	var ns []string
	for k := range m {
		ns = append(ns, k)
	}
	slices.Sort(ns)
	return ns
}

func TestReferenceMatchesForwardAndBackward(t *testing.T) {
	f := newFixture(t, 1, 2, 6, 9, 5, npy.Float32)
	out := filepath.Join(f.dir, "out")
	o := f.opts(out, true)
	o.Causal = true
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Dir != out || !slices.Equal(res.Files, Outputs) {
		t.Errorf("result %+v", res)
	}
	s := reference.Shape{B: 1, H: 2, Nq: 6, Nk: 9, D: 5}
	q, k, v := reference.Float64s(f.arrs["q"].Data), reference.Float64s(f.arrs["k"].Data), reference.Float64s(f.arrs["v"].Data)
	fo, lse := reference.Forward(q, k, v, s, true, reference.DefaultScale(5))
	dq, dk, dv := reference.Backward(q, k, v, fo, lse, reference.Float64s(f.arrs["do"].Data), s, true, reference.DefaultScale(5))
	for name, ref := range map[string][]float64{"o": fo, "lse": lse, "dq": dq, "dk": dk, "dv": dv} {
		a, err := npy.Read(filepath.Join(out, name+".npy"))
		if err != nil {
			t.Fatal(err)
		}
		if e := reference.RelErr(a.Data, ref); e > 1e-6 {
			t.Errorf("%s: rel err %g", name, e)
		}
		if name == "lse" && (len(a.Shape) != 3 || a.DType != npy.Float32) {
			t.Errorf("lse.npy: shape %v dtype %s", a.Shape, a.DType)
		}
	}
	if got := names(snapshot(t, out)); !slices.Equal(got, []string{"dk.npy", "dq.npy", "dv.npy", "lse.npy", "o.npy"}) {
		t.Errorf("out holds %v", got)
	}
}

// A rerun without --do leaves exactly its own outputs: the earlier run's
// gradients go, the user's other files stay.
func TestRerunWithoutDORemovesStaleGradients(t *testing.T) {
	f := newFixture(t, 1, 1, 4, 4, 8, npy.Float32)
	out := filepath.Join(f.dir, "out")
	if _, err := Run(context.Background(), f.opts(out, true)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine"), 0o644)
	os.WriteFile(filepath.Join(out, "dq.npy.bak"), []byte("mine too"), 0o644)
	res, err := Run(context.Background(), f.opts(out, false))
	if err != nil {
		t.Fatal(err)
	}
	got := snapshot(t, out)
	if !slices.Equal(names(got), []string{"dq.npy.bak", "lse.npy", "notes.txt", "o.npy"}) || got["notes.txt"] != "mine" {
		t.Errorf("out holds %v after a rerun without --do", names(got))
	}
	if !slices.Equal(res.Files, []string{"o.npy", "lse.npy"}) {
		t.Errorf("result files %v", res.Files)
	}
}

func TestMissingOutDirIsCreatedOnlyOnSuccess(t *testing.T) {
	f := newFixture(t, 1, 1, 3, 3, 4, npy.Float32)
	out := filepath.Join(f.dir, "a", "b", "out")
	// The reference finds the NaN while it loads, after the stage exists.
	nan := &npy.Array{Shape: []int{1, 1, 3, 4}, DType: npy.Float32, Data: make([]float32, 12)}
	nan.Data[5] = float32(math.NaN())
	npy.Write(f.p("nan"), nan)
	bad := f.opts(out, false)
	bad.V = f.p("nan")
	if _, err := Run(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "element 5 is NaN") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed run left %s/a behind: %v", f.dir, err)
	}
	if _, err := Run(context.Background(), f.opts(out, false)); err != nil {
		t.Fatal(err)
	}
	if got := names(snapshot(t, out)); !slices.Equal(got, []string{"lse.npy", "o.npy"}) {
		t.Errorf("out holds %v", got)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("out: %v %v", fi.Mode(), err)
	}
}

// fullDisk mounts a 64 KiB tmpfs, or skips when mounting is not permitted.
func fullDisk(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("needs a Linux tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (needs root): %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

// A disk that fills up while the outputs are written leaves DIR as it was
// and says so, naming the file.
func TestFullDiskLeavesOutUnchanged(t *testing.T) {
	disk := fullDisk(t)
	out := filepath.Join(disk, "out")
	small := newFixture(t, 1, 1, 2, 2, 2, npy.Float32)
	if _, err := Run(context.Background(), small.opts(out, true)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine"), 0o644)
	before := snapshot(t, out)

	// Each output of this shape is 16 KiB: o and lse fit, the gradients do not.
	big := newFixture(t, 1, 1, 64, 64, 64, npy.Float32)
	_, err := Run(context.Background(), big.opts(out, true))
	if err == nil || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), "cannot write "+out+"/") {
		t.Fatalf("err = %v; want the output's path and 'no space left on device'", err)
	}
	if after := snapshot(t, out); !sameSnapshot(before, after) {
		t.Errorf("out changed by a failed run: %v, was %v", names(after), names(before))
	}
	// A fresh DIR on the full disk is not left behind either.
	fresh := filepath.Join(disk, "fresh")
	if _, err := Run(context.Background(), big.opts(fresh, true)); err == nil {
		t.Fatal("no error on a full disk")
	}
	if ents, _ := os.ReadDir(disk); len(ents) != 1 {
		t.Errorf("disk holds %d entries, want only out", len(ents))
	}
}

// hugeHeader writes a .npy whose header claims shape but that holds only
// 4 bytes of data.
func hugeHeader(t *testing.T, path string, shape []int) {
	t.Helper()
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = fmt.Sprint(d)
	}
	dict := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", strings.Join(dims, ", "))
	dict += strings.Repeat(" ", 64-(10+len(dict)+1)%64) + "\n"
	hdr := append([]byte("\x93NUMPY\x01\x00"), byte(len(dict)), byte(len(dict)>>8))
	if err := os.WriteFile(path, append(append(hdr, dict...), 0, 0, 0x80, 0x3f), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A header claiming more than the kernels can index is refused with the
// numbers, before any data is read or allocated, and before any build.
func TestOversizedHeaderRejectedBeforeReading(t *testing.T) {
	f := newFixture(t, 1, 1, 2, 2, 2, npy.Float32)
	huge := filepath.Join(f.dir, "huge.npy")
	hugeHeader(t, huge, []int{64, 64, 1 << 20, 128}) // 2^39 elements, 2 TiB
	o := f.opts(filepath.Join(f.dir, "out"), false)
	o.Q, o.K, o.V = huge, huge, huge
	o.Reference = false
	o.Exec = RunnerExec(0)
	o.Runner = func(context.Context) (metalkern.Runner, error) {
		t.Fatal("the runner was built for bad input")
		return metalkern.Runner{}, nil
	}
	var err error
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 5 {
		_, err = Run(context.Background(), o)
	}
	runtime.ReadMemStats(&after)
	want := "--q " + huge + ": shape [64 64 1048576 128] has 549755813888 elements; the kernels index with 32-bit integers, at most 2147483647 elements per tensor"
	var ie *InputError
	if !errors.As(err, &ie) || err.Error() != want {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Errorf("5 runs allocated %d bytes", d)
	}
	if _, err := os.Stat(o.Out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("out was created: %v", err)
	}
}

// Tensors within the element limit but beyond the memory the run needs are
// refused with the numbers, before any data is read.
func TestRunNeedingMoreMemoryThanAvailableIsRefused(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "big.npy")
	hugeHeader(t, p, []int{1, 4, 1 << 16, 256}) // 2^26 float32 elements, 256 MiB each
	for _, tc := range []struct {
		ref  bool
		want string
	}{
		{true, "--q " + p + ": 67108864 elements of float32; this run (--backend reference) needs ~2.8 GiB and 1.0 GiB is available"},
		{false, "--q " + p + ": 67108864 elements of float32; this run (the runner) needs ~1.8 GiB and 1.0 GiB is available"},
	} {
		o := Options{Q: p, K: p, V: p, Out: filepath.Join(dir, "out"), Reference: tc.ref, Exec: RunnerExec(0),
			Runner: func(context.Context) (metalkern.Runner, error) { t.Fatal("built"); return metalkern.Runner{}, nil },
			Memory: func() (uint64, bool) { return 1 << 30, true }}
		_, err := Run(context.Background(), o)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("reference=%v: err = %v\nwant prefix %s", tc.ref, err, tc.want)
		}
	}
}

func TestScaleRange(t *testing.T) {
	for _, s := range []float64{MinScale, 1e-20, 0.125, 1e29, MaxScale} {
		if err := CheckScale(s); err != nil {
			t.Errorf("%g: %v", s, err)
		}
	}
	f := newFixture(t, 1, 1, 2, 2, 2, npy.Float32)
	for _, s := range []float64{-1, MinScale / 2, 7e29, 1e38} {
		o := f.opts(filepath.Join(f.dir, "out"), false)
		o.Scale = s
		_, err := Run(context.Background(), o)
		var ie *InputError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), "between 1.2e-38 and 6.9e+29") {
			t.Errorf("scale %g: %v", s, err)
		}
	}
	// The largest scale the range allows stays finite in the kernels' float32.
	if l := float32(MaxScale * 1.4426950408889634); l > 1.0001e30 {
		t.Errorf("MaxScale·log2(e) = %g", l)
	}
}

// NaN in an input of the runner is found by streaming it, before the build.
func TestNonFiniteRefusedBeforeBuild(t *testing.T) {
	f := newFixture(t, 1, 2, 5, 7, 3, npy.Float16)
	bad := &npy.Array{Shape: []int{1, 2, 7, 3}, DType: npy.Float16, Data: make([]float32, 42)}
	bad.Data[40] = float32(1e6) // +Inf in float16
	npy.Write(f.p("kinf"), bad)
	o := f.opts(filepath.Join(f.dir, "out"), false)
	o.K, o.Reference, o.Exec = f.p("kinf"), false, RunnerExec(0)
	o.Runner = func(context.Context) (metalkern.Runner, error) { t.Fatal("built"); return metalkern.Runner{}, nil }
	_, err := Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "--k "+f.p("kinf")+": element 40 is +Inf") {
		t.Fatalf("err = %v", err)
	}
	o.AllowNonFinite = true
	o.Runner = func(context.Context) (metalkern.Runner, error) {
		return metalkern.Runner{}, errors.New("no build here")
	}
	if _, err := Run(context.Background(), o); err == nil || err.Error() != "no build here" {
		t.Fatalf("with AllowNonFinite: %v", err)
	}
}

// A rename that fails while the outputs are put in place (here: an earlier
// dv.npy that cannot be moved, being immutable) undoes the renames before
// it: DIR keeps the earlier run's outputs.
func TestFailedCommitRestoresEarlierOutputs(t *testing.T) {
	f := newFixture(t, 1, 1, 4, 4, 8, npy.Float32)
	out := filepath.Join(f.dir, "out")
	if _, err := Run(context.Background(), f.opts(out, true)); err != nil {
		t.Fatal(err)
	}
	dv := filepath.Join(out, "dv.npy")
	if b, err := exec.Command("chattr", "+i", dv).CombinedOutput(); err != nil {
		t.Skipf("cannot make a file immutable (chattr +i needs root and ext4/xfs/btrfs): %v: %s", err, bytes.TrimSpace(b))
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", dv).Run() })
	before := snapshot(t, out)
	o := f.opts(out, false)
	o.Causal = true // different outputs
	_, err := Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "cannot write "+dv+": operation not permitted") {
		t.Fatalf("err = %v", err)
	}
	if after := snapshot(t, out); !sameSnapshot(before, after) {
		t.Errorf("out changed by a failed commit: %v, was %v", names(after), names(before))
	}
}

// The stage of a killed run is swept by the next run into the same DIR; a
// live run's stage and the user's own files are not.
func TestKilledRunsStageIsSwept(t *testing.T) {
	f := newFixture(t, 1, 1, 2, 2, 2, npy.Float32)
	out := filepath.Join(f.dir, "out")
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	killed := fmt.Sprintf(".orchard-attn-%d-123", dead.Process.Pid)
	live := fmt.Sprintf(".orchard-attn-%d-456", os.Getppid())
	for _, d := range []string{killed, live, ".orchard-attn-mine"} {
		os.MkdirAll(filepath.Join(out, d), 0o755)
		os.WriteFile(filepath.Join(out, d, "o.npy"), []byte("x"), 0o644)
	}
	if _, err := Run(context.Background(), f.opts(out, false)); err != nil {
		t.Fatal(err)
	}
	want := []string{".orchard-attn-mine", live, "lse.npy", "o.npy"}
	slices.Sort(want)
	if got := names(snapshot(t, out)); !slices.Equal(got, want) {
		t.Errorf("out holds %v, want %v", got, want)
	}
}

// Cancelling (Ctrl-C) ends a long reference run at once, leaving DIR as it
// was.
func TestCancelEndsAReferenceRun(t *testing.T) {
	f := newFixture(t, 1, 1, 2048, 2048, 64, npy.Float32) // ~2 s of float64 work
	out := filepath.Join(f.dir, "out")
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	_, err := Run(ctx, f.opts(out, true))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("out exists after a cancelled run: %v", err)
	}
}
