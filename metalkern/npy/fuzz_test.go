package npy

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode: Decode never panics and never allocates for data it has not
// read (a header may claim any shape); when it accepts an input, Encode
// writes a file that Decode reads back to the same shape, dtype and bits.
// Seeds: every file in testdata/ (good and bad) and testdata/fuzz/FuzzDecode/.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.npy"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		a, err := Decode(bytes.NewReader(in), "fuzz.npy")
		if err != nil {
			return
		}
		n := 1
		for _, d := range a.Shape {
			n *= d
		}
		if n != len(a.Data) {
			t.Fatalf("shape %v holds %d elements, Data has %d", a.Shape, n, len(a.Data))
		}
		if len(a.Data)*a.DType.Size() > len(in) {
			t.Fatalf("decoded %d elements of %s from %d bytes", len(a.Data), a.DType, len(in))
		}
		var buf bytes.Buffer
		if err := Encode(&buf, a); err != nil {
			t.Fatalf("Encode of a decoded array: %v", err)
		}
		b, err := Decode(bytes.NewReader(buf.Bytes()), "again.npy")
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(x))): %v", err)
		}
		if b.DType != a.DType || len(b.Shape) != len(a.Shape) || len(b.Data) != len(a.Data) {
			t.Fatalf("round trip changed the array: %s%v -> %s%v", a.DType, a.Shape, b.DType, b.Shape)
		}
		for i := range a.Shape {
			if a.Shape[i] != b.Shape[i] {
				t.Fatalf("round trip changed the shape: %v -> %v", a.Shape, b.Shape)
			}
		}
		for i := range a.Data {
			if math.Float32bits(a.Data[i]) != math.Float32bits(b.Data[i]) {
				t.Fatalf("element %d: %#x -> %#x", i, math.Float32bits(a.Data[i]), math.Float32bits(b.Data[i]))
			}
		}
	})
}
