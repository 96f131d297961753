package attn

import "golang.org/x/sys/unix"

// SystemMemory reports the physical memory (hw.memsize): macOS has no
// cheap figure for available memory, and it compresses and swaps before
// killing a process.
func SystemMemory() (uint64, bool) {
	n, err := unix.SysctlUint64("hw.memsize")
	return n, err == nil && n > 0
}
