package steps

import (
	"context"
	"errors"
	"time"

	"github.com/orchardkit/orchard/metalkern"
)

// ErrNoMetalRunner: no Metal runner has been built in the build dir yet,
// so the GPU probe asks system_profiler instead (and says nothing of it).
var ErrNoMetalRunner = errors.New("no Metal runner built in this build dir yet")

// MetalRunnerInfo is a Prober.RunnerInfo for a Mac: it asks the Metal runner
// that a kernel step built in buildDir (its stamp, with the runner's hash
// still matching) for its device — what Metal itself reports through
// MTLCopyAllDevices and supportsFamily.
func MetalRunnerInfo(buildDir string) func(context.Context) (metalkern.Info, error) {
	return func(ctx context.Context) (metalkern.Info, error) {
		k := &KernelStep{}
		if err := LoadOutput(buildDir, k.Name(), &k.Out); err != nil || k.Out.Runner == "" {
			return metalkern.Info{}, ErrNoMetalRunner
		}
		return runnerFor(k).Info(ctx, RunnerExec(30*time.Second, nil))
	}
}
