package attn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// PlainExec runs the runner directly (a metalkern.Exec). Its stderr, one
// line saying what went wrong, becomes the error: an *InputError when the
// runner exits 2 (it refused its input).
func PlainExec(ctx context.Context, argv, env []string, stdout io.Writer) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		msg := strings.TrimSpace(stderr.String())
		if xe.ExitCode() == 2 {
			return &InputError{Msg: strings.TrimPrefix(msg, "orchard-runner: ")}
		}
		return fmt.Errorf("%s", msg)
	}
	return err
}
