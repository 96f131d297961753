package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// syncBuf is an io.Writer the test reads while the Follower writes.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines returns the complete lines written so far.
func (s *syncBuf) lines() []string {
	str := s.String()
	if i := strings.LastIndexByte(str, '\n'); i >= 0 {
		return strings.Split(str[:i], "\n")
	}
	return nil
}

type following struct {
	out, errOut *syncBuf
	cancel      context.CancelFunc
	done        chan error
}

// eventsOnly is a safety poll long enough that a test passing with it shows
// the fsnotify events did the work.
const eventsOnly = time.Hour

func startFollowing(t *testing.T, opts FollowOptions) *following {
	t.Helper()
	if opts.Poll == 0 {
		opts.Poll = eventsOnly
	}
	r := &following{out: &syncBuf{}, errOut: &syncBuf{}, done: make(chan error, 1)}
	fl, err := NewFollower(opts, r.out, r.errOut)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- fl.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	select {
	case <-fl.Ready():
	case err := <-r.done:
		t.Fatalf("Run = %v before it was ready", err)
	}
	return r
}

// stop cancels and waits for Run; it returns Run's error.
func (r *following) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // stop may be called again (cleanup)
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
		return nil
	}
}

// waitFor polls cond until it holds, failing after a deadline.
func waitFor(t *testing.T, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (r *following) waitLines(t *testing.T, want ...string) {
	t.Helper()
	waitFor(t, func() string { return fmt.Sprintf("output %q (have %q, notices %q)", want, r.out, r.errOut) },
		func() bool { return strings.Join(r.out.lines(), "\n") == strings.Join(want, "\n") })
}

func (r *following) waitNotice(t *testing.T, substr string) {
	t.Helper()
	waitFor(t, func() string { return "notice " + substr + ", have " + r.errOut.String() }, func() bool { return strings.Contains(r.errOut.String(), substr) })
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestFollowAbsentThenCreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	r := startFollowing(t, FollowOptions{Files: []string{path}, Lines: 10})
	r.waitNotice(t, "cannot open '"+path+"' for reading: no such file or directory")
	appendTo(t, path, "one\n")
	r.waitLines(t, "one")
	r.waitNotice(t, "'"+path+"' has appeared; following new file")
}

func TestFollowLastLinesThenNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	var b strings.Builder
	for i := range 100 {
		fmt.Fprintf(&b, "old %d\n", i)
	}
	b.WriteString("unterminated")
	writeFile(t, path, b.String())
	r := startFollowing(t, FollowOptions{Files: []string{path}, Lines: 3})
	r.waitLines(t, "old 98", "old 99")
	appendTo(t, path, " now\nnext\n")
	r.waitLines(t, "old 98", "old 99", "unterminated now", "next")
}

func TestFollowPartialLineHeldAndPrintedOnExit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	writeFile(t, path, "")
	r := startFollowing(t, FollowOptions{Files: []string{path}})
	appendTo(t, path, "first half ")
	appendTo(t, path, "x\nsecond ")
	r.waitLines(t, "first half x")
	appendTo(t, path, "pending")
	// Show the held bytes are not printed before the newline: a later
	// complete line of another file would otherwise come after them.
	time.Sleep(50 * time.Millisecond)
	if got := r.out.String(); got != "first half x\n" {
		t.Fatalf("partial line printed early: %q", got)
	}
	if err := r.stop(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if got := r.out.String(); got != "first half x\nsecond pending\n" {
		t.Fatalf("on exit: %q", got)
	}
}

func TestFollowTruncateAndSameSizeRewrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	writeFile(t, path, "aaaa\nbbbb\n")
	r := startFollowing(t, FollowOptions{Files: []string{path}, Lines: 10})
	r.waitLines(t, "aaaa", "bbbb")
	writeFile(t, path, "") // O_TRUNC
	appendTo(t, path, "cc\n")
	r.waitLines(t, "aaaa", "bbbb", "cc")
	r.waitNotice(t, path+": file truncated")
	// Same size, other bytes, one write: only the content tells.
	writeFile(t, path, "dd\n")
	r.waitLines(t, "aaaa", "bbbb", "cc", "dd")
	if n := strings.Count(r.errOut.String(), "file truncated"); n != 2 {
		t.Errorf("%d truncation notices, want 2:\n%s", n, r.errOut)
	}
}

func TestFollowDeleteRecreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	writeFile(t, path, "")
	r := startFollowing(t, FollowOptions{Files: []string{path}})
	appendTo(t, path, "before\n")
	r.waitLines(t, "before")
	os.Remove(path)
	r.waitNotice(t, "has become inaccessible")
	appendTo(t, path, "after\n")
	r.waitLines(t, "before", "after")
	r.waitNotice(t, "has appeared; following new file")
}

func TestFollowRenameRotationDrainsOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	writeFile(t, path, "")
	r := startFollowing(t, FollowOptions{Files: []string{path}})
	old, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	old.WriteString("1\n")
	r.waitLines(t, "1")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	old.WriteString("2\n") // the writer has not reopened yet
	writeFile(t, path, "3\n")
	old.WriteString("4\n") // … and still has not: the old file is retired, not dropped
	waitFor(t, func() string { return fmt.Sprintf("1 to 4 once, have %q", r.out) }, func() bool {
		got := r.out.lines()
		slices.Sort(got)
		return slices.Equal(got, []string{"1", "2", "3", "4"})
	})
	// The old file is drained before the new one is read; "4" may come on
	// either side of "3" (it was written after the new file appeared).
	if got := r.out.lines(); slices.Index(got, "2") > slices.Index(got, "3") {
		t.Errorf("old file not drained first: %q", got)
	}
}

func TestFollowAtomicReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "k.log")
	writeFile(t, path, "a\n")
	r := startFollowing(t, FollowOptions{Files: []string{path}, Lines: 10})
	r.waitLines(t, "a")
	tmp := filepath.Join(dir, ".k.tmp")
	writeFile(t, tmp, "a\nb\n")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	r.waitLines(t, "a", "a", "b")
	r.waitNotice(t, "'"+path+"' has been replaced; following new file")
}

func TestFollowLongLineAndInvalidUTF8(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	writeFile(t, path, "")
	r := startFollowing(t, FollowOptions{Files: []string{path}, MaxLine: 10,
		Print: PrintOptions{Include: []*regexp.Regexp{regexp.MustCompile("\uFFFD|^0123")}}})
	appendTo(t, path, "0123456789abcdef\nok\xff\xfeok\nskipped\n")
	r.waitLines(t, "0123456789"+CutMarker, "ok\uFFFDok")
}

func TestFollowFiltersHighlightAndColor(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	writeFile(t, a, "")
	writeFile(t, b, "")
	r := startFollowing(t, FollowOptions{Files: []string{a, b}, Print: PrintOptions{
		Include:   []*regexp.Regexp{regexp.MustCompile(`FWD|ERROR`)},
		Exclude:   []*regexp.Regexp{regexp.MustCompile(`call=2`)},
		Highlight: []*regexp.Regexp{regexp.MustCompile(`run=\S+`)},
		Color:     true,
	}})
	appendTo(t, a, "[t] FWD call=1 run=x\n[t] FWD call=2 run=x\n[t] BWD call=1\n")
	appendTo(t, b, "[t] ERROR msg=boom\n")
	// Files interleave as their lines come: compare as a set.
	want := []string{
		"\x1b[92ma.log:\x1b[0m \x1b[36m[t] FWD\x1b[0m call=1 \x1b[7mrun=x\x1b[0m",
		"\x1b[94mb.log:\x1b[0m \x1b[1;31m[t] ERROR msg=boom\x1b[0m",
	}
	waitFor(t, func() string { return fmt.Sprintf("lines %q, have %q", want, r.out) }, func() bool {
		got := r.out.lines()
		slices.Sort(got)
		return slices.Equal(got, want)
	})
}

func TestFollowJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	writeFile(t, path, "")
	r := startFollowing(t, FollowOptions{Files: []string{path}, Print: PrintOptions{JSON: true}})
	appendTo(t, path, "[flashattn.emu] FWD call=1 shape=1x2x3x4x5 run=r\nnot a log line <&>\n")
	r.waitLines(t,
		`{"file":"`+path+`","line":"[flashattn.emu] FWD call=1 shape=1x2x3x4x5 run=r","parsed":{"tag":"flashattn.emu","word":"FWD","call":1,"run":"r","shape":[1,2,3,4,5]}}`,
		`{"file":"`+path+`","line":"not a log line <&>","parse_error":"log line: col 1: does not start with [tag]"}`)
}

func TestFollowMissingDirectoryIsPolled(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	path := filepath.Join(dir, "k.log")
	r := startFollowing(t, FollowOptions{Files: []string{path}, Poll: 20 * time.Millisecond})
	os.Mkdir(dir, 0o700)
	appendTo(t, path, "x\n")
	r.waitLines(t, "x")
	appendTo(t, path, "y\n")
	r.waitLines(t, "x", "y")
	// Removed and created again: watched again.
	os.RemoveAll(dir)
	os.Mkdir(dir, 0o700)
	appendTo(t, path, "z\n")
	r.waitLines(t, "x", "y", "z")
}

func TestFollowersAreIndependentAndLeakNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	writeFile(t, path, "")
	before := runtime.NumGoroutine()
	r1 := startFollowing(t, FollowOptions{Files: []string{path}})
	r2 := startFollowing(t, FollowOptions{Files: []string{path}})
	appendTo(t, path, "1\n")
	r1.waitLines(t, "1")
	r2.waitLines(t, "1")
	r1.stop(t)
	appendTo(t, path, "2\n")
	r2.waitLines(t, "1", "2")
	r2.stop(t)
	waitFor(t, func() string { return "goroutines to end" }, func() bool { return runtime.NumGoroutine() <= before })
}

func TestNewFollowerRejects(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string]FollowOptions{
		"no files":  {},
		"directory": {Files: []string{dir}},
		"fifo":      {Files: []string{"ok.log", fifo}},
		"device":    {Files: []string{"/dev/null"}},
		"negative":  {Files: []string{"x"}, Lines: -1},
	} {
		if _, err := NewFollower(opts, &syncBuf{}, &syncBuf{}); err == nil {
			t.Errorf("%s: NewFollower accepted %+v", name, opts)
		}
	}
}

func TestLastLinesOffset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	buf := make([]byte, 4) // tiny blocks exercise the block boundaries
	for _, tt := range []struct {
		content string
		n       int
		want    string
	}{
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\nb\nc\n", 5, "a\nb\nc\n"},
		{"a\nb\nc\n", 0, ""},
		{"\n\n\n", 2, "\n\n"},
		{"", 3, ""},
		{"long line here\nx\n", 1, "x\n"},
	} {
		writeFile(t, path, tt.content)
		f, _ := os.Open(path)
		off := lastLinesOffset(f, int64(len(tt.content)), tt.n, buf)
		f.Close()
		if got := tt.content[off:]; got != tt.want {
			t.Errorf("last %d of %q = %q, want %q", tt.n, tt.content, got, tt.want)
		}
	}
}

// rchar is the bytes this process has read through read(2)/pread(2).
func rchar(t *testing.T) int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skip("no /proc/self/io:", err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "rchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Skip("no rchar in /proc/self/io")
	return 0
}

func TestFollowLastLinesOfA2GBFileReadsOnlyItsEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// 2 GiB of hole (no disk used), then lines.
	if err := f.Truncate(2 << 30); err != nil {
		t.Skip("no sparse files here:", err)
	}
	f.Seek(0, io.SeekEnd)
	for i := range 1000 {
		fmt.Fprintf(f, "line %d\n", i)
	}
	f.Close()
	before := rchar(t)
	start := time.Now()
	r := startFollowing(t, FollowOptions{Files: []string{path}, Lines: 3})
	r.waitLines(t, "line 997", "line 998", "line 999")
	read := rchar(t) - before
	t.Logf("started on a 2 GiB file in %v, reading %d bytes", time.Since(start), read)
	if read > 1<<20 {
		t.Errorf("read %d bytes to print the last 3 lines of a 2 GiB file", read)
	}
}

func TestFollowNameBecomesADirectoryAndBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	writeFile(t, path, "a\n")
	r := startFollowing(t, FollowOptions{Files: []string{path}, Lines: 10})
	r.waitLines(t, "a")
	os.Remove(path)
	os.Mkdir(path, 0o700)
	r.waitNotice(t, "cannot open '"+path+"' for reading: it is a directory, not a regular file")
	os.Remove(path)
	appendTo(t, path, "b\n")
	r.waitLines(t, "a", "b")
	r.waitNotice(t, "has appeared; following new file")
}

func TestFollowWithoutWatcherPolls(t *testing.T) {
	defer func(orig func() (*fsnotify.Watcher, error)) { newWatcher = orig }(newWatcher)
	newWatcher = func() (*fsnotify.Watcher, error) { return nil, errors.New("too many open files") }
	path := filepath.Join(t.TempDir(), "k.log")
	r := startFollowing(t, FollowOptions{Files: []string{path}, Poll: 10 * time.Millisecond})
	r.waitNotice(t, "tail-logs: cannot watch for changes (too many open files); looking every 10ms")
	appendTo(t, path, "polled\n")
	r.waitLines(t, "polled")
}
