package steps

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/orchardkit/orchard/metalkern"
)

// Build is what the runtime steps share: the runtime source (embedded or
// ejected), the toolchain found, and the run's choices. The steps pass
// typed outputs forward through it (Shaders.Out, Kernel.Out, …), never
// through string maps.
type Build struct {
	Source    metalkern.Source
	Toolchain *ToolchainStep
	// Race also builds the ThreadSanitizer runner and runs races.
	Race bool
	// Seed for the smoke inputs; SeedSet when the user chose it (--seed),
	// which then joins the smoke step's cache key.
	Seed    uint64
	SeedSet bool
	// EmuMode is the emu launcher mode for the smoke suite ("fibers").
	EmuMode string
	// RunID tags this run's kernel-call log lines.
	RunID string
	// RerunFlags are the user's flags that select this build, already
	// shell-quoted ("--runtime ./rt", "--build-dir /tmp/b", "--backend emu"):
	// Rerun puts them in every hint's command.
	RerunFlags []string
	// RunnerTimeout bounds each runner call (0: DefaultRunnerTimeout); the
	// emu watchdog of the smoke runs is set well inside it.
	RunnerTimeout time.Duration
	// Validate (--validate) runs every runner call of the metal backend
	// with Metal's API and shader validation on (ValidationEnv); on emu it
	// only says that emu's own checks are always on.
	Validate bool
	// Python is the interpreter of the torch steps (--python).
	Python *Python
}

// python is the run's interpreter choice (the default search when unset).
func (b *Build) python() *Python {
	if b.Python == nil {
		b.Python = &Python{}
	}
	return b.Python
}

// ValidationEnv switches Metal's API validation (debug layer) and shader
// validation on; Metal reads them when the device is created (metal-api.md §5).
var ValidationEnv = []string{"MTL_DEBUG_LAYER=1", "MTL_SHADER_VALIDATION=1"}

func (b *Build) runnerTimeout() time.Duration {
	if b == nil || b.RunnerTimeout <= 0 {
		return DefaultRunnerTimeout
	}
	return b.RunnerTimeout
}

// RuntimeRoot is where the runtime sources are on disk: the ejected
// directory, or <build-dir>/runtime for the embedded runtime.
func (b *Build) RuntimeRoot(buildDir string) string {
	if b.Source.Dir != "" {
		return b.Source.Dir
	}
	return filepath.Join(buildDir, "runtime")
}

// SourceID names the runtime source for cache keys and CMake trees:
// "embedded", or the ejected directory's absolute path.
func (b *Build) SourceID() string {
	if b.Source.Dir != "" {
		return b.Source.Dir
	}
	return "embedded"
}

// runnerFile: the runtime files the runner's build reads (everything but
// the PyTorch op library's torch/ and python/, which only the torch steps
// read: editing the pytest suite must not rebuild the runner).
func runnerFile(p string) bool {
	return !strings.HasPrefix(p, "torch/") && !strings.HasPrefix(p, "python/")
}

// sourceFiles hashes each runtime file that filter accepts (nil: all), by
// its slash path relative to the runtime root, for KeyInputs.Files: an edit
// is then explained by the file's name.
func (b *Build) sourceFiles(filter func(string) bool) (map[string]string, error) {
	files, err := b.Source.Files()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, f := range files {
		if filter != nil && !filter(f) {
			continue
		}
		data, err := fs.ReadFile(b.Source.FS, f)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(data)
		out[f] = hex.EncodeToString(sum[:])
	}
	return out, nil
}

// materialize writes the embedded runtime into the build dir (only files
// whose content differs). Every step that reads the sources calls it, so a
// cached earlier step never leaves a later one building stale copies.
func (b *Build) materialize(buildDir string) (string, error) {
	root, err := b.Source.Materialize(b.RuntimeRoot(buildDir))
	if err != nil {
		return "", fmt.Errorf("write the runtime sources: %w", err)
	}
	return root, nil
}
