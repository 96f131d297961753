package metalkern

// Deferred simdgroup matrix products (fibers mode, docs/emu.md "Matrix
// products in fibers mode"): pending results behave as values, both modes
// give the same bytes, the results-kept limit is an error naming itself, and
// matrix ops that only some lanes do are reported (testdata/emu/ok/deferred.metal).

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orchardkit/orchard/metalkern/npy"
)

// emuMatmul8 returns A B (row-major 8x8) in float64.
func emuMatmul8(a, b []float32) []float64 {
	d := make([]float64, 64)
	for r := 0; r < 8; r++ {
		for c := 0; c < 8; c++ {
			for k := 0; k < 8; k++ {
				d[r*8+c] += float64(a[r*8+k]) * float64(b[k*8+c])
			}
		}
	}
	return d
}

// emuSmallInts: 64 integers in [-4, 4] (every product and sum below is exact).
func emuSmallInts(t *testing.T) []float32 {
	rng := emuRand(t)
	x := make([]float32, 64)
	for i := range x {
		x[i] = float32(rng.Intn(9) - 4)
	}
	return x
}

func emuWantBlocks(t *testing.T, kernel, mode string, got []float32, want [][]float64) {
	t.Helper()
	for i, w := range want {
		for j := range w {
			if g := float64(got[64*i+j]); g != w[j] {
				t.Fatalf("%s (%s): block %d element %d = %g, want %g", kernel, mode, i, j, g, w[j])
			}
		}
	}
}

func TestEmuDeferredValues(t *testing.T) {
	l := emuNative(emu(t).bin)
	a, b := emuSmallInts(t), emuSmallInts(t)
	ab := emuMatmul8(a, b)
	scaled := func(k, plus float64) []float64 {
		v := make([]float64, 64)
		for i := range v {
			v[i] = k*ab[i] + plus
		}
		return v
	}
	aval := make([]float64, 64)
	for i := range aval {
		aval[i] = float64(a[i])
	}
	in := map[int][]byte{0: npy.Float32Bytes(a), 1: npy.Float32Bytes(b)}
	outs := map[string][]byte{}
	for _, mode := range emuModes {
		res := l.mustRun(t, emuRun{kernel: "mm_values", mode: mode, grid: [3]int{1, 1, 1}, tg: [3]int{32, 1, 1},
			in: in, out: map[int]int{2: 4 * 7 * 64}})
		emuWantBlocks(t, "mm_values", mode, npy.Float32sFromBytes(res.out[2]), [][]float64{
			scaled(3, 1), scaled(2, 1), scaled(1, 1), scaled(3, 1), aval, scaled(4, 0), scaled(3, 1)})
		outs["values "+mode] = res.out[2]

		// 400 products in flight before the first read.
		res = l.mustRun(t, emuRun{kernel: "mm_many", mode: mode, grid: [3]int{1, 1, 1}, tg: [3]int{32, 1, 1},
			in: in, out: map[int]int{2: 4 * 4 * 64}})
		emuWantBlocks(t, "mm_many", mode, npy.Float32sFromBytes(res.out[2]),
			[][]float64{scaled(100, 0), scaled(100, 0), scaled(100, 0), scaled(100, 0)})
	}
	if !bytes.Equal(outs["values fibers"], outs["values threads"]) {
		t.Error("mm_values: fibers and threads results differ")
	}
}

// A half accumulator: each step's float result is rounded to half, which is
// the next step's C (the deferred path must round as the lane would).
func TestEmuDeferredHalfChain(t *testing.T) {
	l := emuNative(emu(t).bin)
	rng := emuRand(t)
	ah, bh := make([]byte, 128), make([]byte, 128)
	av, bv := make([]float32, 64), make([]float32, 64)
	for i := 0; i < 64; i++ {
		// multiples of 1/64 in [-2, 2]: exact halves whose products need
		// more bits than a half keeps once summed
		av[i], bv[i] = float32(rng.Intn(257)-128)/64, float32(rng.Intn(257)-128)/64
		ha, hb := emuExactHalf(av[i]), emuExactHalf(bv[i])
		ah[2*i], ah[2*i+1], bh[2*i], bh[2*i+1] = byte(ha), byte(ha>>8), byte(hb), byte(hb>>8)
	}
	// the shim's order: acc = C; acc += A(r,k) B(k,c) for k = 0..7 in float32, then to half
	acc := make([]float32, 64)
	for i := range acc {
		acc[i] = 0.5
	}
	var want [][]uint16
	inexact := 0 // rounded sums that feed the next step (else the test shows nothing)
	for step := 0; step < 3; step++ {
		next, bits := make([]float32, 64), make([]uint16, 64)
		for r := 0; r < 8; r++ {
			for c := 0; c < 8; c++ {
				s := acc[r*8+c]
				for k := 0; k < 8; k++ {
					s = s + float32(av[r*8+k]*bv[k*8+c])
				}
				bits[r*8+c] = npy.Float32ToFloat16(s)
				next[r*8+c] = npy.Float16ToFloat32(bits[r*8+c])
				if step < 2 && next[r*8+c] != s {
					inexact++
				}
			}
		}
		acc = next
		want = append(want, bits)
	}
	if inexact == 0 {
		t.Fatal("no intermediate result needed rounding to half: pick other inputs")
	}
	outs := map[string][]byte{}
	for _, mode := range emuModes {
		res := l.mustRun(t, emuRun{kernel: "mm_half_chain", mode: mode, grid: [3]int{1, 1, 1}, tg: [3]int{32, 1, 1},
			in: map[int][]byte{0: ah, 1: bh}, out: map[int]int{2: 2 * 3 * 64}})
		got := res.out[2]
		for step, w := range want {
			for i, h := range w {
				g := uint16(got[2*(64*step+i)]) | uint16(got[2*(64*step+i)+1])<<8
				if g != h {
					t.Fatalf("%s: step %d element %d = %#04x, want %#04x", mode, step, i, g, h)
				}
			}
		}
		outs[mode] = got
	}
	if !bytes.Equal(outs["fibers"], outs["threads"]) {
		t.Error("mm_half_chain: fibers and threads results differ")
	}
}

// A result is kept for the lane's last 1023 matrix ops: x (op 0) read or
// used as C after 1022 more is fine, after 1023 more an error naming the
// limit in fibers mode (the first lane to get there, a deterministic one);
// threads mode computes products at once and has no such limit.
func TestEmuDeferredResultsKept(t *testing.T) {
	l := emuNative(emu(t).bin)
	file := filepath.Join("testdata", "emu", "ok", "deferred.metal")
	a, b := emuSmallInts(t), emuSmallInts(t)
	ab := emuMatmul8(a, b)
	in := map[int][]byte{0: npy.Float32Bytes(a), 1: npy.Float32Bytes(b)}
	for _, asC := range []int64{0, 1} {
		for _, n := range []int64{1022, 1023} {
			for _, mode := range emuModes {
				run := emuRun{kernel: "mm_late", mode: mode, grid: [3]int{1, 1, 1}, tg: [3]int{32, 1, 1}, in: in,
					out: map[int]int{2: 4 * 2 * 64}, u32: map[int][]int64{3: {n, asC}}}
				res := l.run(t, run)
				name := fmt.Sprintf("mm_late n=%d as_c=%d (%s)", n, asC, mode)
				if mode == "fibers" && n == 1023 {
					use := "reads the result of its matrix op #0"
					if asC == 1 {
						use = "uses the result of its matrix op #0"
					}
					for _, w := range []string{"kernel 'mm_late'", " of simdgroup 0 " + use,
						fmt.Sprintf("deferred.metal:%d:", emuSiteLine(t, file, "mm_late_x")), "after 1023 more matrix ops",
						"the results of each lane's last 1023 matrix ops (kMmaResults - 1", "ORCHARD_EMU_MODE=threads"} {
						if !strings.Contains(res.stderr, w) {
							t.Errorf("%s: stderr lacks %q:\n%s", name, w, res.stderr)
						}
					}
					if res.err == nil {
						t.Errorf("%s succeeded; want the results-kept error", name)
					}
					continue
				}
				if res.err != nil {
					t.Fatalf("%s: %v\n%s", name, res.err, res.stderr)
				}
				got := npy.Float32sFromBytes(res.out[2])
				x, y := make([]float64, 64), make([]float64, 64)
				for i := range ab {
					x[i], y[i] = ab[i]*float64(1+asC), ab[i]*float64(n)
				}
				emuWantBlocks(t, name, mode, got, [][]float64{x, y})
			}
		}
	}
}

func TestEmuDeferredDivergence(t *testing.T) {
	l := emuNative(emu(t).bin)
	file := filepath.Join("testdata", "emu", "ok", "deferred.metal")
	site := func(name string) string { return fmt.Sprintf("deferred.metal:%d:", emuSiteLine(t, file, name)) }
	cases := []struct {
		kernel string
		both   []string // in both modes' reports
		fibers []string // in fibers mode's (deterministic) report
	}{
		{"mma_div_sites", []string{"divergent simdgroup_multiply in simdgroup 0", site("mma_div_even"), site("mma_div_odd")},
			[]string{"lane 1 reached " + site("mma_div_odd"), "as its matrix op #0 while lane 0 did matrix op #0 at " +
				site("mma_div_even")}},
		{"mma_div_barrier", []string{"divergent", site("mma_div_barrier_op"), site("mma_div_barrier")},
			[]string{"divergent threadgroup_barrier in simdgroup 0: lane 16 reached " + site("mma_div_barrier"),
				"after 0 matrix ops while lanes 0-15 did 1 (matrix op #0 (" + site("mma_div_barrier_op")}},
		{"mma_div_simd", []string{"divergent", site("mma_div_simd_op"), site("mma_div_simd")},
			[]string{"divergent simd_sum in simdgroup 0: lane 16 reached " + site("mma_div_simd"),
				"after 0 matrix ops while lanes 0-15 did 1"}},
		{"mma_div_wait", []string{"divergent", site("mma_div_wait_op"), site("mma_div_wait")},
			[]string{"lane 16 reached " + site("mma_div_wait"),
				"lanes 0-15 wait for the result of matrix op #0 (" + site("mma_div_wait_op"),
				"which lane 16 has not done"}},
		{"mma_div_return", []string{"divergent", "returned", site("mma_div_return_op")},
			[]string{"divergent simdgroup matrix ops in simdgroup 0: lane 16 returned after 0 matrix ops while lanes 0-15 did 1"}},
	}
	for _, c := range cases {
		for _, mode := range emuModes {
			run := emuRun{kernel: c.kernel, mode: mode, grid: [3]int{1, 1, 1}, tg: [3]int{32, 1, 1},
				out: map[int]int{0: 4 * 96}, env: []string{"ORCHARD_EMU_WATCHDOG_SECONDS=120"}}
			res := l.run(t, run)
			if res.err == nil {
				t.Fatalf("%s (%s) succeeded; want a divergence error", c.kernel, mode)
			}
			if res.elapsed > 20*time.Second {
				t.Errorf("%s (%s) took %v to fail", c.kernel, mode, res.elapsed)
			}
			want := append([]string{"kernel '" + c.kernel + "'"}, c.both...)
			if mode == "fibers" {
				want = append(want, c.fibers...)
			}
			for _, w := range want {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("%s (%s): stderr lacks %q:\n%s", c.kernel, mode, w, res.stderr)
				}
			}
			if mode == "fibers" {
				if again := l.run(t, run); again.stderr != res.stderr {
					t.Errorf("%s: fibers reports differ:\n%s\n%s", c.kernel, res.stderr, again.stderr)
				}
			}
		}
	}
}
