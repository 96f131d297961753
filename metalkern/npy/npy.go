// Package npy reads and writes .npy files (NumPy's array format) as orchard's
// tensors: float32 and float16, little-endian, C order; with IEEE binary16
// conversions, since Go has no float16.
package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// DType names the element type of an Array as stored on disk.
type DType string

// The element types orchard reads and writes.
const (
	Float32 DType = "float32" // descr '<f4'
	Float16 DType = "float16" // descr '<f2'
)

// Size returns the number of bytes per element, or 0 for an unknown DType.
func (d DType) Size() int {
	switch d {
	case Float32:
		return 4
	case Float16:
		return 2
	}
	return 0
}

// Array is a dense C-order array read from or written to a .npy file.
// Data always holds float32 values: float16 files are decoded exactly on
// read and rounded to nearest even on write.
type Array struct {
	Shape []int
	DType DType
	Data  []float32
}

const (
	npyMagic         = "\x93NUMPY"
	npyAlign         = 64      // numpy's ARRAY_ALIGN
	npyGrowthDigits  = 21      // numpy's GROWTH_AXIS_MAX_DIGITS
	npyMaxHeaderSize = 1 << 20 // larger headers are rejected as corrupt
	npyChunk         = 1 << 16 // elements converted per buffer when streaming
)

// nativeLittleEndian reports whether '=' (native order) means little-endian.
var nativeLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// Read reads a .npy file of float32 or float16 values.
func Read(path string) (*Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Decode(f, path)
}

// Header is what a .npy file's header says about the data after it.
type Header struct {
	Shape []int
	DType DType
	// DataOffset is the number of bytes before the data: magic, version,
	// header length and header dict.
	DataOffset int64
}

// Elements returns the number of elements the shape holds. The parser
// guarantees that it and DataBytes fit in an int.
func (h Header) Elements() int {
	n, _ := shapeElems(h.Shape)
	return n
}

// DataBytes returns the number of data bytes the header promises.
func (h Header) DataBytes() int64 { return int64(h.Elements()) * int64(h.DType.Size()) }

// ReadHeader reads and validates only the header of the .npy file at path:
// no data is read, so a header claiming a huge shape costs nothing.
// CheckSize then tells whether the file holds that data.
func ReadHeader(path string) (Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return Header{}, err
	}
	defer f.Close()
	return decodeHeader(f, path)
}

// CheckSize reports an error when the file at path (a regular file whose
// header is h) holds less or more data than h promises, from its size alone.
func CheckSize(path string, h Header) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return nil
	}
	return sizeMismatch(path, st.Size()-h.DataOffset, h)
}

// sizeMismatch explains data of got bytes that is not what h promises.
func sizeMismatch(name string, got int64, h Header) error {
	need := h.DataBytes()
	switch {
	case got < need:
		return fmt.Errorf("%s: has %d bytes of data, shape %v needs %d; the file is truncated", name, got, h.Shape, need)
	case got > need:
		return fmt.Errorf("%s: has %d bytes of data, shape %v needs %d; unexpected trailing data", name, got, h.Shape, need)
	}
	return nil
}

// decodeHeader reads the magic, version, length and header dict from r,
// leaving r at the first data byte. It is the one .npy header parser.
func decodeHeader(r io.Reader, name string) (Header, error) {
	fail := func(format string, args ...any) (Header, error) {
		return Header{}, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...))
	}
	var pre [8]byte
	n, err := io.ReadFull(r, pre[:])
	if n < len(npyMagic) || string(pre[:len(npyMagic)]) != npyMagic {
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return fail("%v", err)
		}
		if bytes.HasPrefix(pre[:n], []byte("PK\x03\x04")) {
			return fail("not a .npy file (it is a zip archive, perhaps an .npz; save arrays with np.save)")
		}
		return fail("not a .npy file (it does not start with \\x93NUMPY)")
	}
	if err != nil {
		return fail("truncated .npy header")
	}
	major, minor := pre[6], pre[7]
	var lenBytes int
	switch {
	case major == 1 && minor == 0:
		lenBytes = 2
	case (major == 2 || major == 3) && minor == 0:
		lenBytes = 4
	default:
		return fail(".npy format version %d.%d is not supported (orchard reads 1.0, 2.0 and 3.0)", major, minor)
	}
	var lb [4]byte
	if _, err := io.ReadFull(r, lb[:lenBytes]); err != nil {
		return fail("truncated .npy header")
	}
	hlen := int(binary.LittleEndian.Uint32(lb[:]))
	if hlen > npyMaxHeaderSize {
		return fail("header claims %d bytes; over the %d-byte limit, the file is corrupt", hlen, npyMaxHeaderSize)
	}
	raw := make([]byte, hlen)
	if got, err := io.ReadFull(r, raw); err != nil {
		return fail("header truncated: %d of %d bytes", got, hlen)
	}
	var header string
	if major == 3 {
		header = string(raw) // UTF-8
	} else {
		header = latin1(raw)
	}
	h, err := parseNPYHeader(header)
	if err != nil {
		return fail("%v", err)
	}
	elems, ok := shapeElems(h.shape)
	if !ok || elems > math.MaxInt/h.dtype.Size() {
		return fail("shape %v is too large", h.shape)
	}
	return Header{Shape: h.shape, DType: h.dtype, DataOffset: int64(len(pre) + lenBytes + hlen)}, nil
}

// Decode reads one .npy array from r, which must end with the array's
// data. name identifies the source in error messages.
func Decode(r io.Reader, name string) (*Array, error) {
	h, err := decodeHeader(r, name)
	if err != nil {
		return nil, err
	}
	need := int(h.DataBytes())
	data, got, err := readData(r, need)
	if err != nil {
		return nil, fmt.Errorf("%s: reading data: %v", name, err)
	}
	if err := sizeMismatch(name, int64(got), h); err != nil {
		return nil, err
	}
	a := &Array{Shape: h.Shape, DType: h.DType, Data: make([]float32, h.Elements())}
	decodeValues(a.Data, data, h.DType)
	return a, nil
}

// decodeValues converts little-endian data of dtype dt into dst.
func decodeValues(dst []float32, data []byte, dt DType) {
	if dt == Float32 {
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
	} else {
		for i := range dst {
			dst[i] = Float16ToFloat32(binary.LittleEndian.Uint16(data[2*i:]))
		}
	}
}

// Scan reads the .npy file at path in chunks, without holding its data:
// fn sees the values from element start on, in order, and may stop the scan
// by returning an error, which Scan returns.
func Scan(path string, fn func(start int, chunk []float32) error) (Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return Header{}, err
	}
	defer f.Close()
	h, err := decodeHeader(f, path)
	if err != nil {
		return h, err
	}
	size := h.DType.Size()
	raw := make([]byte, size*npyChunk)
	vals := make([]float32, npyChunk)
	total := h.Elements()
	for start := 0; start < total; start += npyChunk {
		n := min(npyChunk, total-start)
		got, err := io.ReadFull(f, raw[:size*n])
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return h, sizeMismatch(path, int64(start*size+got), h)
			}
			return h, fmt.Errorf("%s: reading data: %v", path, err)
		}
		decodeValues(vals[:n], raw[:size*n], h.DType)
		if err := fn(start, vals[:n]); err != nil {
			return h, err
		}
	}
	rest, err := io.Copy(io.Discard, f)
	if err != nil {
		return h, fmt.Errorf("%s: reading data: %v", path, err)
	}
	if rest > 0 {
		return h, sizeMismatch(path, h.DataBytes()+rest, h)
	}
	return h, nil
}

// readData reads exactly need bytes when r has them; got reports the total
// number of bytes r held, so that short and over-long files can be told
// apart. The buffer grows with the data actually read, so a corrupt header
// claiming a huge shape cannot force a huge allocation.
func readData(r io.Reader, need int) (data []byte, got int, err error) {
	lr := io.LimitReader(r, int64(need)+1)
	buf := make([]byte, 0, min(need, 1<<26)+1)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(len(buf), need+1-len(buf)))
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, len(buf), err
		}
	}
	got = len(buf)
	if got > need {
		rest, err := io.Copy(io.Discard, r)
		if err != nil {
			return nil, got, err
		}
		got += int(rest)
	}
	return buf, got, nil
}

// latin1 decodes ISO-8859-1 bytes, the header encoding of .npy 1.0 and 2.0.
func latin1(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for _, c := range b {
		sb.WriteRune(rune(c))
	}
	return sb.String()
}

// shapeElems returns the element count of shape, false on overflow.
func shapeElems(shape []int) (int, bool) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, false
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, false
		}
		n *= d
	}
	return n, true
}

// Write writes a as a .npy file. The file is written to a temporary file
// in the same directory and renamed into place, so readers never see a
// partial file.
func Write(path string, a *Array) (err error) {
	if err := checkArray(a); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = Encode(f, a); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Encode writes a to w in .npy format: version 1.0 (2.0 if the header
// needs it), little-endian, C order, with numpy's header layout, so the
// bytes match what numpy.save writes for the same array.
func Encode(w io.Writer, a *Array) error {
	if err := checkArray(a); err != nil {
		return err
	}
	descr := "<f4"
	if a.DType == Float16 {
		descr = "<f2"
	}
	if _, err := io.WriteString(w, npyHeader(descr, a.Shape)); err != nil {
		return err
	}
	size := a.DType.Size()
	buf := make([]byte, size*min(len(a.Data), npyChunk))
	for start := 0; start < len(a.Data); start += npyChunk {
		chunk := a.Data[start:min(start+npyChunk, len(a.Data))]
		b := buf[:size*len(chunk)]
		if a.DType == Float32 {
			for i, v := range chunk {
				binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
			}
		} else {
			for i, v := range chunk {
				binary.LittleEndian.PutUint16(b[2*i:], Float32ToFloat16(v))
			}
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

func checkArray(a *Array) error {
	if a == nil {
		return errors.New("nil array")
	}
	if a.DType.Size() == 0 {
		return fmt.Errorf("dtype %q is not supported; use %q or %q", a.DType, Float32, Float16)
	}
	n, ok := shapeElems(a.Shape)
	if !ok {
		return fmt.Errorf("invalid shape %v", a.Shape)
	}
	if n != len(a.Data) {
		return fmt.Errorf("array has %d values, shape %v needs %d", len(a.Data), a.Shape, n)
	}
	return nil
}

// npyHeader renders the magic, version, length and header dict exactly as
// numpy 1.24+ does: sorted keys, the shape's repr, spare spaces for growing
// the first axis in place, then space padding and a newline up to a multiple
// of 64 bytes.
func npyHeader(descr string, shape []int) string {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	shapeRepr := "(" + strings.Join(dims, ", ")
	if len(shape) == 1 {
		shapeRepr += ","
	}
	shapeRepr += ")"
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shapeRepr)
	if len(shape) > 0 {
		dict += strings.Repeat(" ", max(0, npyGrowthDigits-len(dims[0])))
	}
	for _, v := range []struct {
		major    byte
		lenBytes int
	}{{1, 2}, {2, 4}} {
		hlen := len(dict) + 1 // + newline
		pad := npyAlign - (len(npyMagic)+2+v.lenBytes+hlen)%npyAlign
		total := hlen + pad
		if v.lenBytes == 2 && total > math.MaxUint16 {
			continue
		}
		var lb [4]byte
		binary.LittleEndian.PutUint32(lb[:], uint32(total))
		return npyMagic + string([]byte{v.major, 0}) + string(lb[:v.lenBytes]) +
			dict + strings.Repeat(" ", pad) + "\n"
	}
	panic("unreachable: .npy 2.0 header length overflow")
}
