package npy

import "math"

// IEEE 754 binary16 ("half", numpy float16, Metal half) conversions. Go has
// no native float16, so values travel as their 16-bit patterns.
//
// Float16ToFloat32 is exact: every binary16 value, subnormals included, is
// representable as a float32. NaN payloads are kept (the 10 payload bits move
// to the top of the float32 mantissa), so Float32ToFloat16(Float16ToFloat32(h))
// == h for all 65536 patterns.
//
// Float32ToFloat16 rounds to nearest, ties to even, like numpy's astype and
// Metal's float-to-half conversion: magnitudes from 65520 up become ±Inf,
// results below the smallest normal (2^-14) become subnormals, and
// magnitudes up to 2^-25 (inclusive, the tie rounds to the even zero) become
// ±0. A NaN keeps its sign and the top 10 payload bits; if those are all zero
// the lowest payload bit is set so the result stays a NaN (numpy's rule).

const (
	f16SignMask = 0x8000
	f16ExpMask  = 0x7c00
	f16MantMask = 0x03ff
)

// Float16ToFloat32 decodes a binary16 bit pattern exactly.
func Float16ToFloat32(h uint16) float32 {
	sign := uint32(h&f16SignMask) << 16
	exp := uint32(h&f16ExpMask) >> 10
	mant := uint32(h & f16MantMask)
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	case mant == 0: // ±0
		return math.Float32frombits(sign)
	}
	// Subnormal: mant * 2^-24. Normalise so the leading 1 reaches bit 10.
	e := uint32(127 - 14)
	for mant&0x400 == 0 {
		mant <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (mant&f16MantMask)<<13)
}

// Float32ToFloat16 encodes f as binary16, rounding to nearest even.
func Float32ToFloat16(f float32) uint16 {
	bits := math.Float32bits(f)
	sign := uint16(bits>>16) & f16SignMask
	exp := int(bits>>23) & 0xff
	mant := bits & 0x7fffff

	if exp == 0xff {
		if mant == 0 {
			return sign | f16ExpMask // ±Inf
		}
		h := uint16(mant >> 13)
		if h == 0 {
			h = 1
		}
		return sign | f16ExpMask | h // NaN, payload kept
	}

	he := exp - 127 + 15 // biased binary16 exponent
	if he >= 0x1f {
		return sign | f16ExpMask // too large even before rounding
	}
	if he <= 0 {
		// Subnormal or zero result. The value is m * 2^(exp-150) with the
		// implicit bit restored; in units of 2^-24 that is m >> (1-he+13).
		if he < -10 {
			return sign // below 2^-25: rounds to zero (float32 subnormals too)
		}
		m := mant | 0x800000
		shift := uint(14 - he) // 14..24
		q := m >> shift
		r := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if r > half || (r == half && q&1 == 1) {
			q++ // may carry into the exponent field: smallest normal, correct
		}
		return sign | uint16(q)
	}
	q := uint32(he)<<10 | mant>>13
	r := mant & 0x1fff
	if r > 0x1000 || (r == 0x1000 && q&1 == 1) {
		q++ // a carry out of the mantissa bumps the exponent; 0x7c00 is Inf
	}
	return sign | uint16(q)
}

// RoundToFloat16 returns f rounded to the nearest binary16 value, as a
// float32. Use it to quantise inputs so a float64 reference sees exactly the
// values a float16 kernel reads.
func RoundToFloat16(f float32) float32 {
	return Float16ToFloat32(Float32ToFloat16(f))
}
