package logs

import (
	"bytes"
	"errors"
	"io"
	"os"
)

// record keeps the head and tail samples of data just read at off.
func (s *source) record(data []byte, off int64) {
	if off == int64(len(s.head)) && len(s.head) < sampleLen {
		n := min(sampleLen-len(s.head), len(data))
		s.head = append(s.head, data[:n]...)
	}
	if len(data) >= sampleLen {
		s.tail = append(s.tail[:0], data[len(data)-sampleLen:]...)
		return
	}
	s.tail = append(s.tail, data...)
	if extra := len(s.tail) - sampleLen; extra > 0 {
		s.tail = append(s.tail[:0], s.tail[extra:]...)
	}
}

// resample reads the head and tail samples for a start at s.off.
func (s *source) resample() {
	s.head = readSample(s.f, 0, min(sampleLen, s.off))
	n := min(sampleLen, s.off)
	s.tail = readSample(s.f, s.off-n, n)
}

func readSample(f *os.File, at, n int64) []byte {
	b := make([]byte, n)
	k, _ := f.ReadAt(b, at)
	return b[:k]
}

// intact reports whether the bytes already read are still there: the head
// and tail samples match the file. A rewrite (truncate and write again, to
// the same or a larger size) changes one of them.
func (s *source) intact(scratch []byte) bool {
	if s.off == 0 {
		return true
	}
	if int64(len(s.head)) > s.off || int64(len(s.tail)) > s.off {
		return false
	}
	b := scratch[:len(s.head)]
	if n, _ := s.f.ReadAt(b, 0); n != len(b) || !bytes.Equal(b, s.head) {
		return false
	}
	b = scratch[:len(s.tail)]
	if n, _ := s.f.ReadAt(b, s.off-int64(len(b))); n != len(b) || !bytes.Equal(b, s.tail) {
		return false
	}
	return true
}

// lastLinesOffset returns where the last n lines of f (size bytes) start,
// reading 64 KiB blocks backwards from the end. A final line without a
// newline counts as a line, as in GNU tail.
func lastLinesOffset(f *os.File, size int64, n int, buf []byte) int64 {
	if n <= 0 {
		return size
	}
	count := 0
	pos := size
	for pos > 0 {
		start := max(0, pos-int64(len(buf)))
		b := buf[:pos-start]
		k, err := f.ReadAt(b, start)
		if k < len(b) {
			if err != nil && !errors.Is(err, io.EOF) {
				return 0
			}
			return 0 // shrank meanwhile: start from the beginning
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != '\n' || start+int64(i) == size-1 {
				continue // the final newline ends the last line, it does not start one
			}
			if count++; count == n {
				return start + int64(i) + 1
			}
		}
		pos = start
	}
	return 0
}
