package steps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrBusy is returned with --no-wait when another run holds the build dir.
type ErrBusy struct {
	Dir    string
	Holder string // what the holder wrote: "pid 123: orchard rebuild"
}

func (e *ErrBusy) Error() string {
	h := e.Holder
	if h == "" {
		h = "another orchard run"
	}
	return fmt.Sprintf("build dir %s is in use by %s; wait for it, or drop --no-wait to wait automatically", e.Dir, h)
}

// lockName is the lock file inside the build dir.
const lockName = ".orchard.lock"

// Lock takes an exclusive flock on dir/.orchard.lock so two runs never
// interleave in one build dir. With noWait it fails at once with *ErrBusy;
// otherwise it calls waiting (once) with the holder's description and polls
// until the lock is free or ctx ends. The lock is released by the returned
// function, or by the kernel when the process dies.
func Lock(ctx context.Context, dir, who string, noWait bool, waiting func(holder string)) (release func(), err error) {
	f, err := openLock(dir)
	if err != nil {
		return nil, err
	}
	path := f.Name()
	told := false
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, buildDirError(dir, fmt.Sprintf("cannot lock %s: %v", path, err),
				"use a --build-dir on a local file system that supports locks (flock)")
		}
		holder := readHolder(path)
		for i := 0; holder == "" && i < 10; i++ {
			// The holder writes its name just after locking: give it a moment.
			time.Sleep(20 * time.Millisecond)
			holder = readHolder(path)
		}
		if noWait {
			f.Close()
			return nil, &ErrBusy{Dir: dir, Holder: holder}
		}
		if !told && waiting != nil {
			waiting(holder)
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	// Say who holds it, for the next run's message.
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("pid %d: %s\n", os.Getpid(), who)), 0)
	return func() {
		_ = f.Truncate(0)
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}

func readHolder(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// buildDirError is a build dir orchard cannot use: a failure before the
// first step, of the environment (exit 3), with the path and the fix.
func buildDirError(dir, evidence, fix string) *PreflightError {
	return Preflight("build-dir", "Build directory", fix, true, evidence)
}

// openLock checks that dir can be orchard's build dir (creating it when
// missing) and opens its lock file. It changes nothing that is not
// orchard's: a file where the dir should be, an unwritable dir, or a lock
// path that is not a regular file (a directory, a symlink, a FIFO) is
// reported as a *PreflightError and left as it is.
func openLock(dir string) (*os.File, error) {
	otherDir := "pass --build-dir DIR naming another directory"
	switch st, err := os.Stat(dir); {
	case err == nil && !st.IsDir():
		return nil, buildDirError(dir, dir+" is a "+fileKind(st.Mode())+", not a directory",
			otherDir+"; orchard leaves "+dir+" as it is")
	case errors.Is(err, unix.ENOTDIR):
		return nil, buildDirError(dir, "cannot create "+dir+": a parent of it is a file, not a directory", otherDir)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return nil, buildDirError(dir, "cannot use "+dir+": "+reason(err), otherDir)
	case err != nil:
		if err := os.MkdirAll(dir, 0o755); err != nil {
			if errors.Is(err, unix.ENOTDIR) {
				return nil, buildDirError(dir, "cannot create "+dir+": a parent of it is a file, not a directory", otherDir)
			}
			return nil, buildDirError(dir, "cannot create "+dir+": "+reason(err),
				otherDir+", in a place you can write to")
		}
	}
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return nil, buildDirError(dir, "cannot write in "+dir+": "+reason(err),
			"make "+dir+" writable by you (chmod u+w, or chown), or "+otherDir)
	}
	path := filepath.Join(dir, lockName)
	notFile := func(kind string) error {
		return buildDirError(dir, path+" is a "+kind+", not orchard's lock file",
			"move "+path+" out of the way if it is not orchard's, or "+otherDir)
	}
	if st, err := os.Lstat(path); err == nil && !st.Mode().IsRegular() {
		return nil, notFile(fileKind(st.Mode()))
	}
	// O_NOFOLLOW and O_NONBLOCK: a symlink or FIFO swapped in after the
	// check is refused, not followed or waited on.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0o644)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, notFile("symlink")
		}
		return nil, buildDirError(dir, "cannot open the lock file "+path+": "+reason(err),
			"make "+dir+" writable by you, or "+otherDir)
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		if err != nil {
			return nil, buildDirError(dir, "cannot check the lock file "+path+": "+reason(err), otherDir)
		}
		return nil, notFile(fileKind(st.Mode()))
	}
	return f, nil
}

// fileKind names a file's type for people.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsRegular():
		return "file"
	case m.IsDir():
		return "directory"
	case m&os.ModeSymlink != 0:
		return "symlink"
	case m&os.ModeNamedPipe != 0:
		return "FIFO"
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// reason is the system's reason without the operation and path that the
// evidence already says ("permission denied", "read-only file system").
func reason(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
