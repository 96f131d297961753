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
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("build dir: %w", err)
	}
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	told := false
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
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
