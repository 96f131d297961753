package proc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A directory of a process that is gone is swept; a live process's, this
// process's own, and anything not made by MkdirTemp stay.
func TestSweepTempRemovesOnlyDeadRunsDirs(t *testing.T) {
	dir := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	mine, err := MkdirTemp(dir, "orchard-x")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(mine), fmt.Sprintf(".orchard-x-%d-", os.Getpid())) {
		t.Fatalf("MkdirTemp made %s, want it named after pid %d", mine, os.Getpid())
	}
	for _, d := range []string{
		fmt.Sprintf(".orchard-x-%d-1", dead.Process.Pid),                         // killed run
		fmt.Sprintf(".orchard-x-%d-2", os.Getppid()),                             // live run
		".orchard-x-notapid", "orchard-x-" + fmt.Sprint(dead.Process.Pid) + "-3", // not ours
		fmt.Sprintf(".orchard-y-%d-4", dead.Process.Pid), // another name
	} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	SweepTemp(dir, "orchard-x")
	ents, _ := os.ReadDir(dir)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	want := []string{
		fmt.Sprintf(".orchard-x-%d-2", os.Getppid()), filepath.Base(mine), ".orchard-x-notapid",
		fmt.Sprintf(".orchard-y-%d-4", dead.Process.Pid), "orchard-x-" + fmt.Sprint(dead.Process.Pid) + "-3",
	}
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
}
