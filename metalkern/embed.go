// Package metalkern embeds orchard's Metal attention runtime (the .metal
// kernels, the shared params header, the emu shim, the hosts and CMake files),
// materialises or ejects it to disk, and is the Go client of its runner
// process (docs/runtime.md). The emu generator, .npy I/O, the float64
// reference and the smoke suite are packages of their own below it.
package metalkern

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
)

// embedded is the runtime shipped inside the orchard binary: kernels, the
// params header, the emu shim and launcher, the hosts and CMakeLists.txt.
//
//go:embed all:runtime
var embedded embed.FS

// Source is a runtime source tree: the embedded one, or a directory a user
// ejected and edits (--runtime DIR).
type Source struct {
	FS fs.FS
	// Dir is the directory on disk for an ejected runtime; empty for the
	// embedded one (which is materialised into the build dir first).
	Dir string
}

// Embedded returns the runtime compiled into orchard.
func Embedded() Source {
	sub, err := fs.Sub(embedded, "runtime")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return Source{FS: sub}
}

// FromDir returns an ejected runtime at dir, after checking it looks like one.
func FromDir(dir string) (Source, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Source{}, err
	}
	for _, need := range []string{"CMakeLists.txt", "kernels", "host"} {
		if _, err := os.Stat(filepath.Join(abs, need)); err != nil {
			return Source{}, fmt.Errorf("%s is not an orchard runtime (no %s); create one with 'orchard eject %s'", dir, need, dir)
		}
	}
	return Source{FS: os.DirFS(abs), Dir: abs}, nil
}

// Files lists the runtime's files (slash paths), sorted.
func (s Source) Files() ([]string, error) {
	var out []string
	err := fs.WalkDir(s.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// Hash returns a content hash of the files matching filter (nil: all), for
// cache keys: editing one kernel changes only the keys that include it.
func (s Source) Hash(filter func(string) bool) (string, error) {
	files, err := s.Files()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, f := range files {
		if filter != nil && !filter(f) {
			continue
		}
		b, err := fs.ReadFile(s.FS, f)
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(b)
		fmt.Fprintf(h, "%s\x00%x\n", f, sum)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Materialize writes the runtime into dst, rewriting only files whose
// content differs (so CMake's timestamps stay meaningful) and removing
// files that are no longer part of it. It returns the root on disk. For an
// ejected runtime nothing is copied: its own directory is the root.
func (s Source) Materialize(dst string) (string, error) {
	if s.Dir != "" {
		return s.Dir, nil
	}
	files, err := s.Files()
	if err != nil {
		return "", err
	}
	want := map[string]bool{}
	for _, f := range files {
		want[filepath.FromSlash(f)] = true
		b, err := fs.ReadFile(s.FS, f)
		if err != nil {
			return "", err
		}
		p := filepath.Join(dst, filepath.FromSlash(f))
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, b) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := writeAtomic(p, b, 0o644); err != nil {
			return "", err
		}
	}
	// Drop files an older orchard wrote that this one no longer ships.
	_ = filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dst, p)
		if !want[rel] {
			os.Remove(p)
		}
		return nil
	})
	return dst, nil
}

// Eject writes the runtime's files into dir for editing. It refuses a
// non-empty dir unless force, and never deletes anything there.
func (s Source) Eject(dir string, force bool) ([]string, error) {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 && !force {
		return nil, ErrNotEmpty
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	files, err := s.Files()
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		b, err := fs.ReadFile(s.FS, f)
		if err != nil {
			return nil, err
		}
		p := filepath.Join(dir, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := writeAtomic(p, b, 0o644); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// ErrNotEmpty: eject refuses to write over a non-empty directory.
var ErrNotEmpty = errors.New("directory is not empty")

// KernelFiles are the .metal sources of the runtime (slash paths).
func (s Source) KernelFiles() ([]string, error) {
	files, err := s.Files()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range files {
		if path.Ext(f) == ".metal" {
			out = append(out, f)
		}
	}
	return out, nil
}

func writeAtomic(p string, b []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), perm); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}
