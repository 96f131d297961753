package npy

import (
	"bytes"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func randomArray(rng *rand.Rand, dt DType, shape ...int) *Array {
	n, _ := shapeElems(shape)
	return &Array{Shape: shape, DType: dt, Data: randValues(rng, n)}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	shapes := [][]int{{}, {0}, {1}, {7}, {3, 5}, {2, 3, 4}, {2, 1, 3, 5}, {1, 1, 1, 1, 1, 2}, {4, 0, 2}, {1000, 70}}
	for _, dt := range []DType{Float32, Float16} {
		for _, shape := range shapes {
			a := randomArray(rng, dt, shape...)
			var buf bytes.Buffer
			if err := Encode(&buf, a); err != nil {
				t.Fatal(err)
			}
			if buf.Len() < 64 || (buf.Len()-len(a.Data)*dt.Size())%64 != 0 {
				t.Fatalf("%s %v: header is not padded to 64 bytes (file is %d bytes)", dt, shape, buf.Len())
			}
			// One byte at a time, to exercise short reads.
			got, err := Decode(iotest.OneByteReader(bytes.NewReader(buf.Bytes())), "mem")
			if err != nil {
				t.Fatalf("%s %v: %v", dt, shape, err)
			}
			want := &Array{Shape: shape, DType: dt, Data: a.Data}
			if dt == Float16 {
				want.Data = make([]float32, len(a.Data))
				for i, v := range a.Data {
					want.Data[i] = RoundToFloat16(v)
				}
			}
			assertArrayEqual(t, got, want)
		}
	}
}

func TestEncodeFloat16Rounds(t *testing.T) {
	a := &Array{Shape: []int{4}, DType: Float16, Data: []float32{1 + 0x1p-11, 1 + 0x3p-11, 70000, 0x1p-25}}
	var buf bytes.Buffer
	if err := Encode(&buf, a); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()[buf.Len()-8:]
	want := []byte{0x00, 0x3c, 0x02, 0x3c, 0x00, 0x7c, 0x00, 0x00}
	if !bytes.Equal(data, want) {
		t.Fatalf("float16 data % x, want % x", data, want)
	}
}

func TestEncodeLargeHeaderUsesVersion2(t *testing.T) {
	shape := make([]int, 25000) // "1, " per axis: the header outgrows 65535 bytes
	for i := range shape {
		shape[i] = 1
	}
	a := &Array{Shape: shape, DType: Float32, Data: []float32{42}}
	var buf bytes.Buffer
	if err := Encode(&buf, a); err != nil {
		t.Fatal(err)
	}
	if v := buf.Bytes()[6]; v != 2 {
		t.Fatalf("format version %d, want 2", v)
	}
	got, err := Decode(&buf, "mem")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Shape) != len(shape) || got.Data[0] != 42 {
		t.Fatalf("got rank %d data %v", len(got.Shape), got.Data)
	}
}

func TestEncodeRejectsBadArrays(t *testing.T) {
	for _, c := range []struct {
		a    *Array
		want string
	}{
		{nil, "nil array"},
		{&Array{Shape: []int{2}, DType: "float64", Data: []float32{1, 2}}, `dtype "float64" is not supported`},
		{&Array{Shape: []int{2, 2}, DType: Float32, Data: []float32{1, 2, 3}}, "array has 3 values, shape [2 2] needs 4"},
		{&Array{Shape: []int{-1}, DType: Float32}, "invalid shape [-1]"},
		{&Array{Shape: nil, DType: Float32, Data: nil}, "array has 0 values, shape [] needs 1"},
	} {
		err := Encode(io.Discard, c.a)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Encode(%+v) = %v, want %q", c.a, err, c.want)
		}
	}
}

func TestDecodeReaderErrors(t *testing.T) {
	boom := errors.New("disk on fire")
	if _, err := Decode(iotest.ErrReader(boom), "x.npy"); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("header read error: %v", err)
	}
	var buf bytes.Buffer
	if err := Encode(&buf, &Array{Shape: []int{8}, DType: Float32, Data: make([]float32, 8)}); err != nil {
		t.Fatal(err)
	}
	r := io.MultiReader(bytes.NewReader(buf.Bytes()[:buf.Len()-5]), iotest.ErrReader(boom))
	_, err := Decode(r, "x.npy")
	if err == nil || !strings.Contains(err.Error(), "x.npy: reading data: disk on fire") {
		t.Errorf("data read error: %v", err)
	}
}

func TestWriteNPYAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "q.npy")
	a := &Array{Shape: []int{2, 2}, DType: Float32, Data: []float32{1, 2, 3, 4}}
	if err := Write(path, a); err != nil {
		t.Fatal(err)
	}
	b := &Array{Shape: []int{3}, DType: Float16, Data: []float32{-1, 0.5, 8}}
	if err := Write(path, b); err != nil { // replaces the first file
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	assertArrayEqual(t, got, b)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", info.Mode().Perm())
	}

	// A failing write leaves the old file alone and no temporary behind.
	bad := &Array{Shape: []int{5}, DType: Float32, Data: []float32{1}}
	if err := Write(path, bad); err == nil || !strings.HasPrefix(err.Error(), path+": ") {
		t.Fatalf("Write(bad) = %v, want an error naming %s", err, path)
	}
	got, err = Read(path)
	if err != nil {
		t.Fatal(err)
	}
	assertArrayEqual(t, got, b)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		names := []string{}
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("directory holds %v, want only q.npy", names)
	}

	if err := Write(filepath.Join(dir, "missing", "x.npy"), a); err == nil {
		t.Fatal("Write into a missing directory succeeded")
	}
}

func TestReadNPYMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.npy")
	_, err := Read(path)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Read(missing) = %v", err)
	}
}

func TestHeaderParserEdgeCases(t *testing.T) {
	for _, c := range []struct {
		header string
		err    string // "" means accepted
	}{
		{"{'descr':'<f4','fortran_order':False,'shape':(2,)}", ""},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }   \n", ""},
		{"{'descr': 'f4', 'fortran_order': False, 'shape': (2,), }", ""},
		{"{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2,), }", "unexpected"},
		{"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", "duplicate key 'descr'"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} junk", "after the dict"},
		{"{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}", "expected ',' or '}', found 'f'"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (2.5,)}", "expected ',' or ')'"},
		{"{'descr': '|f4', 'fortran_order': False, 'shape': (2,)}", "descr '|f4' is invalid for floats"},
		{"{'descr': '<f16', 'fortran_order': False, 'shape': (2,)}", "16-byte float data"},
		{"{'descr': '<c8', 'fortran_order': False, 'shape': (2,)}", "complex data"},
		{"{'descr': ('<f4', (2,)), 'fortran_order': False, 'shape': (2,)}", "sub-array dtype ('<f4', (2,))"},
		{"{1: '<f4'}", "dict key 1 is not a string"},
		{"{'descr': '<f\\'4', 'fortran_order': False, 'shape': (2,)}", "descr '<f'4'"},
		{"", "unexpected end"},
	} {
		_, err := parseNPYHeader(c.header)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.header, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want %q", c.header, err, c.err)
		}
	}
}

func TestDecodeFloat32BitExact(t *testing.T) {
	// Every class of float32 survives encode/decode bit for bit, including
	// NaN payloads and negative zero.
	vals := []float32{float32(math.Copysign(0, -1)), math.Float32frombits(0x7fa00001),
		math.Float32frombits(0xffc00000), float32(math.Inf(-1)), math.SmallestNonzeroFloat32, -math.MaxFloat32}
	a := &Array{Shape: []int{len(vals)}, DType: Float32, Data: vals}
	var buf bytes.Buffer
	if err := Encode(&buf, a); err != nil {
		t.Fatal(err)
	}
	got, err := Decode(&buf, "mem")
	if err != nil {
		t.Fatal(err)
	}
	for i := range vals {
		if math.Float32bits(got.Data[i]) != math.Float32bits(vals[i]) {
			t.Errorf("element %d: %#08x, want %#08x", i, math.Float32bits(got.Data[i]), math.Float32bits(vals[i]))
		}
	}
}

// randValues returns n normal values (like reference.RandNormal, which this
// package cannot import: reference depends on npy).
func randValues(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}
