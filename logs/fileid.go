package logs

import (
	"os"
	"syscall"
)

// fileID identifies a file across renames: device and inode.
type fileID struct{ dev, ino uint64 }

// fileState is what a stat says about a file, for change detection.
type fileState struct {
	id    fileID
	size  int64
	nlink uint64
	reg   bool // a regular file
}

func stateOf(fi os.FileInfo) fileState {
	st := fileState{size: fi.Size(), reg: fi.Mode().IsRegular(), nlink: 1}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.id = fileID{dev: uint64(sys.Dev), ino: uint64(sys.Ino)}
		st.nlink = uint64(sys.Nlink)
	}
	return st
}

func statID(fi os.FileInfo) fileID { return stateOf(fi).id }

// fdID is the identity of an open file (zero if it cannot be stat'ed).
func fdID(f *os.File) fileID {
	fi, err := f.Stat()
	if err != nil {
		return fileID{}
	}
	return statID(fi)
}
