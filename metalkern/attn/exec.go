package attn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/orchardkit/orchard/internal/proc"
	"github.com/orchardkit/orchard/metalkern"
)

// DefaultRunnerTimeout bounds one runner call of orchard attn. It is longer
// than the smoke suite's per-case limit: the tensors are the user's, of any
// size the memory check lets through.
const DefaultRunnerTimeout = 10 * time.Minute

// RunnerExec runs the runner (a metalkern.Exec) as orchard's steps do
// (internal/proc): in a process group of its own that is killed whole on
// timeout or cancellation (Ctrl-C returns at once, whatever a grandchild
// holds open), with a parent-death signal on Linux. When the runner exits 2
// (it refused its input) the error is an *InputError with its message; any
// other failure says how the runner ended (exit status, signal and core, or
// the timeout) with its last lines of stderr. timeout <= 0 means
// DefaultRunnerTimeout.
func RunnerExec(timeout time.Duration) metalkern.Exec {
	if timeout <= 0 {
		timeout = DefaultRunnerTimeout
	}
	return func(ctx context.Context, argv, env []string, stdout io.Writer) error {
		err := proc.Run(ctx, proc.Cmd{Args: argv, Env: env, Timeout: timeout, Stdout: stdout})
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var pe *proc.Error
		if !errors.As(err, &pe) {
			return err
		}
		msg := strings.TrimPrefix(pe.LastLine(), "orchard-runner: ")
		switch {
		case pe.ExitCode == 2:
			return &InputError{Msg: msg}
		case pe.ExitCode > 0 && msg != "":
			// The runner's own error (a refused log path, a full disk, …).
			return fmt.Errorf("%s: %w", msg, pe)
		}
		tail := pe.Tail
		if len(tail) > 8 {
			tail = tail[len(tail)-8:]
		}
		if len(tail) == 0 {
			return fmt.Errorf("%w (it printed nothing on stderr)", pe)
		}
		return fmt.Errorf("%w; its last output:\n  %s", pe, strings.Join(tail, "\n  "))
	}
}
