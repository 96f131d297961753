//go:build !linux

package proc

import (
	"os/exec"
	"syscall"
)

// sysProcAttr: a process group of its own (killed whole). Only Linux has a
// parent-death signal.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func start(cmd *exec.Cmd) error { return cmd.Start() }
