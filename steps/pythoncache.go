package steps

// The python probe cache: what each interpreter said (its version, torch,
// pytest) is remembered in the build dir, keyed by the interpreter's file
// identity (and the real executable's), the identity of every directory
// on its sys.path (installing or removing a package changes its
// site-packages directory), the environment that moves sys.path, and the
// probe's own source. A no-op rebuild then costs a few stats instead of an
// interpreter start per candidate (a pyenv shim alone takes ~0.3 s).
// --force re-probes; a damaged cache file is a re-probe, never an error.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// pythonCacheVersion: bump it when what a cached answer means changes.
const pythonCacheVersion = "1"

type pythonCacheEntry struct {
	Key  string     `json:"key"`
	Info PythonInfo `json:"info"`
}

type pythonCache struct {
	file    string
	force   bool
	getenv  func(string) string
	entries map[string]pythonCacheEntry
	dirty   bool
}

func pythonCacheFile(buildDir string) string {
	return filepath.Join(buildDir, "stamps", "python-probes.json")
}

func loadPythonCache(buildDir string, force bool, getenv func(string) string) *pythonCache {
	c := &pythonCache{force: force, getenv: getenv, entries: map[string]pythonCacheEntry{}}
	if buildDir == "" {
		return c
	}
	c.file = pythonCacheFile(buildDir)
	if b, err := os.ReadFile(c.file); err == nil {
		if json.Unmarshal(b, &c.entries) != nil {
			c.entries = map[string]pythonCacheEntry{}
		}
	}
	return c
}

// key fingerprints what can change interpreter path's answer.
func (c *pythonCache) key(path string, sysPath []string) string {
	h := sha256.New()
	fmt.Fprintf(h, "version %s\nprobe %s\ninterpreter %s\n", pythonCacheVersion, probeScript, fileIdentity(path))
	for _, k := range []string{"PYTHONPATH", "PYTHONHOME", "PYTHONNOUSERSITE", "PYENV_VERSION", "VIRTUAL_ENV", "HOME"} {
		v := ""
		if c.getenv != nil {
			v = c.getenv(k)
		}
		fmt.Fprintf(h, "env %s=%s\n", k, v)
	}
	for _, d := range sysPath {
		fmt.Fprintf(h, "path %s\n", fileIdentity(d))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// probe answers from the cache when the key still holds, else runs the
// interpreter and remembers an answer it gave (not a failure to run).
func (c *pythonCache) probe(path string) PythonInfo {
	if e, ok := c.entries[path]; ok && !c.force && e.Key == c.key(path, e.Info.SysPath) {
		return e.Info
	}
	info := probePython(path)
	if info.Version != "" && len(info.SysPath) > 0 {
		c.entries[path] = pythonCacheEntry{Key: c.key(path, info.SysPath), Info: info}
		c.dirty = true
	} else if _, ok := c.entries[path]; ok {
		delete(c.entries, path)
		c.dirty = true
	}
	return info
}

// save writes the cache when it changed; a failure only costs a re-probe.
func (c *pythonCache) save() {
	if !c.dirty || c.file == "" {
		return
	}
	b, err := json.MarshalIndent(c.entries, "", "  ")
	if err != nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(c.file), 0o755); err != nil {
		return
	}
	_ = WriteFileAtomic(c.file, b, 0o644)
}
