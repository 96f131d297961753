package attn

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMemAvailableAndCgroupFree(t *testing.T) {
	dir := t.TempDir()
	mi := filepath.Join(dir, "meminfo")
	os.WriteFile(mi, []byte("MemTotal:       32000000 kB\nMemFree:         1000000 kB\nMemAvailable:    9542000 kB\n"), 0o644)
	if n, ok := memAvailable(mi); !ok || n != 9542000*1024 {
		t.Errorf("memAvailable = %d, %v", n, ok)
	}
	if _, ok := memAvailable(filepath.Join(dir, "none")); ok {
		t.Error("a missing meminfo is known")
	}
	cg := filepath.Join(dir, "cg")
	os.Mkdir(cg, 0o755)
	os.WriteFile(filepath.Join(cg, "memory.max"), []byte("max\n"), 0o644)
	if _, ok := cgroupFree(cg); ok {
		t.Error("memory.max 'max' is a limit")
	}
	os.WriteFile(filepath.Join(cg, "memory.max"), []byte("4294967296\n"), 0o644)
	os.WriteFile(filepath.Join(cg, "memory.current"), []byte("1073741824\n"), 0o644)
	if n, ok := cgroupFree(cg); !ok || n != 3<<30 {
		t.Errorf("cgroupFree = %d, %v", n, ok)
	}
	if n, ok := SystemMemory(); !ok || n == 0 {
		t.Errorf("SystemMemory on Linux = %d, %v", n, ok)
	}
}
