package metalkern

// Kernels of testdata/emu/ok run on the shared emu build in both launcher
// modes and are checked against values computed here.

import (
	"bytes"
	"fmt"
	"math"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orchardkit/orchard/metalkern/npy"
)

func emuRand(t *testing.T) *rand.Rand {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	return rand.New(rand.NewSource(seed))
}

// emuCheckMatmul runs matmul_f32 on an odd shape against a float64 product and
// matmul_f16 on half-exact inputs against the exact product; it returns the
// f32 output so callers can compare modes. Each with edits both runs (a
// storage mode, an offset).
func emuCheckMatmul(t *testing.T, l emuLauncher, mode string, rng *rand.Rand, with ...func(*emuRun)) []byte {
	t.Helper()
	const M, N, K = 77, 45, 35
	a, b := make([]float32, M*K), make([]float32, K*N)
	for i := range a {
		a[i] = float32(rng.NormFloat64())
	}
	for i := range b {
		b[i] = float32(rng.NormFloat64())
	}
	grid := [3]int{(N + 15) / 16, (M + 15) / 16, 1}
	r32 := emuRun{kernel: "matmul_f32", mode: mode, grid: grid, tg: [3]int{128, 1, 1},
		in: map[int][]byte{0: npy.Float32Bytes(a), 1: npy.Float32Bytes(b)}, out: map[int]int{2: 4 * M * N},
		u32: map[int][]int64{3: {M, N, K}}}
	for _, w := range with {
		w(&r32)
	}
	res := l.mustRun(t, r32)
	c := npy.Float32sFromBytes(res.out[2])
	for i := 0; i < M; i++ {
		for j := 0; j < N; j++ {
			var ref float64
			for k := 0; k < K; k++ {
				ref += float64(a[i*K+k]) * float64(b[k*N+j])
			}
			if got := float64(c[i*N+j]); math.IsNaN(got) || math.Abs(got-ref) > 1e-4*(1+math.Abs(ref)) {
				t.Fatalf("%s matmul_f32 C[%d][%d] = %g, want %g", mode, i, j, got, ref)
			}
		}
	}

	// half inputs: multiples of 1/8 in [-2, 2] are exact, and so is every sum.
	ah, bh := make([]byte, 2*M*K), make([]byte, 2*K*N)
	av, bv := make([]float64, M*K), make([]float64, K*N)
	for i := range av {
		av[i] = float64(rng.Intn(33)-16) / 8
		h := emuExactHalf(float32(av[i]))
		ah[2*i], ah[2*i+1] = byte(h), byte(h>>8)
	}
	for i := range bv {
		bv[i] = float64(rng.Intn(33)-16) / 8
		h := emuExactHalf(float32(bv[i]))
		bh[2*i], bh[2*i+1] = byte(h), byte(h>>8)
	}
	r16 := emuRun{kernel: "matmul_f16", mode: mode, grid: grid, tg: [3]int{128, 1, 1},
		in: map[int][]byte{0: ah, 1: bh}, out: map[int]int{2: 4 * M * N}, u32: map[int][]int64{3: {M, N, K}}}
	for _, w := range with {
		w(&r16)
	}
	res16 := l.mustRun(t, r16)
	c16 := npy.Float32sFromBytes(res16.out[2])
	for i := 0; i < M; i++ {
		for j := 0; j < N; j++ {
			var ref float64
			for k := 0; k < K; k++ {
				ref += av[i*K+k] * bv[k*N+j]
			}
			if float64(c16[i*N+j]) != ref {
				t.Fatalf("%s matmul_f16 C[%d][%d] = %g, want exactly %g", mode, i, j, c16[i*N+j], ref)
			}
		}
	}
	return res.out[2]
}

func TestEmuMatmul(t *testing.T) {
	l := emuNative(emu(t).bin)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	outs := map[string][]byte{}
	for _, mode := range emuModes {
		outs[mode] = emuCheckMatmul(t, l, mode, rand.New(rand.NewSource(seed)))
	}
	// Same inputs: both modes run the same operations in the same order.
	if !bytes.Equal(outs["fibers"], outs["threads"]) {
		t.Error("matmul_f32: fibers and threads results differ")
	}
}

// Transposed simdgroup_load, the diagonal constructor, simdgroup_multiply
// and thread_elements() on one 8x8 block.
func TestEmuSimdgroupMatrix(t *testing.T) {
	l := emuNative(emu(t).bin)
	rng := emuRand(t)
	a, bt := make([]float32, 64), make([]float32, 64)
	for i := range a {
		a[i], bt[i] = float32(rng.Intn(17)-8), float32(rng.Intn(17)-8)
	}
	for _, mode := range emuModes {
		res := l.mustRun(t, emuRun{kernel: "mm_transpose", mode: mode, grid: [3]int{1, 1, 1}, tg: [3]int{32, 1, 1},
			in: map[int][]byte{0: npy.Float32Bytes(a), 1: npy.Float32Bytes(bt)}, out: map[int]int{2: 256, 3: 256}})
		c, d := npy.Float32sFromBytes(res.out[2]), npy.Float32sFromBytes(res.out[3])
		for i := 0; i < 8; i++ {
			for j := 0; j < 8; j++ {
				var ref float32
				if i == j {
					ref = 1
				}
				for k := 0; k < 8; k++ {
					ref += a[i*8+k] * bt[j*8+k] // B = Bt^T
				}
				if c[i*8+j] != ref {
					t.Fatalf("%s: C[%d][%d] = %g, want %g", mode, i, j, c[i*8+j], ref)
				}
				if d[i*8+j] != 2*a[i*8+j] {
					t.Fatalf("%s: D[%d][%d] = %g, want %g", mode, i, j, d[i*8+j], 2*a[i*8+j])
				}
			}
		}
	}
}

// Half operands with float accumulation: every one of the 65536 binary16
// bit patterns is an element of A and of B in some 8x8 product (1024
// threadgroups), against float32 arithmetic in the shim's order (C, then
// + A(r,k) B(k,c) for k = 0..7); NaN results only need to be NaN.
func TestEmuHalfOperands(t *testing.T) {
	l := emuNative(emu(t).bin)
	rng := emuRand(t)
	const n = 1 << 16
	a, b, c := make([]byte, 2*n), make([]byte, 2*n), make([]float32, n)
	av, bv := make([]float32, n), make([]float32, n)
	for i := 0; i < n; i++ {
		ha, hb := uint16(i), uint16(i*40503+12345) // an odd multiplier: a permutation
		a[2*i], a[2*i+1] = byte(ha), byte(ha>>8)
		b[2*i], b[2*i+1] = byte(hb), byte(hb>>8)
		av[i], bv[i] = emuHalfOrNaN(ha), emuHalfOrNaN(hb)
		c[i] = float32(rng.NormFloat64())
	}
	for _, mode := range emuModes {
		res := l.mustRun(t, emuRun{kernel: "mm_half_operands", mode: mode, grid: [3]int{n / 64, 1, 1}, tg: [3]int{32, 1, 1},
			in: map[int][]byte{0: a, 1: b, 2: npy.Float32Bytes(c)}, out: map[int]int{3: 4 * n}})
		d := npy.Float32sFromBytes(res.out[3])
		bad := 0
		for g := 0; g < n/64; g++ {
			for r := 0; r < 8; r++ {
				for col := 0; col < 8; col++ {
					at := 64*g + 8*r + col
					acc := c[at]
					for k := 0; k < 8; k++ {
						acc = acc + float32(av[64*g+8*r+k]*bv[64*g+8*k+col])
					}
					got := d[at]
					nan := math.IsNaN(float64(got)) && math.IsNaN(float64(acc))
					if !nan && math.Float32bits(got) != math.Float32bits(acc) {
						if bad++; bad <= 5 {
							t.Errorf("%s: group %d D[%d][%d] = %g (%#08x), want %g (%#08x)", mode, g, r, col, got,
								math.Float32bits(got), acc, math.Float32bits(acc))
						}
					}
				}
			}
		}
		if bad > 5 {
			t.Errorf("%s: %d wrong elements in all", mode, bad)
		}
	}
}

// emuSimdOpsWant computes the simd_ops kernel's 10 values per thread for a
// group of n threads (the last simdgroup may be partial).
func emuSimdOpsWant(v []float32, n int) (per [][10]float32, total float32) {
	per = make([][10]float32, n)
	for base := 0; base < n; base += 32 {
		w := min(32, n-base)
		lane := func(l int) float32 { return v[base+l] }
		var sum, mx float32 = 0, float32(math.Inf(-1))
		for l := 0; l < w; l++ {
			sum += lane(l)
			mx = max(mx, lane(l))
		}
		total += sum
		var ballot uint32
		for l := 0; l < w; l++ {
			if lane(l) > 0 {
				ballot |= 1 << l
			}
		}
		for l := 0; l < w; l++ {
			own := lane(l)
			src := func(s int) float32 {
				if s >= 0 && s < w {
					return lane(s)
				}
				return own
			}
			var pre float32
			for k := 0; k < l; k++ {
				pre += lane(k)
			}
			up := own
			if l >= 2 {
				up = lane(l - 2)
			}
			per[base+l] = [10]float32{sum, mx, pre, src(l ^ 5), src(l ^ 1), src(l + 3), up, src(7), pre + own,
				float32(ballot & 0xff)}
		}
	}
	return per, total
}

func emuCheckSimdOps(t *testing.T, l emuLauncher, mode string) {
	t.Helper()
	rng := emuRand(t)
	const n, groups = 48, 2 // 1.5 simdgroups per threadgroup
	in := make([]float32, n*groups)
	for i := range in {
		in[i] = float32(rng.Intn(17) - 8)
	}
	res := l.mustRun(t, emuRun{kernel: "simd_ops", mode: mode, grid: [3]int{groups, 1, 1}, tg: [3]int{n, 1, 1},
		in: map[int][]byte{0: npy.Float32Bytes(in)}, out: map[int]int{1: 4 * 10 * n * groups, 2: 4 * groups}})
	got, blocks := npy.Float32sFromBytes(res.out[1]), npy.Float32sFromBytes(res.out[2])
	names := []string{"simd_sum", "simd_max", "simd_prefix_exclusive_sum", "simd_shuffle", "simd_shuffle_xor",
		"simd_shuffle_down", "simd_shuffle_up", "simd_broadcast", "simd_prefix_inclusive_sum", "simd_ballot"}
	for g := 0; g < groups; g++ {
		want, total := emuSimdOpsWant(in[g*n:(g+1)*n], n)
		for tid := 0; tid < n; tid++ {
			for j, w := range want[tid] {
				if v := got[(g*n+tid)*10+j]; v != w {
					t.Fatalf("%s: group %d thread %d %s = %g, want %g", mode, g, tid, names[j], v, w)
				}
			}
		}
		if blocks[g] != total {
			t.Errorf("%s: group %d threadgroup sum = %g, want %g", mode, g, blocks[g], total)
		}
	}
}

func TestEmuSimdOps(t *testing.T) {
	l := emuNative(emu(t).bin)
	for _, mode := range emuModes {
		emuCheckSimdOps(t, l, mode)
	}
}

func TestEmuBuiltins(t *testing.T) {
	l := emuNative(emu(t).bin)
	grid, tg := [3]int{2, 3, 2}, [3]int{5, 3, 2} // 30 threads: one partial simdgroup
	gx, gy, gz := grid[0]*tg[0], grid[1]*tg[1], grid[2]*tg[2]
	for _, mode := range emuModes {
		res := l.mustRun(t, emuRun{kernel: "builtins", mode: mode, grid: grid, tg: tg,
			out: map[int]int{0: 4 * 8 * gx * gy * gz}})
		got := emuU32s(res.out[0])
		for z := 0; z < gz; z++ {
			for y := 0; y < gy; y++ {
				for x := 0; x < gx; x++ {
					lx, ly, lz := x%tg[0], y%tg[1], z%tg[2]
					tid := lx + tg[0]*(ly+tg[1]*lz)
					want := []uint32{uint32(x), uint32(y), uint32(z),
						uint32(x/tg[0] + 10*(y/tg[1]) + 100*(z/tg[2])), uint32(lx + 10*ly + 100*lz),
						uint32(tid), uint32(tid % 32), uint32(tid / 32)}
					at := ((z*gy+y)*gx + x) * 8
					for j, w := range want {
						if got[at+j] != w {
							t.Fatalf("%s: thread (%d,%d,%d) value %d = %d, want %d", mode, x, y, z, j, got[at+j], w)
						}
					}
				}
			}
		}
	}
}

// half is IEEE binary16 with round-to-nearest-even conversions.
func TestEmuHalfRounding(t *testing.T) {
	l := emuNative(emu(t).bin)
	cases := []struct {
		in   float32
		bits uint16
	}{
		{1, 0x3c00}, {2049, 0x6800}, {2051, 0x6802}, // ties to even around 2048
		{1 + 0x1p-11, 0x3c00}, {1 + 3*0x1p-11, 0x3c02}, // ties below 1 ulp
		{65504, 0x7bff}, {65520, 0x7c00}, // max half; the tie above it overflows to inf
		{1e-8, 0x0000}, {0x1p-24, 0x0001}, {3 * 0x1p-25, 0x0002}, // subnormals, tie to even
		{float32(math.Copysign(0, -1)), 0x8000}, {0.1, 0x2e66}, {-2.5, 0xc100},
	}
	in := make([]float32, len(cases))
	for i, c := range cases {
		in[i] = c.in
	}
	res := l.mustRun(t, emuRun{kernel: "half_round", grid: [3]int{1, 1, 1}, tg: [3]int{len(in), 1, 1},
		in: map[int][]byte{0: npy.Float32Bytes(in)}, out: map[int]int{1: 4 * len(in), 2: 2 * len(in)}})
	out, raw := npy.Float32sFromBytes(res.out[1]), res.out[2]
	for i, c := range cases {
		if got := uint16(raw[2*i]) | uint16(raw[2*i+1])<<8; got != c.bits {
			t.Errorf("half(%g) = %#04x, want %#04x", c.in, got, c.bits)
		}
		if want := emuHalfValue(c.bits); out[i] != want && !(math.IsInf(float64(want), 1) && math.IsInf(float64(out[i]), 1)) {
			t.Errorf("float(half(%g)) = %g, want %g", c.in, out[i], want)
		}
	}
}

// emuHalfOrNaN is emuHalfValue with NaN for the NaN patterns.
func emuHalfOrNaN(h uint16) float32 {
	if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
		return float32(math.NaN())
	}
	return emuHalfValue(h)
}

// emuHalfValue decodes binary16 bits (test helper, independent of the runtime).
func emuHalfValue(h uint16) float32 {
	sign := float32(1)
	if h&0x8000 != 0 {
		sign = -1
	}
	exp, mant := int(h>>10&0x1f), float64(h&0x3ff)
	switch exp {
	case 0:
		return sign * float32(math.Ldexp(mant, -24))
	case 31:
		return sign * float32(math.Inf(1))
	}
	return sign * float32(math.Ldexp(1024+mant, exp-25))
}

func TestEmuThreadgroupMemoryLimit(t *testing.T) {
	l := emuNative(emu(t).bin)
	file := filepath.Join("testdata", "emu", "ok", "oversize.metal")
	for _, mode := range emuModes {
		res := l.run(t, emuRun{kernel: "tg_oversize", mode: mode, grid: [3]int{1, 1, 1}, tg: [3]int{64, 1, 1},
			out: map[int]int{0: 256}})
		if res.err == nil {
			t.Fatalf("%s: tg_oversize ran; want a threadgroup memory error", mode)
		}
		for _, w := range []string{"kernel 'tg_oversize' uses at least 36864 bytes of threadgroup memory, the limit is 32768",
			fmt.Sprintf("c 4096 B (oversize.metal:%d)", emuSiteLine(t, file, "over"))} {
			if !strings.Contains(res.stderr, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", mode, w, res.stderr)
			}
		}
	}
}

// The shim's MSL surface, one exact value per feature (features.metal).
func TestEmuShimFeatures(t *testing.T) {
	l := emuNative(emu(t).bin)
	want := []float32{2.5, 0.5, 6.5, 0.5, 2, -1, 10, 1, 3, 65535, 1, 13, 11.5, 3, 1, 1, 4, 32, 65504,
		(7/2%3)*100 + (-7/2%3)*10 + 9/2%3}
	res := l.mustRun(t, emuRun{kernel: "features", grid: [3]int{1, 1, 1}, tg: [3]int{1, 1, 1},
		out: map[int]int{0: 4 * len(want)}})
	for i, got := range npy.Float32sFromBytes(res.out[0]) {
		if got != want[i] {
			t.Errorf("features out[%d] = %g, want %g", i, got, want[i])
		}
	}
}
