package npy

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// hugeHeaderFile writes a valid header claiming shape, followed by only a
// few bytes of data.
func hugeHeaderFile(t *testing.T, shape []int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "huge.npy")
	if err := os.WriteFile(p, []byte(npyHeader("<f4", shape)+"\x00\x00\x80\x3f"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadHeaderMatchesRead(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, dt := range []DType{Float32, Float16} {
		a := randomArray(rng, dt, 2, 3, 5)
		p := filepath.Join(dir, string(dt)+".npy")
		if err := Write(p, a); err != nil {
			t.Fatal(err)
		}
		h, err := ReadHeader(p)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(p)
		if err := CheckSize(p, h); err != nil {
			t.Error(err)
		}
		if !slices.Equal(h.Shape, a.Shape) || h.DType != dt || h.Elements() != 30 || h.DataOffset+h.DataBytes() != st.Size() {
			t.Errorf("%s: header %+v, file %d bytes", dt, h, st.Size())
		}
	}
}

// A header that claims a huge shape is read without reading or allocating
// for the data; CheckSize reports the mismatch from the file's size.
func TestReadHeaderHugeShapeAllocatesNothing(t *testing.T) {
	p := hugeHeaderFile(t, []int{1 << 20, 1 << 20, 64})
	var err error
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		var h Header
		if h, err = ReadHeader(p); err == nil {
			err = CheckSize(p, h)
		}
	}
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "has 4 bytes of data, shape [1048576 1048576 64] needs 281474976710656; the file is truncated") {
		t.Fatalf("err = %v", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Errorf("10 ReadHeader calls allocated %d bytes", d)
	}
}

func TestScanStreamsInChunks(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 6))
	a := randomArray(rng, Float16, 3, npyChunk+17)
	p := filepath.Join(dir, "a.npy")
	if err := Write(p, a); err != nil {
		t.Fatal(err)
	}
	want, _ := Read(p)
	var got []float32
	h, err := Scan(p, func(start int, chunk []float32) error {
		if start != len(got) || len(chunk) > npyChunk {
			t.Fatalf("chunk at %d of %d values after %d", start, len(chunk), len(got))
		}
		got = append(got, chunk...)
		return nil
	})
	if err != nil || !slices.Equal(h.Shape, a.Shape) || !slices.Equal(got, want.Data) {
		t.Fatalf("Scan: %v, %d values, header %+v", err, len(got), h)
	}

	b, _ := os.ReadFile(p)
	for name, data := range map[string][]byte{"truncated": b[:len(b)-3], "trailing data": append(b, 1, 2)} {
		os.WriteFile(p, data, 0o644)
		_, err := Scan(p, func(int, []float32) error { return nil })
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
