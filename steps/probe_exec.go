package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ExecRunner runs probes with os/exec. Children get the process environment
// with PATH taken from Getenv (so a caller can narrow it) and LC_ALL=C so
// version lines are not translated.
type ExecRunner struct {
	// Getenv supplies PATH; nil or an empty PATH means the process's own.
	Getenv func(string) string
}

func (r ExecRunner) path() string {
	if r.Getenv != nil {
		if p := r.Getenv("PATH"); p != "" {
			return p
		}
	}
	return os.Getenv("PATH")
}

// LookPath searches r's PATH for an executable regular file.
func (r ExecRunner) LookPath(name string) (string, error) {
	if strings.ContainsRune(name, filepath.Separator) {
		if isExecutable(name) {
			return name, nil
		}
		return "", fmt.Errorf("%s: not an executable file", name)
	}
	for _, dir := range filepath.SplitList(r.path()) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found on PATH", name)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// Run runs argv; on ctx's end the child's whole process group is killed.
func (r ExecRunner) Run(ctx context.Context, dir string, argv ...string) ([]byte, []byte, error) {
	if len(argv) == 0 {
		return nil, nil, errors.New("empty command")
	}
	bin, err := r.LookPath(argv[0])
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.CommandContext(ctx, bin, argv[1:]...)
	cmd.Dir = dir
	cmd.Env = childEnv(os.Environ(), "PATH="+r.path(), "LC_ALL=C", "LANG=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		return nil
	}
	cmd.WaitDelay = time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.Bytes(), errOut.Bytes(), err
}

// childEnv returns env with the given KEY=VALUE pairs replacing any entries
// for the same keys.
func childEnv(env []string, set ...string) []string {
	drop := map[string]bool{}
	for _, kv := range set {
		drop[kv[:strings.IndexByte(kv, '=')+1]] = true
	}
	out := make([]string, 0, len(env)+len(set))
	for _, kv := range env {
		if i := strings.IndexByte(kv, '='); i >= 0 && drop[kv[:i+1]] {
			continue
		}
		out = append(out, kv)
	}
	return append(out, set...)
}
