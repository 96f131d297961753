//go:build unix

package proc

import (
	"errors"
	"syscall"
)

// processExists reports whether pid names a process (signal 0 probes it).
func processExists(pid int) bool {
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
