package attn

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
)

// SystemMemory reports the memory a run may use: MemAvailable from
// /proc/meminfo, lowered to what the cgroup (v2) memory.max still allows.
func SystemMemory() (uint64, bool) {
	avail, ok := memAvailable("/proc/meminfo")
	if free, cok := cgroupFree(cgroupDir()); cok && (!ok || free < avail) {
		avail, ok = free, true
	}
	return avail, ok
}

func memAvailable(path string) (uint64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// MemAvailable:   23777424 kB
		fs := strings.Fields(sc.Text())
		if len(fs) == 3 && fs[0] == "MemAvailable:" && fs[2] == "kB" {
			kb, err := strconv.ParseUint(fs[1], 10, 64)
			return kb * 1024, err == nil
		}
	}
	return 0, false
}

// cgroupDir is this process's cgroup v2 directory ("0::/path" in
// /proc/self/cgroup).
func cgroupDir() string {
	b, _ := os.ReadFile("/proc/self/cgroup")
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return "/sys/fs/cgroup" + p
		}
	}
	return "/sys/fs/cgroup"
}

// cgroupFree is memory.max − memory.current of this process's cgroup v2
// directory; false when there is no limit or no cgroup v2.
func cgroupFree(root string) (uint64, bool) {
	read := func(name string) (uint64, bool) {
		b, err := os.ReadFile(root + "/" + name)
		if err != nil {
			return 0, false
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
		return n, err == nil // "max" (no limit) does not parse
	}
	limit, ok := read("memory.max")
	if !ok {
		return 0, false
	}
	cur, _ := read("memory.current")
	if cur >= limit {
		return 0, true
	}
	return limit - cur, true
}
