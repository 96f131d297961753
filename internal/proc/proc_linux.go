package proc

import (
	"os/exec"
	"syscall"
)

// sysProcAttr: a process group of its own (killed whole), and SIGKILL when
// orchard dies, however it dies (SIGKILL included). Linux sends it when the
// thread that forked the child exits; the Go runtime retires a thread only
// when a goroutine locked to it exits, which Run's callers never do.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func start(cmd *exec.Cmd) error { return cmd.Start() }
