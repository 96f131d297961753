package steps

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/orchardkit/orchard/internal/proc"
	"github.com/orchardkit/orchard/metalkern"
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

// ExecError is a child that failed: how it ended (exit status, signal or
// timeout) and the last lines of its output as evidence.
type ExecError = proc.Error

// Exec runs c to completion under package proc's rules (process group
// killed on cancel or timeout, parent-death signal, bounded pipe waits).
// Output goes to the step log (and OnLine).
func (sc *Context) Exec(ctx context.Context, c Cmd) error {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = sc.Timeout
	}
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	log := sc.Log
	if log == nil {
		log = io.Discard
	}
	if len(c.Args) > 0 {
		fmt.Fprintf(log, "$ %s\n", quoteArgs(c.Args))
	}
	start := time.Now()
	err := proc.Run(ctx, proc.Cmd{Args: c.Args, Dir: c.Dir, Env: c.Env, Timeout: timeout,
		Stdout: c.Stdout, Output: log, OnLine: c.OnLine})
	fmt.Fprintf(log, "# %s (%s)\n", statusWord(err), time.Since(start).Round(time.Millisecond))
	return err
}

// DefaultRunnerTimeout bounds one runner call (info, one smoke case, one
// `orchard attn` run) when no other limit is given: a smoke case takes tens
// of milliseconds on emu, the largest a second or two.
const DefaultRunnerTimeout = time.Minute

// RunnerExec returns a metalkern.Exec for calls of the runner outside the
// step engine (`orchard attn`), under the same rules as the steps' runner
// calls: a process group of its own, killed whole on timeout or when ctx is
// cancelled (Ctrl-C returns ctx.Err() at once, whatever a grandchild holds
// open); a parent-death signal on Linux; timeout 0 means
// DefaultRunnerTimeout. A failed call returns an *ExecError: its Error()
// says "exited with status N", "was killed by SIGSEGV (segmentation
// fault)" or "timed out after 1m0s and was killed", Tail holds the last
// lines of the runner's stderr and LastLine() its own message
// ("orchard-runner: ..."). stderr, when not nil, sees the runner's stderr
// as it comes.
func RunnerExec(timeout time.Duration, stderr io.Writer) metalkern.Exec {
	if timeout <= 0 {
		timeout = DefaultRunnerTimeout
	}
	return func(ctx context.Context, argv, env []string, stdout io.Writer) error {
		return proc.Run(ctx, proc.Cmd{Args: argv, Env: env, Timeout: timeout, Stdout: stdout, Output: stderr})
	}
}

// execForEnv adapts the step context's Exec (process groups, logs,
// timeouts) to metalkern's runner client, bounding each call by the
// build's runner timeout; stdout is also copied to the step log, env is
// added to the child's environment.
func execForEnv(sc *Context, b *Build, onLine func(string), env ...string) metalkern.Exec {
	if b != nil && b.Validate && sc.Backend == BackendMetal {
		env = append(append([]string{}, env...), ValidationEnv...)
	}
	return func(ctx context.Context, argv, extra []string, stdout io.Writer) error {
		w := stdout
		if sc.Log != nil {
			w = io.MultiWriter(stdout, sc.Log)
		}
		return sc.Exec(ctx, Cmd{Args: argv, Stdout: w, OnLine: onLine, Timeout: b.runnerTimeout(),
			Env: append(append([]string{}, env...), extra...)})
	}
}

// execFor is execForEnv without extra environment.
func execFor(sc *Context, b *Build, onLine func(string)) metalkern.Exec {
	return execForEnv(sc, b, onLine)
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
