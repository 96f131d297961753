package npy

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// halfValue decodes a binary16 pattern by the textbook formula, in float64,
// independently of Float16ToFloat32.
func halfValue(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * mant * math.Pow(2, -24)
	case 0x1f:
		if mant == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * (1024 + mant) * math.Pow(2, float64(exp-25))
}

func TestFloat16ToFloat32AllPatterns(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		got := Float16ToFloat32(h)
		want := halfValue(h)
		switch {
		case math.IsNaN(want):
			if !math.IsNaN(float64(got)) {
				t.Fatalf("%#04x: got %v, want NaN", h, got)
			}
			// The payload moves to the top of the float32 mantissa.
			if math.Float32bits(got)&0x7fffff != uint32(h&0x3ff)<<13 {
				t.Fatalf("%#04x: NaN payload lost: %#08x", h, math.Float32bits(got))
			}
		case float64(got) != want:
			t.Fatalf("%#04x: got %v, want %v", h, got, want)
		case math.Signbit(float64(got)) != (h&0x8000 != 0):
			t.Fatalf("%#04x: sign of %v is wrong", h, got)
		}
	}
}

func TestFloat16RoundTripAllPatterns(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		if back := Float32ToFloat16(Float16ToFloat32(h)); back != h {
			t.Fatalf("%#04x -> %v -> %#04x", h, Float16ToFloat32(h), back)
		}
	}
}

// positiveHalves returns the finite positive binary16 values in increasing
// order (bit patterns 0x0000..0x7bff are already sorted by value).
func positiveHalves() []float64 {
	v := make([]float64, 0x7c00)
	for h := range v {
		v[h] = halfValue(uint16(h))
	}
	return v
}

// refFloat16 rounds f to binary16 by searching the table of all values:
// nearest, ties to the even pattern, overflow to Inf from 65520 up.
func refFloat16(table []float64, f float32) uint16 {
	x := float64(f)
	if math.IsNaN(x) {
		return 0x7e00 // only NaN-ness is compared
	}
	var sign uint16
	if math.Signbit(x) {
		sign, x = 0x8000, -x
	}
	if x >= 65520 {
		return sign | 0x7c00
	}
	i := sort.SearchFloat64s(table, x) // first value >= x
	if i == len(table) {
		return sign | 0x7bff
	}
	if table[i] == x || i == 0 {
		return sign | uint16(i)
	}
	lo, hi := x-table[i-1], table[i]-x
	if lo < hi || (lo == hi && (i-1)%2 == 0) {
		return sign | uint16(i-1)
	}
	return sign | uint16(i)
}

func checkToHalf(t *testing.T, table []float64, f float32) {
	t.Helper()
	got, want := Float32ToFloat16(f), refFloat16(table, f)
	if math.IsNaN(float64(f)) {
		if got&0x7c00 != 0x7c00 || got&0x3ff == 0 || got>>15 != uint16(math.Float32bits(f)>>31) {
			t.Fatalf("NaN %#08x -> %#04x, want a NaN of the same sign", math.Float32bits(f), got)
		}
		return
	}
	if got != want {
		t.Fatalf("%v (%#08x) -> %#04x (%v), want %#04x (%v)", f, math.Float32bits(f),
			got, halfValue(got), want, halfValue(want))
	}
}

// Every midpoint between neighbouring halves is exact in float32: the
// midpoint itself must round to the even neighbour, the next float32 above
// to the upper one and the one below to the lower one.
func TestFloat32ToFloat16Midpoints(t *testing.T) {
	table := positiveHalves()
	for h := 0; h < 0x7bff; h++ {
		lo, hi := table[h], table[h+1]
		mid := float32((lo + hi) / 2)
		if float64(mid) != (lo+hi)/2 {
			t.Fatalf("midpoint of %#04x not exact in float32", h)
		}
		even := uint16(h)
		if h%2 == 1 {
			even = uint16(h + 1)
		}
		up := math.Nextafter32(mid, float32(math.Inf(1)))
		down := math.Nextafter32(mid, 0)
		for _, c := range []struct {
			f    float32
			want uint16
		}{{mid, even}, {up, uint16(h + 1)}, {down, uint16(h)}, {float32(lo), uint16(h)}} {
			if got := Float32ToFloat16(c.f); got != c.want {
				t.Fatalf("%v -> %#04x, want %#04x", c.f, got, c.want)
			}
			if got := Float32ToFloat16(-c.f); got != 0x8000|c.want {
				t.Fatalf("%v -> %#04x, want %#04x", -c.f, got, 0x8000|c.want)
			}
		}
	}
}

func TestFloat32ToFloat16Boundaries(t *testing.T) {
	inf := float32(math.Inf(1))
	cases := []struct {
		f    float32
		want uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{65504, 0x7bff},                                // largest half
		{math.Nextafter32(65520, 0), 0x7bff},           // just below the overflow tie
		{65520, 0x7c00},                                // tie: 65504 is odd, so up to Inf
		{65536, 0x7c00},                                // would be 2^16: Inf
		{math.MaxFloat32, 0x7c00},                      // far too large
		{inf, 0x7c00},                                  //
		{-inf, 0xfc00},                                 //
		{0x1p-14, 0x0400},                              // smallest normal
		{math.Nextafter32(0x1p-14, 0), 0x0400},         // rounds up into the normals
		{0x1p-24, 0x0001},                              // smallest subnormal
		{0x1p-25, 0x0000},                              // tie between 0 and 2^-24: even is 0
		{math.Nextafter32(0x1p-25, 1), 0x0001},         // above the tie
		{0x1.8p-24, 0x0002},                            // 1.5 ulp: tie to even 2
		{0x1.4p-24, 0x0001},                            // 1.25 ulp
		{0x1p-26, 0x0000},                              // underflow
		{math.SmallestNonzeroFloat32, 0x0000},          // float32 subnormal
		{-math.SmallestNonzeroFloat32, 0x8000},         // keeps the sign
		{0x1.ff8p-15, 0x03ff},                          // largest subnormal
		{0x1.ffcp-15, 0x0400},                          // tie above it: even is the smallest normal
		{1 + 0x1p-11, 0x3c00},                          // tie at 1: even is 1
		{1 + 0x3p-11, 0x3c02},                          // tie above 1+2^-10: up to even
		{0x1.ffep0, 0x4000},                            // 1.9995 ties up, carrying into the exponent
		{math.Float32frombits(0x7fc00000), 0x7e00},     // quiet NaN
		{math.Float32frombits(0xffc00000), 0xfe00},     // negative NaN
		{math.Float32frombits(0x7f800001), 0x7c01},     // payload only in low bits: still NaN
		{math.Float32frombits(0x7fa00000), 0x7d00},     // signalling payload kept
		{float32(halfValue(0x3555)), 0x3555},           // 0.333
		{float32(1.0 / 3.0), 0x3555},                   // nearest half to 1/3
		{float32(math.Pi), 0x4248},                     // pi
		{math.Float32frombits(0x477fefff), 0x7bff},     // 65519.996: below the tie
		{math.Float32frombits(0x38800000 - 1), 0x0400}, // just under 2^-14
	}
	for _, c := range cases {
		if got := Float32ToFloat16(c.f); got != c.want {
			t.Errorf("Float32ToFloat16(%v = %#08x) = %#04x, want %#04x", c.f, math.Float32bits(c.f), got, c.want)
		}
	}
}

func TestFloat32ToFloat16Random(t *testing.T) {
	table := positiveHalves()
	rng := rand.New(rand.NewPCG(1, 2))
	n := 1 << 20
	if testing.Short() {
		n = 1 << 16
	}
	for range n {
		// Uniform bit patterns cover all exponents; the second draw keeps
		// the exponent in the range where halves are not just 0 or Inf.
		checkToHalf(t, table, math.Float32frombits(rng.Uint32()))
		exp := uint32(127-26+rng.IntN(44)) << 23
		checkToHalf(t, table, math.Float32frombits(rng.Uint32()&0x807fffff|exp))
	}
}

func TestRoundToFloat16(t *testing.T) {
	if got := RoundToFloat16(0.1); got != float32(halfValue(0x2e66)) {
		t.Errorf("RoundToFloat16(0.1) = %v, want %v", got, halfValue(0x2e66))
	}
	if got := RoundToFloat16(1e6); !math.IsInf(float64(got), 1) {
		t.Errorf("RoundToFloat16(1e6) = %v, want +Inf", got)
	}
}
