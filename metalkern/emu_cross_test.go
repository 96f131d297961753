package metalkern

// The fibers launcher's hand-written context switch exists for x86-64 and
// aarch64. This test cross-compiles the launcher, the backend, the test
// driver and three test kernels with Debian's aarch64 cross g++ and runs
// them under qemu-user: matmul (simdgroup matrices, threadgroup memory),
// every simd op, a divergence report (a C++ exception thrown and caught
// on a fiber stack), and a fiber stack overflow turned into a dispatch error
// (the signal handler's aarch64 ucontext redirect).

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orchardkit/orchard/metalkern/emugen"
	"github.com/orchardkit/orchard/metalkern/npy"
)

const (
	arm64CXX     = "aarch64-linux-gnu-g++"
	arm64QEMU    = "qemu-aarch64"
	arm64Sysroot = "/usr/aarch64-linux-gnu"
)

func TestEmuArm64Fibers(t *testing.T) {
	if runtime.GOARCH == "arm64" {
		t.Skip("running on arm64: the native emu tests exercise the aarch64 context switch")
	}
	for _, tool := range []string{arm64CXX, arm64QEMU} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install g++-aarch64-linux-gnu qemu-user): "+
				"the aarch64 context switch cannot be tested here", tool)
		}
	}
	if st, err := os.Stat(arm64Sysroot); err != nil || !st.IsDir() {
		t.Skipf("%s is missing (apt-get install g++-aarch64-linux-gnu)", arm64Sysroot)
	}
	rt := emuRuntimeDir(t)
	dir := t.TempDir()
	gen := filepath.Join(dir, "gen")
	if err := os.MkdirAll(gen, 0o755); err != nil {
		t.Fatal(err)
	}
	var sources []string
	for _, name := range []string{"matmul.metal", "simd.metal", "divergent.metal", "limits.metal"} {
		f := filepath.Join("testdata", "emu", "ok", name)
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		code, _, err := emugen.Generate(f, src, filepath.Join(rt, "include"))
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(gen, emugen.OutputName(f))
		if err := os.WriteFile(out, code, 0o644); err != nil {
			t.Fatal(err)
		}
		sources = append(sources, out)
	}
	for _, f := range []string{"launcher", "group", "fibers", "threads", "fiber_switch"} {
		sources = append(sources, filepath.Join(rt, "emu", f+".cpp"))
	}
	driver, _ := filepath.Abs(filepath.Join("testdata", "emu", "driver.cpp"))
	sources = append(sources, filepath.Join(rt, "host", "emu_backend.cpp"), driver)

	// Compile in parallel, then link.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	objs := make([]string, len(sources))
	sem := make(chan struct{}, runtime.NumCPU())
	var wg sync.WaitGroup
	for i, src := range sources {
		objs[i] = filepath.Join(dir, strings.TrimSuffix(filepath.Base(src), ".cpp")+".o")
		wg.Add(1)
		go func(i int, src string) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out, err := exec.CommandContext(ctx, arm64CXX, "-std=c++20", "-O1", "-Wno-attributes",
				"-I", filepath.Join(rt, "host"), "-I", filepath.Join(rt, "include"), "-I", filepath.Join(rt, "emu"),
				"-I", filepath.Join(rt, "emu", "include"), "-fstack-clash-protection", "-c", src, "-o", objs[i]).CombinedOutput()
			if err != nil {
				t.Errorf("%s %s: %v\n%s", arm64CXX, src, err, emuTail(out, 30))
			}
		}(i, src)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	bin := filepath.Join(dir, "driver-arm64")
	if out, err := exec.CommandContext(ctx, arm64CXX, append(append([]string{"-pthread"}, objs...), "-o", bin)...).
		CombinedOutput(); err != nil {
		t.Fatalf("link: %v\n%s", err, out)
	}

	l := emuLauncher(func(ctx context.Context, args ...string) *exec.Cmd {
		return exec.CommandContext(ctx, arm64QEMU, append([]string{"-L", arm64Sysroot, bin}, args...)...)
	})
	emuCheckMatmul(t, l, "fibers", emuRand(t))
	emuCheckSimdOps(t, l, "fibers")
	emuCheckSimdOps(t, l, "threads")
	res := l.run(t, emuRun{kernel: "div_simd", mode: "fibers", grid: [3]int{1, 1, 1}, tg: [3]int{32, 1, 1},
		in: map[int][]byte{0: npy.Float32Bytes(make([]float32, 32))}, out: map[int]int{1: 128}})
	want := "kernel 'div_simd', threadgroup (0,0,0): divergent simd_sum in simdgroup 0: lane 16 returned while lanes 0-15 wait at divergent.metal:"
	if res.err == nil || !strings.Contains(res.stderr, want) {
		t.Errorf("div_simd on arm64: err %v, stderr %q; want %q", res.err, res.stderr, want)
	}
	res = l.run(t, emuRun{kernel: "deep_stack", mode: "fibers", grid: [3]int{1, 1, 1}, tg: [3]int{32, 1, 1},
		in: map[int][]byte{0: npy.Float32Bytes([]float32{1, 2, 3, 4})}, out: map[int]int{1: 128}})
	want = "kernel 'deep_stack', threadgroup (0,0,0): stack overflow in thread 0: each emulated thread has a 256 KiB stack"
	if res.err == nil || !strings.Contains(res.stderr, want) {
		t.Errorf("deep_stack on arm64: err %v, stderr %q; want %q", res.err, res.stderr, want)
	}
}
