package steps

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/orchardkit/orchard/checks"
)

// stamp is what a successful cacheable step leaves in <build-dir>/stamps/.
type stamp struct {
	Key     string            `json:"key"`
	Parts   map[string]string `json:"parts"`   // key components, for --explain
	Outputs map[string]string `json:"outputs"` // path -> sha256
	Output  json.RawMessage   `json:"output"`  // the step's typed output
	Checks  []checks.Check    `json:"checks"`
	Detail  string            `json:"detail"`
	Created time.Time         `json:"created"`

	// BuildDir is the absolute build dir the stamp was made in. Its outputs
	// and typed output name paths there: a stamp found in another dir (the
	// build dir was copied or moved) stands for nothing.
	BuildDir string `json:"build_dir"`
}

// keyParts resolves KeyInputs into named components: env values read, files
// hashed. Any component that differs gives a different key.
func keyParts(kind string, in KeyInputs, getenv func(string) string) (map[string]string, error) {
	p := map[string]string{"kind": kind, "version": in.Version}
	for k, v := range in.Config {
		p["config "+k] = v
	}
	for i, c := range in.Commands {
		p[fmt.Sprintf("command %d", i)] = strings.Join(c, "\x00")
	}
	for _, name := range in.Env {
		v := ""
		if getenv != nil {
			v = getenv(name)
		}
		p["env "+name] = v
	}
	for k, v := range in.Tools {
		p["tool "+k] = v
	}
	for name, h := range in.Files {
		p["file "+name] = h
	}
	for _, path := range in.Inputs {
		hs, err := hashTree(path)
		if err != nil {
			return nil, fmt.Errorf("hash input %s: %w", path, err)
		}
		for name, h := range hs {
			p["input "+name] = h
		}
	}
	return p, nil
}

func keyOf(parts map[string]string) string {
	names := make([]string, 0, len(parts))
	for k := range parts {
		names = append(names, k)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, k := range names {
		fmt.Fprintf(h, "%d:%s=%d:%s\n", len(k), k, len(parts[k]), parts[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hashFile returns the sha256 of a file's contents.
func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashTree hashes a file, or each file of a directory (named
// <dir>/<relative path>), so --explain can name the file that changed. A
// missing input hashes as "missing", so its later appearance changes the key.
func hashTree(path string) (map[string]string, error) {
	st, err := os.Stat(path)
	if os.IsNotExist(err) {
		return map[string]string{path: "missing"}, nil
	}
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		h, err := hashFile(path)
		return map[string]string{path: h}, err
	}
	out := map[string]string{}
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fh, err := hashFile(p)
		if err != nil {
			return err
		}
		out[p] = fh
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		out[path] = "empty directory"
	}
	return out, nil
}

func stampPath(buildDir, step string) string {
	return filepath.Join(buildDir, "stamps", step+".json")
}

func readStamp(path string) (*stamp, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s stamp
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("stamp %s is damaged: %w", path, err)
	}
	return &s, nil
}

// writeStamp writes atomically: a temp file in the same directory, synced,
// then renamed over the old stamp. A crash leaves the old stamp or none.
func writeStamp(path string, s *stamp) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, b, 0o644)
}

// WriteFileAtomic writes data to path through a temp file and a rename.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(name, perm); err != nil {
		return err
	}
	return os.Rename(name, path)
}

// reuse decides whether a stamp can stand for a run with these parts in
// buildDir. It returns ok and, either way, the reason in words for --explain.
func reuse(s *stamp, buildDir string, parts map[string]string) (bool, string) {
	if s.BuildDir != buildDir {
		if s.BuildDir == "" {
			return false, "ran: the stamp does not say which build dir it was made in (an older orchard wrote it)"
		}
		return false, "ran: the stamp was made in " + s.BuildDir + " (this build dir was copied or moved)"
	}
	if key := keyOf(parts); s.Key != key {
		return false, "ran: " + diffParts(s.Parts, parts)
	}
	for _, p := range sortedKeys(s.Outputs) {
		h, err := hashFile(p)
		if os.IsNotExist(err) {
			return false, "ran: output " + p + " is missing"
		}
		if err != nil {
			return false, "ran: output " + p + ": " + err.Error()
		}
		if h != s.Outputs[p] {
			return false, "ran: output " + p + " changed since it was built (removed, so it is built again)"
		}
	}
	return true, "cached: inputs, commands, tools and environment unchanged; outputs present"
}

// staleOutputs are the stamp's outputs inside buildDir that exist with
// another hash than the one recorded: the engine removes them before the
// step reruns, so the build tool cannot take a damaged file for up to date.
// Paths outside buildDir (a stamp copied from elsewhere) are never touched.
func staleOutputs(s *stamp, buildDir string) []string {
	var out []string
	for _, p := range sortedKeys(s.Outputs) {
		if !within(buildDir, p) {
			continue
		}
		if h, err := hashFile(p); err == nil && h != s.Outputs[p] {
			out = append(out, p)
		}
	}
	return out
}

// within reports whether path is dir or inside it.
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// partOrder ranks key components for --explain: what a person edits first
// (files), then what they set (env, tools, config), then what follows from
// those (inputs: earlier steps' outputs, which one edit or switch changes
// many of; command lines; the step's own version).
func partOrder(k string) int {
	for i, p := range []string{"file ", "env ", "tool ", "config ", "input ", "command ", "version", "kind"} {
		if strings.HasPrefix(k, p) {
			return i
		}
	}
	return 99
}

// diffParts says which key components changed, most specific first, with
// the old and new values where they are short enough to read.
func diffParts(old, cur map[string]string) string {
	type change struct {
		key, text string
	}
	var changed []change
	for k, v := range cur {
		if ov, ok := old[k]; !ok {
			changed = append(changed, change{k, k + " is new"})
		} else if ov != v {
			changed = append(changed, change{k, k + " changed" + valueChange(k, ov, v)})
		}
	}
	for k := range old {
		if _, ok := cur[k]; !ok {
			changed = append(changed, change{k, k + " was removed"})
		}
	}
	if len(changed) == 0 {
		return "the cache key changed"
	}
	sort.Slice(changed, func(i, j int) bool {
		a, b := changed[i], changed[j]
		if oa, ob := partOrder(a.key), partOrder(b.key); oa != ob {
			return oa < ob
		}
		return a.key < b.key
	})
	var texts []string
	for _, c := range changed {
		texts = append(texts, c.text)
	}
	if len(texts) > 4 {
		texts = append(texts[:4], fmt.Sprintf("and %d more", len(texts)-4))
	}
	return strings.Join(texts, "; ")
}

// valueChange is " (old → new)" for values a person can read: env, tools,
// config, and the first differing argument of a command. Content hashes
// (files, inputs) say nothing to a reader and are left out.
func valueChange(k, ov, v string) string {
	quote := func(s string) string {
		if len(s) > 80 {
			s = s[:77] + "..."
		}
		return fmt.Sprintf("%q", s)
	}
	switch {
	case strings.HasPrefix(k, "env "), strings.HasPrefix(k, "tool "), strings.HasPrefix(k, "config "), k == "version":
		return " (" + quote(ov) + " → " + quote(v) + ")"
	case strings.HasPrefix(k, "command "):
		oa, na := strings.Split(ov, "\x00"), strings.Split(v, "\x00")
		for i := 0; i < len(oa) || i < len(na); i++ {
			var o, n string
			if i < len(oa) {
				o = oa[i]
			}
			if i < len(na) {
				n = na[i]
			}
			if o != n {
				return fmt.Sprintf(" (argument %d: %s → %s)", i, quote(o), quote(n))
			}
		}
	}
	return ""
}

// LoadOutput restores a step's typed output from its stamp in buildDir, for
// commands that use an existing build without rebuilding (verify, attn). It
// fails with os.ErrNotExist when the step never succeeded there.
func LoadOutput(buildDir, step string, out any) error {
	s, err := readStamp(stampPath(buildDir, step))
	if err != nil {
		return err
	}
	if s.BuildDir != buildDir {
		return fmt.Errorf("the %s step's stamp was made in %q, not here (the build dir was copied or moved)", step, s.BuildDir)
	}
	for _, p := range sortedKeys(s.Outputs) {
		got, err := hashFile(p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if got != s.Outputs[p] {
			return fmt.Errorf("%s changed since it was built", p)
		}
	}
	return json.Unmarshal(s.Output, out)
}
