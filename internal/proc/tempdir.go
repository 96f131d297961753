package proc

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MkdirTemp creates a directory in dir (os.TempDir() when dir is "") whose
// name starts with "."+name+"-<pid>-", so that SweepTemp in a later run can
// tell the leftovers of a killed run from a live run's directory.
func MkdirTemp(dir, name string) (string, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	return os.MkdirTemp(dir, fmt.Sprintf(".%s-%d-*", name, os.Getpid()))
}

// SweepTemp removes the directories MkdirTemp(dir, name) made for processes
// that no longer exist (killed before they could clean up). Anything else
// in dir is left alone; errors are ignored (a sweep is a courtesy).
func SweepTemp(dir, name string) {
	if dir == "" {
		dir = os.TempDir()
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), "."+name+"-")
		if !ok || !e.IsDir() {
			continue
		}
		pid, _, ok := strings.Cut(rest, "-")
		if n, err := strconv.Atoi(pid); ok && err == nil && n > 0 && n != os.Getpid() && !processExists(n) {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}
