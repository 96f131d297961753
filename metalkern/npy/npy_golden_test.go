package npy

import (
	"bytes"
	"encoding/binary"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/npy from the hand-built bytes")

// npyBytes assembles a .npy file by hand: magic, version, header length,
// the header dict padded with spaces and a newline to a multiple of 64
// bytes, then the raw data. It shares no code with Encode.
func npyBytes(major byte, dict string, data ...[]byte) []byte {
	prefix := 10
	if major >= 2 {
		prefix = 12
	}
	hlen := len(dict) + 1
	pad := 64 - (prefix+hlen)%64
	var b bytes.Buffer
	b.WriteString("\x93NUMPY")
	b.WriteByte(major)
	b.WriteByte(0)
	if prefix == 10 {
		b.Write([]byte{byte(hlen + pad), byte((hlen + pad) >> 8)})
	} else {
		b.Write(binary.LittleEndian.AppendUint32(nil, uint32(hlen+pad)))
	}
	b.WriteString(dict + strings.Repeat(" ", pad) + "\n")
	for _, d := range data {
		b.Write(d)
	}
	return b.Bytes()
}

// numpyDict is the dict numpy.save writes, including the spare spaces it
// leaves for growing the first axis (21 digits minus the first dim's).
func numpyDict(descr, shape string, firstDim string) string {
	d := "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }"
	if firstDim != "" {
		d += strings.Repeat(" ", 21-len(firstDim))
	}
	return d
}

// Raw little-endian data, written out byte by byte.
var (
	// float32 0, 1, -2, 0.5, smallest subnormal, MaxFloat32
	f32Six = []byte{
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0,
		0x00, 0x00, 0x00, 0x3f, 0x01, 0x00, 0x00, 0x00, 0xff, 0xff, 0x7f, 0x7f,
	}
	f32SixValues = []float32{0, 1, -2, 0.5, math.SmallestNonzeroFloat32, math.MaxFloat32}
	// float16 0, -0, 1, -2, 65504, 2^-24, 2^-14, +Inf, -Inf, NaN, 0x3555
	f16Specials = []byte{
		0x00, 0x00, 0x00, 0x80, 0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00,
		0x00, 0x04, 0x00, 0x7c, 0x00, 0xfc, 0x00, 0x7e, 0x55, 0x35,
	}
	f16SpecialValues = []float32{
		0, float32(math.Copysign(0, -1)), 1, -2, 65504, 0x1p-24, 0x1p-14,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 0.333251953125,
	}
	f32TwoFive     = []byte{0x00, 0x00, 0x20, 0x40} // 2.5
	f32OneTwoThree = []byte{0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x40, 0x40}
)

type goldenCase struct {
	file      string
	bytes     []byte
	want      *Array // nil for files that must be rejected
	wantErr   string // substring of the error
	canonical bool   // Encode(want) must reproduce bytes exactly
}

func goldenCases() []goldenCase {
	v1 := func(dict string, data ...[]byte) []byte { return npyBytes(1, dict, data...) }
	shape23 := numpyDict("<f4", "(2, 3)", "2")
	return []goldenCase{
		{file: "f4_2x3.npy", bytes: v1(shape23, f32Six), canonical: true,
			want: &Array{Shape: []int{2, 3}, DType: Float32, Data: f32SixValues}},
		{file: "f2_specials.npy", bytes: v1(numpyDict("<f2", "(11,)", "11"), f16Specials), canonical: true,
			want: &Array{Shape: []int{11}, DType: Float16, Data: f16SpecialValues}},
		{file: "f4_scalar.npy", bytes: v1(numpyDict("<f4", "()", ""), f32TwoFive), canonical: true,
			want: &Array{Shape: []int{}, DType: Float32, Data: []float32{2.5}}},
		{file: "f4_empty.npy", bytes: v1(numpyDict("<f4", "(0, 4)", "0")), canonical: true,
			want: &Array{Shape: []int{0, 4}, DType: Float32, Data: []float32{}}},
		{file: "f2_rank3.npy", bytes: v1(numpyDict("<f2", "(1, 3, 1)", "1"), []byte{0x00, 0x3c, 0x00, 0x40, 0x00, 0x42}), canonical: true,
			want: &Array{Shape: []int{1, 3, 1}, DType: Float16, Data: []float32{1, 2, 3}}},
		{file: "f4_v2.npy", bytes: npyBytes(2, numpyDict("<f4", "(3,)", "3"), f32OneTwoThree),
			want: &Array{Shape: []int{3}, DType: Float32, Data: []float32{1, 2, 3}}},
		{file: "f4_v3.npy", bytes: npyBytes(3, numpyDict("<f4", "(3,)", "3"), f32OneTwoThree),
			want: &Array{Shape: []int{3}, DType: Float32, Data: []float32{1, 2, 3}}},
		{file: "f4_native_order.npy", bytes: v1("{'descr': '=f4', 'fortran_order': False, 'shape': (3,), }", f32OneTwoThree),
			want: &Array{Shape: []int{3}, DType: Float32, Data: []float32{1, 2, 3}}},
		// Python 2 numpy wrote long integers with an L suffix; any key order
		// and quoting is valid Python.
		{file: "f4_py2_header.npy", bytes: v1(`{"shape": (1L, 3L), "fortran_order": False, "descr": "<f4"}`, f32OneTwoThree),
			want: &Array{Shape: []int{1, 3}, DType: Float32, Data: []float32{1, 2, 3}}},
		// Fortran order is the same layout as C order for a vector.
		{file: "f4_fortran_vector.npy", bytes: v1("{'descr': '<f4', 'fortran_order': True, 'shape': (3, 1), }", f32OneTwoThree),
			want: &Array{Shape: []int{3, 1}, DType: Float32, Data: []float32{1, 2, 3}}},

		{file: "bad_magic.npy", bytes: []byte("PK\x03\x04 this is a zip, maybe an .npz"), wantErr: "not a .npy file"},
		{file: "bad_empty.npy", bytes: []byte{}, wantErr: "not a .npy file"},
		{file: "bad_version.npy", bytes: append([]byte("\x93NUMPY\x04\x00"), v1(shape23)[8:]...),
			wantErr: ".npy format version 4.0 is not supported"},
		{file: "bad_header_truncated.npy", bytes: v1(shape23)[:40], wantErr: "header truncated: 30 of 118 bytes"},
		{file: "bad_big_endian.npy", bytes: v1(numpyDict(">f4", "(3,)", "3"), f32OneTwoThree),
			wantErr: "big-endian data (descr '>f4'); save with dtype '<f4'"},
		{file: "bad_big_endian_f2.npy", bytes: v1(numpyDict(">f2", "(1,)", "1"), []byte{0x3c, 0x00}),
			wantErr: "big-endian data (descr '>f2'); save with dtype '<f2'"},
		{file: "bad_float64.npy", bytes: v1(numpyDict("<f8", "(1,)", "1"), make([]byte, 8)),
			wantErr: "float64 is not supported; convert with x.astype(np.float32)"},
		{file: "bad_int32.npy", bytes: v1(numpyDict("<i4", "(1,)", "1"), make([]byte, 4)),
			wantErr: "integer data (descr '<i4') is not supported; convert with x.astype(np.float32)"},
		{file: "bad_uint8.npy", bytes: v1(numpyDict("|u1", "(1,)", "1"), make([]byte, 1)), wantErr: "integer data"},
		{file: "bad_bool.npy", bytes: v1(numpyDict("|b1", "(1,)", "1"), make([]byte, 1)), wantErr: "boolean data"},
		{file: "bad_object.npy", bytes: v1(numpyDict("|O", "(1,)", "1"), []byte("\x80\x04pickle")),
			wantErr: "object arrays are not supported"},
		{file: "bad_unicode.npy", bytes: v1(numpyDict("<U3", "(1,)", "1"), make([]byte, 12)),
			wantErr: "dtype descr '<U3' is not supported; orchard reads float32 ('<f4') and float16 ('<f2')"},
		{file: "bad_structured.npy", bytes: v1("{'descr': [('a', '<f4'), ('b', '<f4')], 'fortran_order': False, 'shape': (1,), }", make([]byte, 8)),
			wantErr: "structured or sub-array dtype [('a', '<f4'), ('b', '<f4')] is not supported"},
		{file: "bad_fortran.npy", bytes: v1("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", f32Six),
			wantErr: "Fortran order; save a C-contiguous array"},
		{file: "bad_truncated.npy", bytes: v1(shape23, f32Six[:20]),
			wantErr: "has 20 bytes of data, shape [2 3] needs 24; the file is truncated"},
		{file: "bad_trailing.npy", bytes: v1(shape23, f32Six, []byte{1, 2, 3, 4}),
			wantErr: "has 28 bytes of data, shape [2 3] needs 24; unexpected trailing data"},
		{file: "bad_header_syntax.npy", bytes: v1("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3) ", f32Six),
			wantErr: "malformed header"},
		{file: "bad_header_list.npy", bytes: v1("['descr', '<f4']", f32Six), wantErr: "not a dict"},
		{file: "bad_missing_shape.npy", bytes: v1("{'descr': '<f4', 'fortran_order': False, }", f32Six),
			wantErr: "no 'shape' key"},
		{file: "bad_extra_key.npy", bytes: v1("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'x': 1, }", f32Six),
			wantErr: "keys must be exactly"},
		{file: "bad_negative_dim.npy", bytes: v1(numpyDict("<f4", "(-1,)", "-1")), wantErr: "must hold non-negative integers"},
		{file: "bad_shape_list.npy", bytes: v1(numpyDict("<f4", "[6]", "6"), f32Six), wantErr: "shape [6] is not a tuple"},
		{file: "bad_fortran_value.npy", bytes: v1("{'descr': '<f4', 'fortran_order': 0, 'shape': (6,), }", f32Six),
			wantErr: "fortran_order 0 is not True or False"},
		{file: "bad_huge_shape.npy", bytes: v1(numpyDict("<f4", "(4611686018427387904, 4)", "4611686018427387904")),
			wantErr: "shape [4611686018427387904 4] is too large"},
		{file: "bad_huge_claim.npy", bytes: v1(numpyDict("<f4", "(1000000000, 1000)", "1000000000"), f32Six),
			wantErr: "has 24 bytes of data, shape [1000000000 1000] needs 4000000000000"},
	}
}

func TestGoldenNPYFiles(t *testing.T) {
	dir := filepath.Join("testdata")
	if *updateGolden {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range goldenCases() {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join(dir, c.file)
			if *updateGolden {
				if err := os.WriteFile(path, c.bytes, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			onDisk, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGoldenNPYFiles -update to create it)", err)
			}
			if !bytes.Equal(onDisk, c.bytes) {
				t.Fatalf("%s differs from the hand-built bytes (run with -update after checking why)", path)
			}
			got, err := Read(path)
			if c.want == nil {
				if err == nil {
					t.Fatalf("Read accepted %s: %+v", path, got)
				}
				if !strings.HasPrefix(err.Error(), path+": ") || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %q, want %q prefixed by the path", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertArrayEqual(t, got, c.want)
			if c.canonical {
				var buf bytes.Buffer
				if err := Encode(&buf, c.want); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(buf.Bytes(), c.bytes) {
					t.Errorf("Encode:\n got %q\nwant %q", buf.Bytes(), c.bytes)
				}
			}
		})
	}
}

// assertArrayEqual compares bit patterns, so NaN equals NaN and -0 != +0.
func assertArrayEqual(t *testing.T, got, want *Array) {
	t.Helper()
	if got.DType != want.DType || !reflect.DeepEqual(got.Shape, want.Shape) || len(got.Data) != len(want.Data) {
		t.Fatalf("got %s %v with %d values, want %s %v with %d", got.DType, got.Shape, len(got.Data),
			want.DType, want.Shape, len(want.Data))
	}
	for i := range got.Data {
		g, w := got.Data[i], want.Data[i]
		if math.Float32bits(g) != math.Float32bits(w) && !(math.IsNaN(float64(g)) && math.IsNaN(float64(w))) {
			t.Fatalf("element %d = %v, want %v", i, g, w)
		}
	}
}
