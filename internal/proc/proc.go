// Package proc runs child processes the way orchard needs them: always an
// argument vector; in a process group of its own, killed as a whole on
// timeout or cancellation; with a parent-death signal on Linux, so a killed
// orchard leaves no child running; never waiting long on a pipe that a
// grandchild still holds; and, on failure, an *Error that says how the child
// ended (exit status, or the signal and whether it dumped core, or the
// timeout) with the last lines of its output.
package proc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Cmd is one child process.
type Cmd struct {
	Args []string
	Dir  string
	// Env is added to os.Environ() (KEY=VALUE; a later value wins).
	Env []string
	// Timeout bounds the child (0: only ctx does). On expiry the whole
	// process group is killed.
	Timeout time.Duration
	// Stdout, when set, receives stdout on its own; otherwise stdout is
	// merged with stderr into the lines below.
	Stdout io.Writer
	// Output receives every line of stderr (and of stdout when Stdout is
	// nil), as it comes. May be nil.
	Output io.Writer
	// OnLine sees each of those lines, e.g. to report progress.
	OnLine func(line string)
}

// TailLines is how many of the last output lines an *Error keeps.
const TailLines = 40

// WaitDelay bounds how long Run waits, once the child has exited or been
// killed, for pipes that a grandchild (outside the group) still holds.
const WaitDelay = 2 * time.Second

// Error is a child that failed.
type Error struct {
	Args []string
	// ExitCode is the exit status, or -1 when the child was killed by a
	// signal, timed out or never started.
	ExitCode int
	// Signal names the signal that ended the child ("SIGSEGV"), if one did.
	Signal string
	// Core: the child dumped core.
	Core bool
	// TimedOut is the timeout that expired (0: it did not).
	TimedOut time.Duration
	// Tail is the last TailLines lines of the child's output (stderr, and
	// stdout when it was merged).
	Tail []string
	Err  error
}

func (e *Error) Error() string {
	name := filepath.Base(e.Args[0])
	switch {
	case e.TimedOut > 0:
		return fmt.Sprintf("%s timed out after %s and was killed", name, e.TimedOut)
	case e.Signal != "":
		s := fmt.Sprintf("%s was killed by %s (%s)", name, e.Signal, signalText(e.Signal))
		if e.Core {
			s += ", core dumped"
		}
		return s
	case e.ExitCode >= 0:
		return fmt.Sprintf("%s exited with status %d", name, e.ExitCode)
	}
	return fmt.Sprintf("%s: %v", name, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Crashed reports whether the child was ended by a signal it did not get
// from us (a crash: SIGSEGV, SIGABRT, SIGBUS, ...), not by a timeout.
func (e *Error) Crashed() bool { return e.Signal != "" && e.TimedOut == 0 }

// LastLine is the last non-empty line of the child's output ("" if none):
// for orchard's runner, its own error message.
func (e *Error) LastLine() string {
	for i := len(e.Tail) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(e.Tail[i]); l != "" {
			return l
		}
	}
	return ""
}

func signalText(name string) string {
	if s := unix.SignalNum(name); s != 0 {
		return s.String()
	}
	return "signal"
}

// Run runs c to completion. On cancellation of ctx it returns ctx.Err()
// (the caller interrupted; not the child's fault); every other failure is
// an *Error.
func Run(ctx context.Context, c Cmd) error {
	if len(c.Args) == 0 {
		return errors.New("exec: empty command")
	}
	cctx, cancel := ctx, context.CancelFunc(func() {})
	if c.Timeout > 0 {
		cctx, cancel = context.WithTimeout(ctx, c.Timeout)
	}
	defer cancel()

	cmd := exec.CommandContext(cctx, c.Args[0], c.Args[1:]...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error {
		// The child leads its own process group: kill the group.
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		return nil
	}
	cmd.WaitDelay = WaitDelay

	pr, pw := io.Pipe()
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
	} else {
		cmd.Stdout = pw
	}
	cmd.Stderr = pw

	var (
		mu   sync.Mutex
		tail []string
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			line := sc.Text()
			if c.Output != nil {
				fmt.Fprintln(c.Output, line)
			}
			mu.Lock()
			tail = append(tail, line)
			if len(tail) > TailLines {
				tail = tail[1:]
			}
			mu.Unlock()
			if c.OnLine != nil {
				c.OnLine(line)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()

	err := start(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	pw.Close()
	wg.Wait()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	pe := &Error{Args: c.Args, ExitCode: -1, Err: err, Tail: tail}
	if errors.Is(cctx.Err(), context.DeadlineExceeded) {
		pe.TimedOut = c.Timeout
		return pe
	}
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		pe.ExitCode = xe.ExitCode()
		if ws, ok := xe.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			pe.Signal = unix.SignalName(ws.Signal())
			if pe.Signal == "" {
				pe.Signal = fmt.Sprintf("signal %d", int(ws.Signal()))
			}
			pe.Core = ws.CoreDump()
		}
	}
	return pe
}
