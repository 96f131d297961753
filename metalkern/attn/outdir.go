package attn

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/orchardkit/orchard/internal/proc"
	"github.com/orchardkit/orchard/metalkern/npy"
)

// stage is a private directory on the output directory's filesystem where
// a run's outputs are written before they are renamed into place.
//
// When the output directory exists, the stage is a hidden directory inside
// it; commit moves the outputs of any earlier run aside, renames the new
// ones in and, if a rename fails, puts everything back. When it does not
// exist, the stage sits beside it and commit renames the whole stage into
// its place.
type stage struct {
	out     string   // the output directory, as the user named it
	dir     string   // the stage
	fresh   bool     // out did not exist: the stage becomes out
	parents []string // ancestors of out created for the stage, outermost first
	done    bool
}

func newStage(out string) (*stage, error) {
	st := &stage{out: out}
	fi, err := os.Stat(out)
	switch {
	case err == nil && !fi.IsDir():
		return nil, inputErrorf("--out %s: exists and is not a directory", out)
	case err == nil:
		proc.SweepTemp(out, stageName)
		st.dir, err = proc.MkdirTemp(out, stageName)
	case errors.Is(err, fs.ErrNotExist):
		st.fresh = true
		parent := filepath.Dir(filepath.Clean(out))
		if err = st.mkParents(parent); err == nil {
			proc.SweepTemp(parent, stageName)
			st.dir, err = proc.MkdirTemp(parent, stageName)
		}
	}
	if err != nil {
		st.discard()
		return nil, inputErrorf("--out %s: cannot write there: %v", out, reason(err))
	}
	return st, nil
}

// stageName names the stages (".orchard-attn-<pid>-…"): named after this
// process, so that the next run can sweep a killed run's stage.
const stageName = "orchard-attn"

// mkParents creates the missing ancestors of out, recording them so that a
// failed run removes them again.
func (st *stage) mkParents(dir string) error {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		st.parents = append(st.parents, missing[i])
	}
	return nil
}

// has reports whether the stage holds the output name.
func (st *stage) has(name string) bool {
	fi, err := os.Stat(filepath.Join(st.dir, name))
	return err == nil && fi.Mode().IsRegular()
}

// write converts x to dt and writes it into the stage as name.
func (st *stage) write(name string, shape []int, dt npy.DType, x []float64) error {
	data := make([]float32, len(x))
	for i, e := range x {
		data[i] = float32(e)
	}
	if err := npy.Write(filepath.Join(st.dir, name), &npy.Array{Shape: shape, DType: dt, Data: data}); err != nil {
		return st.writeError(name, err)
	}
	return nil
}

// commit puts the staged outputs names into the output directory and
// removes the other files of all (an earlier run's outputs) from it.
func (st *stage) commit(names, all []string) error {
	if st.fresh {
		if err := os.Chmod(st.dir, 0o755); err != nil {
			return st.writeError("", err)
		}
		if err := os.Rename(st.dir, st.out); err != nil {
			return st.writeError("", err)
		}
		st.done = true
		return nil
	}
	aside := filepath.Join(st.dir, ".earlier")
	if err := os.Mkdir(aside, 0o700); err != nil {
		return st.writeError("", err)
	}
	var movedAside, installed []string
	undo := func(err error, name string) error {
		for _, n := range installed {
			os.Rename(filepath.Join(st.out, n), filepath.Join(st.dir, n))
		}
		for _, n := range movedAside {
			os.Rename(filepath.Join(aside, n), filepath.Join(st.out, n))
		}
		return st.writeError(name, err)
	}
	for _, n := range all {
		p := filepath.Join(st.out, n)
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := os.Rename(p, filepath.Join(aside, n)); err != nil {
			return undo(err, n)
		}
		movedAside = append(movedAside, n)
	}
	for _, n := range names {
		if err := os.Rename(filepath.Join(st.dir, n), filepath.Join(st.out, n)); err != nil {
			return undo(err, n)
		}
		installed = append(installed, n)
	}
	st.done = true
	return nil
}

// discard removes the stage (with an earlier run's outputs, after a
// commit) and, unless the run committed, the ancestors it created.
func (st *stage) discard() {
	if st.dir != "" && !(st.fresh && st.done) {
		os.RemoveAll(st.dir)
	}
	if !st.done {
		for i := len(st.parents) - 1; i >= 0; i-- {
			os.Remove(st.parents[i])
		}
	}
}

// writeError names the output (name in the output directory, or the
// directory itself) and the system's reason.
func (st *stage) writeError(name string, err error) error {
	p := st.out
	if name != "" {
		p = filepath.Join(st.out, name)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) && (errno == syscall.ENOSPC || errno == syscall.EDQUOT) {
		return fmt.Errorf("cannot write %s: %v: free some space or choose another --out; %s is unchanged", p, reason(err), st.out)
	}
	return fmt.Errorf("cannot write %s: %v; %s is unchanged", p, reason(err), st.out)
}

// reason is the system's reason for err without the (staged) path, or the
// error itself with the stage's path replaced by the output directory.
func reason(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOSPC:
			return "no space left on device"
		case syscall.EDQUOT:
			return "disk quota exceeded"
		}
		return errno.Error()
	}
	return err.Error()
}

// reword replaces the stage's path in err's message (the runner names the
// files it writes) with the output directory's.
func (st *stage) reword(err error) error {
	msg := strings.ReplaceAll(err.Error(), st.dir, st.out)
	if msg == err.Error() {
		return err
	}
	var ie *InputError
	if errors.As(err, &ie) {
		return &InputError{Msg: msg}
	}
	return &reworded{msg: msg, err: err}
}

type reworded struct {
	msg string
	err error
}

func (e *reworded) Error() string { return e.msg }
func (e *reworded) Unwrap() error { return e.err }
