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
	for _, path := range in.Inputs {
		h, err := hashTree(path)
		if err != nil {
			return nil, fmt.Errorf("hash input %s: %w", path, err)
		}
		p["input "+path] = h
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

// hashTree hashes a file, or a directory's files (relative names and
// contents, in order). A missing input hashes as "missing", so its later
// appearance changes the key.
func hashTree(path string) (string, error) {
	st, err := os.Stat(path)
	if os.IsNotExist(err) {
		return "missing", nil
	}
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return hashFile(path)
	}
	h := sha256.New()
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fh, err := hashFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(path, p)
		fmt.Fprintf(h, "%s\x00%s\n", filepath.ToSlash(rel), fh)
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
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

// reuse decides whether a stamp can stand for a run with these parts. It
// returns ok and, either way, the reason in words for --explain.
func reuse(s *stamp, parts map[string]string) (bool, string) {
	if key := keyOf(parts); s.Key != key {
		return false, "ran: " + diffParts(s.Parts, parts)
	}
	outs := make([]string, 0, len(s.Outputs))
	for p := range s.Outputs {
		outs = append(outs, p)
	}
	sort.Strings(outs)
	for _, p := range outs {
		h, err := hashFile(p)
		if os.IsNotExist(err) {
			return false, "ran: output " + p + " is missing"
		}
		if err != nil {
			return false, "ran: output " + p + ": " + err.Error()
		}
		if h != s.Outputs[p] {
			return false, "ran: output " + p + " changed since it was built"
		}
	}
	return true, "cached: inputs, commands, tools and environment unchanged; outputs present"
}

// diffParts says which key components changed, most specific first.
func diffParts(old, cur map[string]string) string {
	var changed []string
	for k, v := range cur {
		if ov, ok := old[k]; !ok {
			changed = append(changed, k+" is new")
		} else if ov != v {
			changed = append(changed, k+" changed")
		}
	}
	for k := range old {
		if _, ok := cur[k]; !ok {
			changed = append(changed, k+" was removed")
		}
	}
	if len(changed) == 0 {
		return "the cache key changed"
	}
	sort.Strings(changed)
	if len(changed) > 4 {
		changed = append(changed[:4], fmt.Sprintf("and %d more", len(changed)-4))
	}
	return strings.Join(changed, "; ")
}

// LoadOutput restores a step's typed output from its stamp in buildDir, for
// commands that use an existing build without rebuilding (verify, attn). It
// fails with os.ErrNotExist when the step never succeeded there.
func LoadOutput(buildDir, step string, out any) error {
	s, err := readStamp(stampPath(buildDir, step))
	if err != nil {
		return err
	}
	for p, h := range s.Outputs {
		got, err := hashFile(p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if got != h {
			return fmt.Errorf("%s changed since it was built", p)
		}
	}
	return json.Unmarshal(s.Output, out)
}
