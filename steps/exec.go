package steps

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Cmd is one child process a step runs: always an argument vector, never a
// shell string built from paths.
type Cmd struct {
	Args []string
	Dir  string
	// Env is added to the engine's environment (KEY=VALUE).
	Env []string
	// Timeout bounds the child; 0 uses the step context's Timeout, then 10 min.
	Timeout time.Duration
	// OnLine sees each output line (stdout and stderr, merged), e.g. to
	// report CMake's [NN%] progress.
	OnLine func(line string)
	// Stdout, when set, receives stdout separately (not merged, not logged
	// line by line); stderr still goes to the log and OnLine.
	Stdout io.Writer
}

// ExecError is a child that failed: it carries the exit status and the last
// lines of its output as evidence.
type ExecError struct {
	Args     []string
	ExitCode int
	TimedOut time.Duration
	Tail     []string
	Err      error
}

func (e *ExecError) Error() string {
	name := e.Args[0]
	switch {
	case e.TimedOut > 0:
		return fmt.Sprintf("%s timed out after %s", name, e.TimedOut)
	case e.ExitCode >= 0:
		return fmt.Sprintf("%s exited with status %d", name, e.ExitCode)
	}
	return fmt.Sprintf("%s: %v", name, e.Err)
}

func (e *ExecError) Unwrap() error { return e.Err }

const tailLines = 40

// Exec runs c to completion. Output goes to the step log (and OnLine). On
// cancellation or timeout the child's whole process group is killed, so
// nothing it started outlives the step.
func (sc *Context) Exec(ctx context.Context, c Cmd) error {
	if len(c.Args) == 0 {
		return errors.New("exec: empty command")
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = sc.Timeout
	}
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cmd := exec.CommandContext(cctx, c.Args[0], c.Args[1:]...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The child leads its own process group: kill the group.
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		return nil
	}
	cmd.WaitDelay = 2 * time.Second

	pr, pw := io.Pipe()
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
	} else {
		cmd.Stdout = pw
	}
	cmd.Stderr = pw

	log := sc.Log
	if log == nil {
		log = io.Discard
	}
	fmt.Fprintf(log, "$ %s\n", quoteArgs(c.Args))

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
			fmt.Fprintln(log, line)
			mu.Lock()
			tail = append(tail, line)
			if len(tail) > tailLines {
				tail = tail[1:]
			}
			mu.Unlock()
			if c.OnLine != nil {
				c.OnLine(line)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()

	start := time.Now()
	err := cmd.Start()
	if err == nil {
		err = cmd.Wait()
	}
	pw.Close()
	wg.Wait()
	fmt.Fprintf(log, "# %s (%s)\n", statusWord(err), time.Since(start).Round(time.Millisecond))
	if err == nil {
		return nil
	}
	ee := &ExecError{Args: c.Args, ExitCode: -1, Err: err, Tail: tail}
	if ctx.Err() != nil {
		// Interrupted by the caller: not the child's fault.
		return ctx.Err()
	}
	if errors.Is(cctx.Err(), context.DeadlineExceeded) {
		ee.TimedOut = timeout
	}
	var xe *exec.ExitError
	if errors.As(err, &xe) && ee.TimedOut == 0 {
		ee.ExitCode = xe.ExitCode()
	}
	return ee
}

func statusWord(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$\\") {
			q[i] = fmt.Sprintf("%q", a)
		} else {
			q[i] = a
		}
	}
	return strings.Join(q, " ")
}
