package logs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Defaults of FollowOptions.
const (
	DefaultPoll  = time.Second // the safety poll
	MaxLineBytes = 1 << 20     // longer lines are cut (CutMarker)
	retireGrace  = 2 * time.Second
	readBudget   = 64 << 20 // bytes read per file per wake-up before yielding
)

// FollowOptions configure a Follower.
type FollowOptions struct {
	Files     []string      // the names to follow (they may not exist yet)
	Lines     int           // print the last Lines lines of each existing file first
	FromStart bool          // print existing files from byte 0 instead
	Poll      time.Duration // safety poll interval; 0 means DefaultPoll
	MaxLine   int           // bytes; 0 means MaxLineBytes
	Print     PrintOptions
	// Notice prefixes the messages on errOut; "" means "tail-logs".
	Notice string
}

// newWatcher is fsnotify.NewWatcher; tests replace it to make it fail.
var newWatcher = fsnotify.NewWatcher

// Follower follows files like GNU `tail -F`: by name, across creation,
// truncation, deletion, rotation and atomic replacement (docs/logs.md). It
// owns one fsnotify watcher, created and closed by Run.
type Follower struct {
	opts    FollowOptions
	out     *bufio.Writer
	errOut  io.Writer
	pr      *printer
	srcs    []*source
	dirs    map[string]fileID // parent dirs; zero id: not watched yet
	buf     []byte            // read buffer (one goroutine uses it)
	scratch []byte
	more    bool // a read stopped at readBudget: look again soon
	err     error
	ran     bool
	ready   chan struct{}
}

// NewFollower checks opts; lines go to out and notices to errOut.
func NewFollower(opts FollowOptions, out, errOut io.Writer) (*Follower, error) {
	if len(opts.Files) == 0 {
		return nil, errors.New("no file to follow")
	}
	if opts.Lines < 0 {
		return nil, fmt.Errorf("lines must be ≥ 0, not %d", opts.Lines)
	}
	if opts.Poll <= 0 {
		opts.Poll = DefaultPoll
	}
	if opts.MaxLine <= 0 {
		opts.MaxLine = MaxLineBytes
	}
	if opts.Notice == "" {
		opts.Notice = "tail-logs"
	}
	fl := &Follower{opts: opts, out: bufio.NewWriterSize(out, 64<<10), errOut: errOut,
		dirs: map[string]fileID{}, ready: make(chan struct{}), buf: make([]byte, 64<<10), scratch: make([]byte, sampleLen)}
	seen := map[string]bool{}
	bases := map[string]int{}
	for _, name := range opts.Files {
		abs, err := filepath.Abs(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if seen[abs] {
			continue
		}
		seen[abs] = true
		if fi, err := os.Stat(abs); err == nil && !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s is %s, not a regular file; tail-logs follows log files only", name, fileKind(fi.Mode()))
		}
		fl.srcs = append(fl.srcs, &source{name: name, path: abs, index: len(fl.srcs)})
		bases[filepath.Base(abs)]++
		fl.dirs[filepath.Dir(abs)] = fileID{}
	}
	for _, s := range fl.srcs {
		s.label = filepath.Base(s.path)
		if bases[s.label] > 1 {
			s.label = s.name
		}
	}
	fl.pr = newPrinter(opts.Print, fl.out, len(fl.srcs) > 1 && !opts.Print.JSON)
	return fl, nil
}

// Run follows until ctx is done, then prints held partial lines, closes
// every file and the watcher and returns ctx.Err(). It returns earlier only
// when writing to out fails. Run may be called once.
func (fl *Follower) Run(ctx context.Context) error {
	if fl.ran {
		return errors.New("follower: Run called twice")
	}
	fl.ran = true
	wake := make(chan struct{}, 1)
	errs := make(chan error, 4)
	w, err := newWatcher()
	if err != nil {
		// E.g. the inotify instance limit (fs.inotify.max_user_instances).
		fl.notice("cannot watch for changes (%v); looking every %v", err, fl.opts.Poll)
	} else {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); pump(w, wake, errs) }() // the reader runs before Add
		defer func() {
			w.Close()
			wg.Wait()
		}()
	}
	defer fl.closeAll()

	fl.watchDirs(w)
	for _, s := range fl.srcs {
		fl.start(s)
	}
	if err := fl.flush(); err != nil {
		return err
	}
	close(fl.ready)
	tick := time.NewTicker(fl.opts.Poll)
	defer tick.Stop()
	for {
		if err := fl.flush(); err != nil {
			return err
		}
		if fl.more {
			fl.more = false
			poke(wake)
		}
		select {
		case <-ctx.Done():
			fl.syncAll()
			if err := fl.flush(); err != nil {
				return err
			}
			return ctx.Err() // closeAll prints the held partial lines
		case <-wake:
			fl.syncAll()
		case <-tick.C:
			fl.watchDirs(w)
			fl.syncAll()
		case err := <-errs:
			fl.notice("watching: %v", err)
			fl.syncAll()
		}
	}
}

// Ready is closed once Run watches the directories and has printed the
// files' starting lines: from then on every write is seen.
func (fl *Follower) Ready() <-chan struct{} { return fl.ready }

// pump turns watcher events into wake-ups (coalesced: one pending wake-up
// stands for any number of events) until the watcher is closed.
func pump(w *fsnotify.Watcher, wake chan<- struct{}, errs chan<- error) {
	for {
		select {
		case _, ok := <-w.Events:
			if !ok {
				return
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				select {
				case errs <- err:
				default:
				}
			}
		}
		poke(wake)
	}
}

func poke(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// watchDirs adds watches on parent dirs not watched yet, or replaced since
// (removed and created again, renamed away): a missing dir is retried on the
// next poll and its files are looked at by the poll meanwhile.
func (fl *Follower) watchDirs(w *fsnotify.Watcher) {
	if w == nil {
		return // polling only
	}
	for dir, id := range fl.dirs {
		fi, err := os.Stat(dir)
		if err != nil {
			fl.dirs[dir] = fileID{}
			continue
		}
		now := statID(fi)
		if id == now {
			continue
		}
		_ = w.Remove(dir) // the old watch, if fsnotify still has one
		if err := w.Add(dir); err == nil {
			fl.dirs[dir] = now
		}
	}
}

func (fl *Follower) flush() error {
	if fl.err != nil {
		return fl.err
	}
	if err := fl.out.Flush(); err != nil {
		fl.err = err
	}
	return fl.err
}

func (fl *Follower) notice(format string, args ...any) {
	_ = fl.out.Flush()
	fmt.Fprintf(fl.errOut, fl.opts.Notice+": "+format+"\n", args...)
}

// emit prints one complete line of s.
func (fl *Follower) emit(s *source, raw []byte, cut bool) {
	if fl.err == nil {
		if err := fl.pr.print(s, raw, cut); err != nil {
			fl.err = err
		}
	}
}

func (fl *Follower) syncAll() {
	for _, s := range fl.srcs {
		fl.sync(s)
	}
}

// closeAll prints the held partial lines and closes every file.
func (fl *Follower) closeAll() {
	for _, s := range fl.srcs {
		for _, o := range s.retired {
			fl.flushPart(s, &o.part)
			o.f.Close()
		}
		s.retired = nil
		if s.f != nil {
			fl.flushPart(s, &s.part)
			s.f.Close()
			s.f = nil
		}
	}
	_ = fl.flush()
}
