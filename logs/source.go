package logs

import (
	"bytes"
	"errors"
	"os"
	"syscall"
	"time"
)

// sampleLen is how many bytes of the head and of the tail of what was read
// are kept to notice a rewrite that did not shrink the file.
const sampleLen = 64

// source is one followed name and the file currently open under it.
type source struct {
	name  string // as given: messages and JSON
	path  string // absolute, cleaned
	label string // prefix when following several files
	index int    // colour of the prefix

	f    *os.File  // the file at the name (nil: none yet, or it was deleted)
	st   fileState // of f at the last look
	off  int64     // bytes of f consumed
	head []byte    // the file's first bytes (up to sampleLen), as read
	tail []byte    // the sampleLen bytes before off, as read
	part lineBuf   // the bytes after the last newline of f

	gone    bool   // the name was reported inaccessible
	lastErr string // the open error last reported, to report it once
	retired []*oldFile
}

// oldFile is a file that was at the name before: drained until it is deleted
// or quiet for retireGrace, for writers that have not reopened yet.
type oldFile struct {
	f     *os.File
	off   int64
	part  lineBuf
	grown time.Time // last time it had new data
}

// lineBuf holds a partial line, cut at max bytes.
type lineBuf struct {
	buf []byte
	cut bool
}

func (lb *lineBuf) add(p []byte, max int) {
	if lb.cut {
		return
	}
	if room := max - len(lb.buf); len(p) > room {
		lb.buf = append(lb.buf, p[:room]...)
		lb.cut = true
		return
	}
	lb.buf = append(lb.buf, p...)
}

func (lb *lineBuf) empty() bool { return len(lb.buf) == 0 && !lb.cut }

func (lb *lineBuf) reset() {
	if cap(lb.buf) > 64<<10 {
		lb.buf = nil // do not keep a 1 MiB buffer around
	}
	lb.buf, lb.cut = lb.buf[:0], false
}

// consume splits data into lines, holding the bytes after the last newline.
func (fl *Follower) consume(s *source, lb *lineBuf, data []byte) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			lb.add(data, fl.opts.MaxLine)
			return
		}
		if lb.empty() && i <= fl.opts.MaxLine {
			fl.emit(s, data[:i], false)
		} else {
			lb.add(data[:i], fl.opts.MaxLine)
			fl.emit(s, lb.buf, lb.cut)
			lb.reset()
		}
		data = data[i+1:]
	}
}

// flushPart prints a held partial line (the file it belongs to is left).
func (fl *Follower) flushPart(s *source, lb *lineBuf) {
	if !lb.empty() {
		fl.emit(s, lb.buf, lb.cut)
		lb.reset()
	}
}

// drain reads f from *off to its end (or readBudget) and returns the bytes
// read; rec keeps s's head/tail samples up to date.
func (fl *Follower) drain(s *source, f *os.File, off *int64, lb *lineBuf, rec bool) int64 {
	var total int64
	for {
		n, err := f.ReadAt(fl.buf, *off)
		if n > 0 {
			if rec {
				s.record(fl.buf[:n], *off)
			}
			*off += int64(n)
			total += int64(n)
			fl.consume(s, lb, fl.buf[:n])
		}
		if err != nil || n == 0 {
			return total
		}
		if total >= readBudget {
			fl.more = true
			return total
		}
	}
}

// sync brings s up to date: new data of the open file, then what is at the
// name now, then the retired files.
func (fl *Follower) sync(s *source) {
	if s.f != nil {
		fl.follow(s)
	}
	fl.checkName(s)
	now := time.Now()
	kept := s.retired[:0]
	for _, o := range s.retired {
		if fl.drain(s, o.f, &o.off, &o.part, false) > 0 {
			o.grown = now
		}
		fi, err := o.f.Stat()
		if err == nil && stateOf(fi).nlink > 0 && now.Sub(o.grown) < max(retireGrace, 2*fl.opts.Poll) {
			kept = append(kept, o)
			continue
		}
		fl.flushPart(s, &o.part)
		o.f.Close()
	}
	clear(s.retired[len(kept):])
	s.retired = kept
}

// follow reads new data of the open file, first checking that what was read
// is still there (else the file was truncated or rewritten: read from 0).
func (fl *Follower) follow(s *source) {
	fi, err := s.f.Stat()
	if err != nil {
		fl.notice("'%s' has become inaccessible: %v", s.name, unwrap(err))
		fl.retire(s)
		s.gone = true
		return
	}
	// A shrunk file was truncated; a file whose first or last bytes read
	// changed was rewritten (maybe to the same size, within one mtime tick).
	// Two 64-byte preads per wake-up are cheaper than trusting mtime.
	st := stateOf(fi)
	if st.size < s.off || !s.intact(fl.scratch) {
		fl.truncated(s)
	}
	s.st = st
	fl.drain(s, s.f, &s.off, &s.part, true)
}

func (fl *Follower) truncated(s *source) {
	fl.notice("%s: file truncated", s.name)
	fl.flushPart(s, &s.part)
	s.off, s.head, s.tail = 0, s.head[:0], s.tail[:0]
}

// retire moves the open file of s to its retired list.
func (fl *Follower) retire(s *source) {
	o := &oldFile{f: s.f, off: s.off, part: s.part, grown: time.Now()}
	s.retired = append(s.retired, o)
	s.f, s.part = nil, lineBuf{}
}

// start opens s at the beginning: the last Lines lines, or from byte 0.
func (fl *Follower) start(s *source) {
	f, st, err := openFile(s.path)
	if err != nil {
		s.lastErr = err.Error()
		fl.notice("cannot open '%s' for reading: %v", s.name, unwrap(err))
		return
	}
	s.f, s.st = f, st
	if !fl.opts.FromStart {
		s.off = lastLinesOffset(f, st.size, fl.opts.Lines, fl.buf)
		s.resample()
	}
	fl.drain(s, s.f, &s.off, &s.part, true)
}

// checkName looks at what is at s's name now and switches to it when it is
// another file: the old one is drained first, then the new one read from 0.
func (fl *Follower) checkName(s *source) {
	fi, err := os.Stat(s.path)
	if err != nil {
		if s.f != nil && !s.gone {
			fl.notice("'%s' has become inaccessible: %v", s.name, unwrap(err))
			s.gone = true
		}
		if s.f != nil && s.st.nlink == 0 {
			fl.retire(s) // deleted: nothing can reappear in it under a name
		}
		return
	}
	st := stateOf(fi)
	if s.f != nil && st.id == s.st.id {
		s.gone = false
		return
	}
	f, nst, err := openFile(s.path)
	if err != nil {
		if err.Error() != s.lastErr {
			s.lastErr = err.Error()
			fl.notice("cannot open '%s' for reading: %v", s.name, unwrap(err))
		}
		if s.f != nil {
			s.gone = true // the name holds something we cannot follow
			if s.st.nlink == 0 {
				fl.retire(s)
			}
		}
		return
	}
	s.lastErr = ""
	switch {
	case s.f != nil:
		fl.drain(s, s.f, &s.off, &s.part, false)
		if s.gone {
			fl.notice("'%s' has appeared; following new file", s.name)
		} else {
			fl.notice("'%s' has been replaced; following new file", s.name)
		}
		fl.retire(s)
	default:
		fl.notice("'%s' has appeared; following new file", s.name)
	}
	s.f, s.st, s.off, s.gone = f, nst, 0, false
	s.head, s.tail = s.head[:0], s.tail[:0]
	fl.drain(s, s.f, &s.off, &s.part, true)
}

// notRegularError is what a name holds when it is not a regular file: a
// FIFO, a device, a socket, a directory. tail-logs follows only regular
// files: reading a FIFO or a device would block, past Ctrl-C.
type notRegularError struct{ kind string }

func (e *notRegularError) Error() string { return "it is " + e.kind + ", not a regular file" }

// fileKind names what a non-regular file is, for messages.
func fileKind(m os.FileMode) string {
	switch {
	case m&os.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m.IsDir():
		return "a directory"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "a special file"
}

// openFile opens a regular file for reading and stats it. The open itself
// never blocks: O_NONBLOCK makes opening a FIFO without a writer return at
// once (it is then refused), where a plain open would wait for a writer
// with no way for Ctrl-C to end it. On a regular file O_NONBLOCK changes
// nothing.
func openFile(path string) (*os.File, fileState, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fileState{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fileState{}, err
	}
	st := stateOf(fi)
	if !st.reg {
		f.Close()
		return nil, fileState{}, &os.PathError{Op: "open", Path: path, Err: &notRegularError{fileKind(fi.Mode())}}
	}
	return f, st, nil
}

// unwrap drops the "open /path:" of a *PathError: the message names the file.
func unwrap(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
