package steps

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ConfigureEnv is the allowlist of environment variables that feed CMake's
// configure for the runner (the project's languages are CXX, and OBJCXX on
// macOS). A change to any of them starts that CMake tree fresh, since CMake
// reads them only into a new cache. CC, CFLAGS and CPPFLAGS are not on it:
// CMake does not read CPPFLAGS, and the runtime has no C sources.
var ConfigureEnv = []string{
	"CXX", "CXXFLAGS", "OBJCXX", "OBJCXXFLAGS", "LDFLAGS",
	"CMAKE_GENERATOR", "CMAKE_GENERATOR_PLATFORM", "CMAKE_GENERATOR_TOOLSET", "CMAKE_TOOLCHAIN_FILE",
	"MACOSX_DEPLOYMENT_TARGET", "SDKROOT",
}

// cmakeTree is one CMake build tree: <build-dir>/cmake/<id>, one per runtime
// source, so switching --runtime never hands CMake a cache made for other
// sources. The tree is orchard's own: when it no longer fits (the build dir
// was copied or moved, its cache names another source, a configure variable
// changed) it is removed and configured again.
type cmakeTree struct {
	// Dir is the tree; Source the runtime root it is configured from.
	Dir, Source string
}

// treeFor is the CMake tree of the runtime source id in buildDir.
func treeFor(buildDir, sourceID, sourceRoot string) cmakeTree {
	sum := sha256.Sum256([]byte(sourceID))
	return cmakeTree{Dir: filepath.Join(buildDir, "cmake", hex.EncodeToString(sum[:])[:12]), Source: sourceRoot}
}

// treeState is what orchard records in a tree after a configure.
type treeState struct {
	Tree   string `json:"tree"`
	Source string `json:"source"`
	// Fresh are the values whose change needs a new CMake cache (the
	// ConfigureEnv values and the compiler).
	Fresh map[string]string `json:"fresh"`
}

const treeStateName = "orchard-tree.json"

// prepare makes the tree ready for a configure with these fresh values. It
// returns why it started the tree afresh ("" when the tree was reused).
func (t cmakeTree) prepare(fresh map[string]string) (string, error) {
	// Orchard before one tree per source configured <build-dir>/cmake itself.
	parent := filepath.Dir(t.Dir)
	if _, err := os.Stat(filepath.Join(parent, "CMakeCache.txt")); err == nil {
		if err := os.RemoveAll(parent); err != nil {
			return "", fmt.Errorf("remove the old CMake tree %s: %w", parent, err)
		}
	}
	why := t.misfit(fresh)
	if why != "" {
		if err := os.RemoveAll(t.Dir); err != nil {
			return "", fmt.Errorf("remove the CMake tree %s: %w", t.Dir, err)
		}
	}
	return why, os.MkdirAll(t.Dir, 0o755)
}

// misfit says why the tree cannot be configured again as it is, or "".
func (t cmakeTree) misfit(fresh map[string]string) string {
	cache := readCMakeCache(filepath.Join(t.Dir, "CMakeCache.txt"))
	b, err := os.ReadFile(filepath.Join(t.Dir, treeStateName))
	if err != nil {
		if cache == nil {
			return "" // a new tree
		}
		return "it has no record of what it was configured for"
	}
	var st treeState
	if json.Unmarshal(b, &st) != nil {
		return "its record " + treeStateName + " is damaged"
	}
	switch {
	case !samePath(st.Tree, t.Dir):
		return "it was configured at " + st.Tree + " (the build dir was copied or moved)"
	case !samePath(st.Source, t.Source):
		return "it was configured for the sources in " + st.Source
	case cache != nil && !samePath(cache["CMAKE_CACHEFILE_DIR"], t.Dir):
		return "its CMakeCache.txt was made in " + cache["CMAKE_CACHEFILE_DIR"]
	case cache != nil && !samePath(cache["CMAKE_HOME_DIRECTORY"], t.Source):
		return "its CMakeCache.txt was made for the sources in " + cache["CMAKE_HOME_DIRECTORY"]
	}
	var changed []string
	for _, k := range sortedKeys(fresh) {
		if st.Fresh[k] != fresh[k] {
			changed = append(changed, fmt.Sprintf("%s changed (%q → %q)", k, st.Fresh[k], fresh[k]))
		}
	}
	for _, k := range sortedKeys(st.Fresh) {
		if _, ok := fresh[k]; !ok {
			changed = append(changed, k+" is no longer set")
		}
	}
	if len(changed) > 0 {
		return strings.Join(changed, ", ") + ": CMake reads it only into a new cache"
	}
	return ""
}

// record notes what the tree is now configured for.
func (t cmakeTree) record(fresh map[string]string) error {
	b, err := json.MarshalIndent(treeState{Tree: t.Dir, Source: t.Source, Fresh: fresh}, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(t.Dir, treeStateName), b, 0o644)
}

// forget removes the record, so a configure that does not finish leaves a
// tree the next run starts afresh.
func (t cmakeTree) forget() error {
	err := os.Remove(filepath.Join(t.Dir, treeStateName))
	if os.IsNotExist(err) {
		return nil
	}
	return err
}

// readCMakeCache returns the INTERNAL and typed entries of a CMakeCache.txt
// (NAME:TYPE=VALUE), or nil when there is none.
func readCMakeCache(path string) map[string]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' || strings.HasPrefix(l, "//") {
			continue
		}
		nameType, val, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(nameType, ":")
		m[name] = val
	}
	return m
}

// samePath compares two absolute paths, also through symlinks (/tmp and
// /private/tmp on macOS).
func samePath(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}

// configureValues reads the ConfigureEnv values that are set, for the
// configure's environment and the tree's record.
func configureValues(getenv func(string) string) map[string]string {
	m := map[string]string{}
	for _, k := range ConfigureEnv {
		if v := getenv(k); v != "" {
			m[k] = v
		}
	}
	return m
}

// envList turns values into KEY=VALUE, sorted.
func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
