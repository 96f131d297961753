package metalkern

// What emu must catch: divergent barriers and simd ops (fast, with the
// kernel name and the call site, never a hang), a missing barrier (poisoned
// threadgroup memory in fibers mode, a race report under TSan), dispatch
// mistakes, and compile errors located in the .metal file.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orchardkit/orchard/metalkern/emugen"
	"github.com/orchardkit/orchard/metalkern/npy"
)

func TestEmuDivergence(t *testing.T) {
	l := emuNative(emu(t).bin)
	file := filepath.Join("testdata", "emu", "ok", "divergent.metal")
	cases := []struct {
		kernel string
		want   []string
	}{
		{"div_simd", []string{"divergent simd_sum", fmt.Sprintf("divergent.metal:%d:", emuSiteLine(t, file, "div_simd"))}},
		{"div_return", []string{"divergent threadgroup_barrier", "returned",
			fmt.Sprintf("divergent.metal:%d:", emuSiteLine(t, file, "div_return"))}},
		{"div_sites", []string{"divergent threadgroup_barrier",
			fmt.Sprintf("divergent.metal:%d:", emuSiteLine(t, file, "div_sites_even")),
			fmt.Sprintf("divergent.metal:%d:", emuSiteLine(t, file, "div_sites_odd"))}},
	}
	in := npy.Float32Bytes(make([]float32, 64))
	for _, c := range cases {
		for _, mode := range emuModes {
			run := emuRun{kernel: c.kernel, mode: mode, grid: [3]int{1, 1, 1}, tg: [3]int{64, 1, 1},
				in: map[int][]byte{0: in}, out: map[int]int{1: 256}, env: []string{"ORCHARD_EMU_WATCHDOG_SECONDS=120"}}
			if c.kernel != "div_simd" {
				run.in, run.out = nil, map[int]int{0: 256}
			}
			res := l.run(t, run)
			if res.err == nil {
				t.Fatalf("%s (%s) succeeded; want a divergence error", c.kernel, mode)
			}
			// The watchdog is at 120 s: a quick failure is the immediate check.
			if res.elapsed > 20*time.Second {
				t.Errorf("%s (%s) took %v to fail", c.kernel, mode, res.elapsed)
			}
			for _, w := range append([]string{"kernel '" + c.kernel + "'"}, c.want...) {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("%s (%s): stderr lacks %q:\n%s", c.kernel, mode, w, res.stderr)
				}
			}
			if mode == "fibers" { // deterministic: the same report every time
				if again := l.run(t, run); again.stderr != res.stderr {
					t.Errorf("%s: fibers reports differ:\n%s\n%s", c.kernel, res.stderr, again.stderr)
				}
			}
		}
	}
}

func TestEmuMissingBarrierPoison(t *testing.T) {
	l := emuNative(emu(t).bin)
	const n = 256
	in := make([]float32, n)
	for i := range in {
		in[i] = float32(i + 1)
	}
	run := emuRun{grid: [3]int{1, 1, 1}, tg: [3]int{n, 1, 1}, mode: "fibers",
		in: map[int][]byte{0: npy.Float32Bytes(in)}, out: map[int]int{1: 4 * n}}
	run.kernel = "race_fixed"
	good := npy.Float32sFromBytes(l.mustRun(t, run).out[1])
	for i := range good {
		if want := 2 * in[(i+1)%n]; good[i] != want {
			t.Fatalf("race_fixed out[%d] = %g, want %g", i, good[i], want)
		}
	}
	// Fibers run thread 0 to its end before thread 1 starts: without the
	// barrier it reads threadgroup memory nobody wrote, which emu poisons.
	run.kernel = "race_missing_barrier"
	bad := npy.Float32sFromBytes(l.mustRun(t, run).out[1])
	if !math.IsNaN(float64(bad[0])) {
		t.Errorf("race_missing_barrier out[0] = %g, want NaN (poisoned threadgroup memory)", bad[0])
	}
}

func TestEmuTSanReportsMissingBarrier(t *testing.T) {
	l := emuNative(emuTSan(t))
	file := filepath.Join("testdata", "emu", "ok", "race.metal")
	in := npy.Float32Bytes(make([]float32, 256))
	run := emuRun{grid: [3]int{1, 1, 1}, tg: [3]int{256, 1, 1}, in: map[int][]byte{0: in}, out: map[int]int{1: 1024},
		env: []string{"TSAN_OPTIONS=halt_on_error=0"}}
	run.kernel = "race_fixed"
	if res := l.run(t, run); res.err != nil || strings.Contains(res.stderr, "ThreadSanitizer") {
		t.Fatalf("race_fixed under TSan: %v\n%s", res.err, res.stderr)
	}
	run.kernel = "race_missing_barrier"
	res := l.run(t, run)
	for _, w := range []string{"WARNING: ThreadSanitizer: data race",
		fmt.Sprintf("race.metal:%d", emuSiteLine(t, file, "race_read")),
		fmt.Sprintf("race.metal:%d", emuSiteLine(t, file, "race_write")), "device=cpu (threads)"} {
		if !strings.Contains(res.stderr+res.stdout, w) {
			t.Errorf("TSan output lacks %q:\n%s", w, res.stderr)
		}
	}
	if res.err == nil {
		t.Error("the TSan runner exited 0 after reporting a race")
	}
}

func TestEmuDispatchErrors(t *testing.T) {
	l := emuNative(emu(t).bin)
	buf := npy.Float32Bytes(make([]float32, 64))
	cases := map[string]struct {
		run  emuRun
		want string
	}{
		"unknown kernel": {emuRun{kernel: "nope", grid: [3]int{1, 1, 1}, tg: [3]int{32, 1, 1}},
			"no kernel named 'nope' (available: builtins, deep_stack, div_return"},
		"too many threads": {emuRun{kernel: "race_fixed", grid: [3]int{1, 1, 1}, tg: [3]int{64, 32, 1}},
			"kernel 'race_fixed': 2048 threads per threadgroup (64x32x1), the limit is 1024"},
		"more threads than the kernel's attribute": {emuRun{kernel: "matmul_f32", grid: [3]int{1, 1, 1}, tg: [3]int{256, 1, 1},
			in: map[int][]byte{0: buf, 1: buf}, out: map[int]int{2: 256}, u32: map[int][]int64{3: {8, 8, 8}}},
			"kernel 'matmul_f32': 256 threads per threadgroup (256x1x1), but its [[max_total_threads_per_threadgroup(128)]] allows at most 128"},
		"unbound buffer": {emuRun{kernel: "race_fixed", grid: [3]int{1, 1, 1}, tg: [3]int{32, 1, 1},
			in: map[int][]byte{0: buf}}, "kernel 'race_fixed': [[buffer(1)]] 'out' (device float*) is not bound"},
		"params too small": {emuRun{kernel: "matmul_f32", grid: [3]int{1, 1, 1}, tg: [3]int{128, 1, 1},
			in: map[int][]byte{0: buf, 1: buf}, out: map[int]int{2: 256}, u32: map[int][]int64{3: {8}}},
			"kernel 'matmul_f32': [[buffer(3)]] 'p' is bound to 4 bytes but the parameter type needs 12"},
		"setBytes of 4096 bytes": {emuRun{kernel: "matmul_f32", grid: [3]int{1, 1, 1}, tg: [3]int{128, 1, 1},
			in: map[int][]byte{0: buf, 1: buf}, out: map[int]int{2: 256}, u32: map[int][]int64{3: make([]int64, 1024)}},
			"kernel 'matmul_f32': setBytes of 4096 bytes at index 3: Metal's setBytes:length:atIndex: takes 1 to 4095 bytes"},
		"setBytes of 0 bytes": {emuRun{kernel: "matmul_f32", grid: [3]int{1, 1, 1}, tg: [3]int{128, 1, 1},
			in: map[int][]byte{0: buf, 1: buf}, out: map[int]int{2: 256}, u32: map[int][]int64{3: {}}},
			"kernel 'matmul_f32': setBytes of 0 bytes at index 3: Metal's setBytes:length:atIndex: takes 1 to 4095 bytes"},
		"bad mode": {emuRun{kernel: "race_fixed", grid: [3]int{1, 1, 1}, tg: [3]int{32, 1, 1},
			env: []string{"ORCHARD_EMU_MODE=gpu"}}, "emu: mode 'gpu' is unknown: want fibers or threads"},
	}
	for name, c := range cases {
		res := l.run(t, c.run)
		if res.err == nil || !strings.Contains(res.stderr, c.want) {
			t.Errorf("%s: err %v, stderr %q; want %q", name, res.err, res.stderr, c.want)
		}
	}
	// ORCHARD_EMU_MODE overrides the option.
	res := l.mustRun(t, emuRun{kernel: "race_fixed", mode: "fibers", grid: [3]int{1, 1, 1}, tg: [3]int{32, 1, 1},
		in: map[int][]byte{0: buf}, out: map[int]int{1: 128}, env: []string{"ORCHARD_EMU_MODE=threads"}})
	if !strings.Contains(res.stdout, "device=cpu (threads)") {
		t.Errorf("ORCHARD_EMU_MODE=threads ignored: %s", res.stdout)
	}
}

// g++ reports an error in a kernel at the .metal file and line.
func TestEmuCompileErrorPointsAtMetal(t *testing.T) {
	emuNeedTools(t, "g++")
	file, _ := filepath.Abs(filepath.Join("testdata", "emu", "bad", "syntax_error.metal"))
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	code, _, err := emugen.Generate(file, src)
	if err != nil {
		t.Fatal(err)
	}
	gen := filepath.Join(t.TempDir(), emugen.OutputName(file))
	if err := os.WriteFile(gen, code, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "g++", "-std=c++20", "-fsyntax-only", "-Wno-attributes",
		"-I", filepath.Join(emuRuntimeDir(t), "emu", "include"), gen).CombinedOutput()
	if err == nil {
		t.Fatal("g++ accepted syntax_error.metal")
	}
	want := fmt.Sprintf("%s:%d:", file, emuSiteLine(t, file, "syntax"))
	if !strings.Contains(string(out), want) || !strings.Contains(string(out), "error:") {
		t.Errorf("g++ output lacks an error at %q:\n%s", want, out)
	}
}

// Logs fibers vs threads time on one dispatch (a figure, not a limit).
func TestEmuModeTimes(t *testing.T) {
	if testing.Short() {
		t.Skip("timing figure skipped in -short mode")
	}
	l := emuNative(emu(t).bin)
	const M, N, K = 128, 128, 128
	a := make([]float32, M*K)
	for i := range a {
		a[i] = float32(i%7) - 3
	}
	for _, mode := range emuModes {
		res := l.mustRun(t, emuRun{kernel: "matmul_f32", mode: mode, grid: [3]int{N / 16, M / 16, 1},
			tg: [3]int{128, 1, 1}, in: map[int][]byte{0: npy.Float32Bytes(a), 1: npy.Float32Bytes(a)}, out: map[int]int{2: 4 * M * N},
			u32: map[int][]int64{3: {M, N, K}}})
		t.Logf("matmul_f32 %dx%dx%d, 64 threadgroups of 128 threads, %s: %s", M, N, K, mode,
			strings.TrimSpace(res.stdout))
	}
}

// A thread that never finishes becomes an error after the watchdog period.
func TestEmuWatchdog(t *testing.T) {
	l := emuNative(emu(t).bin)
	for _, mode := range emuModes {
		res := l.run(t, emuRun{kernel: "spin_forever", mode: mode, grid: [3]int{1, 1, 1}, tg: [3]int{32, 1, 1},
			in: map[int][]byte{0: make([]byte, 4)}, out: map[int]int{1: 128},
			env: []string{"ORCHARD_EMU_WATCHDOG_SECONDS=1"}})
		want := "kernel 'spin_forever'"
		if res.err == nil || !strings.Contains(res.stderr, want) || !strings.Contains(res.stderr, "no progress for 1 s") {
			t.Errorf("%s: err %v, stderr %q; want %q and 'no progress for 1 s'", mode, res.err, res.stderr, want)
		}
		if res.elapsed > 30*time.Second {
			t.Errorf("%s: the watchdog took %v", mode, res.elapsed)
		}
	}
}

// A fiber stack overflow is a dispatch error (not a process exit) naming the
// kernel, the stack size and the knob.
func TestEmuStackOverflow(t *testing.T) {
	l := emuNative(emu(t).bin)
	run := emuRun{kernel: "deep_stack", mode: "fibers", grid: [3]int{1, 1, 1}, tg: [3]int{32, 1, 1},
		in: map[int][]byte{0: npy.Float32Bytes([]float32{1, 2, 3, 4})}, out: map[int]int{1: 128}}
	res := l.run(t, run)
	want := "kernel 'deep_stack', threadgroup (0,0,0): stack overflow in thread 0: each emulated thread has a 256 KiB stack"
	if res.err == nil || !strings.Contains(res.stderr, want) || !strings.Contains(res.stderr, "ORCHARD_EMU_STACK_KB") {
		t.Fatalf("err %v, stderr %q; want %q", res.err, res.stderr, want)
	}
	var ee *exec.ExitError
	if !errors.As(res.err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("exit %v; want status 1 (the driver's error exit, not the old _exit(70))", res.err)
	}
	run.env = []string{"ORCHARD_EMU_STACK_KB=1024"}
	out := npy.Float32sFromBytes(l.mustRun(t, run).out[1])
	if want := float32(4 * 7919); out[1] != want { // in[7919 % 4] * 7919
		t.Errorf("deep_stack with 1 MiB stacks: out[1] = %g, want %g", out[1], want)
	}
	// Threads mode too: each OS thread runs the kernel on a guarded stack of its own.
	run.mode, run.env = "threads", nil
	res = l.run(t, run)
	for _, want := range []string{"kernel 'deep_stack', threadgroup (0,0,0): stack overflow in thread ",
		"each emulated thread has a 256 KiB stack (threads mode)", "ORCHARD_EMU_STACK_KB"} {
		if !errors.As(res.err, &ee) || ee.ExitCode() != 1 || !strings.Contains(res.stderr, want) {
			t.Errorf("threads mode: err %v, stderr %q; want status 1 and %q", res.err, res.stderr, want)
		}
	}
	run.env = []string{"ORCHARD_EMU_STACK_KB=1024"}
	if out := npy.Float32sFromBytes(l.mustRun(t, run).out[1]); out[1] != float32(4*7919) {
		t.Errorf("deep_stack, threads mode, 1 MiB stacks: out[1] = %g", out[1])
	}
}
