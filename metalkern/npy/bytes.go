package npy

import (
	"encoding/binary"
	"math"
)

// Float32Bytes returns x as little-endian float32 bytes ('<f4' data, the
// runner's raw buffer format).
func Float32Bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// Float32sFromBytes reads little-endian float32 values; a trailing partial
// value is ignored.
func Float32sFromBytes(b []byte) []float32 {
	x := make([]float32, len(b)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return x
}
