package logs

import (
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"time"
)

// Environment variables the runner reads (docs/logs.md, "Writing the logs").
const (
	EnvDebugFlashAttn   = "ORCHARD_DEBUG_FLASH_ATN"    // "1" enables the kernel-call log
	EnvTensorProfile    = "ORCHARD_TENSOR_PROFILE"     // "1" enables the tensor profile log
	EnvKernelLog        = "ORCHARD_KERNEL_LOG"         // overrides the kernel-call log's path
	EnvTensorProfileLog = "ORCHARD_TENSOR_PROFILE_LOG" // overrides the tensor profile log's path
	EnvRunID            = "ORCHARD_RUN_ID"             // the run id the runner writes as run=
)

// Default file names, under <build-dir>/logs/.
const (
	KernelLogName  = "flashattn_kernel_calls.log"
	ProfileLogName = "orchard_tensor_profile.log"
)

// KernelLogPath is where the kernel-call log of buildDir is: the
// ORCHARD_KERNEL_LOG override when getenv returns one, else
// <buildDir>/logs/flashattn_kernel_calls.log.
func KernelLogPath(buildDir string, getenv func(string) string) string {
	return logPath(buildDir, getenv, EnvKernelLog, KernelLogName)
}

// ProfileLogPath is where the tensor profile log of buildDir is: the
// ORCHARD_TENSOR_PROFILE_LOG override, else
// <buildDir>/logs/orchard_tensor_profile.log.
func ProfileLogPath(buildDir string, getenv func(string) string) string {
	return logPath(buildDir, getenv, EnvTensorProfileLog, ProfileLogName)
}

func logPath(buildDir string, getenv func(string) string, env, name string) string {
	if getenv != nil {
		if p := getenv(env); p != "" {
			return p
		}
	}
	return filepath.Join(buildDir, "logs", name)
}

// NewRunID returns a fresh run id: UTC time to the second and 8 random hex
// digits, e.g. 20261128T101530-9f2c01ab. It matches [A-Za-z0-9._-]+, so it
// is written bare and is easy to grep.
func NewRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}
