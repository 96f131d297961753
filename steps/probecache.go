package steps

// The probe cache: the toolchain step's expensive probes (the compiler
// probe compiles and runs a C++20 program, ~0.5 s; cmake --version ~10 ms)
// are remembered in the build dir, keyed by what can change their answer:
// each tool's resolved path and file identity (size, mtime, ctime, inode),
// the PATH and CXX the probes see, the platform and the probes' own
// version. A no-op rebuild then costs a few stats. Only passing probes are
// remembered; --force always re-probes; a damaged or foreign cache file is
// a re-probe, never an error.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orchardkit/orchard/checks"
)

// probeCacheVersion: bump it when what a cached probe means changes (its
// checks, evidence or the fields it fills). The probe's source, flags and
// minimum versions are part of the key on their own.
const probeCacheVersion = "1"

// cachedProbes are the probes the cache covers: the ones that run tools
// whose identity the key captures. The OS probe reads a file (cheap), and
// the Metal probes depend on Xcode's selection, which no file stat shows.
var cachedProbes = []string{ProbeCMake, ProbeCXX}

// probeCacheFile is the cache inside a build dir.
func probeCacheFile(buildDir string) string {
	return filepath.Join(buildDir, "stamps", "toolchain-probes.json")
}

// probeCache is the cache file's content.
type probeCache struct {
	Key     string                 `json:"key"`
	Parts   map[string]string      `json:"parts"` // for people reading the file
	Created time.Time              `json:"created"`
	Results map[string]ProbeResult `json:"results"` // by probe id
}

// probeKeyParts fingerprints what the cached probes depend on.
func (p *Prober) probeKeyParts() map[string]string {
	parts := map[string]string{
		"cache version": probeCacheVersion,
		"probe":         probeSourceHash(),
		"platform":      p.Platform(),
		"env PATH":      p.getenv("PATH"),
		"env CXX":       p.getenv("CXX"),
	}
	for _, name := range p.probedTools() {
		id := "not found on PATH"
		if path, err := p.Runner.LookPath(name); err == nil {
			id = fileIdentity(path)
		}
		parts["tool "+name] = id
	}
	return parts
}

// probedTools are the names the CMake and CXX probes look up.
func (p *Prober) probedTools() []string {
	tools := []string{"cmake"}
	if f := strings.Fields(p.getenv("CXX")); len(f) > 0 {
		return append(tools, f[0])
	}
	return append(tools, "c++", "g++", "clang++")
}

// probeSourceHash stands for the probes' own definition: the C++ program,
// its flags and the required versions.
func probeSourceHash() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s", cxxProbeSource, strings.Join(CXXFlags, " "), cxxProbeMarker, MinCMake)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// fileIdentity is "path -> resolved size=… mtime=… ctime=… ino=…": a tool
// replaced, touched, relinked or reinstalled (even with its old mtime, as
// package managers do) gets another identity.
func fileIdentity(path string) string {
	id := path
	if real, err := filepath.EvalSymlinks(path); err == nil && real != path {
		id += " -> " + real
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return id + " (" + err.Error() + ")"
	}
	return fmt.Sprintf("%s size=%d mtime=%d ctime=%d dev=%d ino=%d", id, st.Size,
		st.Mtim.Nano(), st.Ctim.Nano(), uint64(st.Dev), uint64(st.Ino))
}

// loadProbeCache returns the cache when the file holds one for exactly
// this key with every cached probe passing, else nil (missing, damaged,
// another key).
func loadProbeCache(path string, parts map[string]string) *probeCache {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var c probeCache
	if json.Unmarshal(b, &c) != nil || c.Key != keyOf(parts) {
		return nil
	}
	for _, id := range cachedProbes {
		if r, ok := c.Results[id]; !ok || r.Check.ID != id || r.Check.Status != checks.Pass {
			return nil
		}
	}
	return &c
}

// saveProbeCache records results when every cached probe passed (a failure
// may be fixed by something the key does not see, such as installed
// headers, so it is always probed again).
func saveProbeCache(path string, parts map[string]string, results []ProbeResult) error {
	c := probeCache{Key: keyOf(parts), Parts: parts, Created: time.Now().UTC(), Results: map[string]ProbeResult{}}
	for _, r := range results {
		c.Results[r.Check.ID] = r
	}
	for _, id := range cachedProbes {
		if r, ok := c.Results[id]; !ok || r.Check.Status != checks.Pass {
			return nil
		}
	}
	for id := range c.Results {
		if !slices.Contains(cachedProbes, id) {
			delete(c.Results, id)
		}
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return WriteFileAtomic(path, b, 0o644)
}

// seed makes results the memoised answers of their probes, except where
// this process already probed (doctor --fix before a rebuild), and returns
// the ids it seeded.
func (p *Prober) seed(results map[string]ProbeResult) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.memo == nil {
		p.memo = map[string]ProbeResult{}
	}
	var ids []string
	for id, r := range results {
		if _, ok := p.memo[id]; !ok {
			p.memo[id] = r
			ids = append(ids, id)
		}
	}
	return ids
}

// whyReprobe says, for the step log, why the cache could not be used.
func whyReprobe(path string, parts map[string]string) string {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return "no probe cache yet"
	}
	var c probeCache
	if err != nil || json.Unmarshal(b, &c) != nil || c.Parts == nil {
		return "the probe cache is unreadable or damaged"
	}
	if c.Key == keyOf(parts) {
		return "a cached probe is incomplete"
	}
	return diffParts(c.Parts, parts)
}
