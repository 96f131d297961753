package metalkern

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The Metal runner's device choice is plain C++ (host/device_pick.h), so it
// runs here over fake device lists standing in for MTLCopyAllDevices().
func TestDevicePick(t *testing.T) {
	emuNeedTools(t, "g++")
	host, _ := filepath.Abs(filepath.Join("runtime", "host"))
	bin := filepath.Join(t.TempDir(), "device_pick_test")
	src, _ := filepath.Abs(filepath.Join("testdata", "device_pick_test.cpp"))
	if out, err := exec.Command("g++", "-std=c++20", "-Wall", "-Werror", "-I", host, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("compile: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("device choice: %v\n%s", err, out)
	}
}
