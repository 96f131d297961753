package steps

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/metalkern"
)

// runnerFor returns the runner client for a built kernel step.
func runnerFor(k *KernelStep) metalkern.Runner {
	r := metalkern.Runner{Path: k.Out.Runner}
	if k.Out.Metallib != "" {
		r.Args = []string{"--library", k.Out.Metallib}
	}
	return r
}

// RuntimeLoadsStep starts the runner and asks it what it is: the backend
// must be the one requested and every kernel the shaders declared must be
// loadable. Never cached: it checks the build as it is now.
type RuntimeLoadsStep struct {
	B       *Build
	Shaders *ShadersStep
	Kernel  *KernelStep
	Out     metalkern.Info
}

func (s *RuntimeLoadsStep) Name() string  { return "runtime-loads" }
func (s *RuntimeLoadsStep) Title() string { return "Runtime loads" }

// CheckIDs: one item, the runner's answer.
func (s *RuntimeLoadsStep) CheckIDs(string) []string { return []string{"runtime-loads"} }

func (s *RuntimeLoadsStep) Run(ctx context.Context, sc *Context) (Result, error) {
	info, err := runnerFor(s.Kernel).Info(ctx, execFor(sc, nil))
	if err != nil {
		return Result{}, withHint(err, "the runner did not start; rebuild with 'orchard rebuild --force'")
	}
	s.Out = info
	c := checks.Check{ID: "runtime-loads", Title: s.Title(), Status: checks.Pass, Evidence: []string{
		fmt.Sprintf("backend %s on %s", info.Backend, info.Device),
		fmt.Sprintf("limits: %d threads/threadgroup, %d B threadgroup memory, simd width %d",
			info.Limits.MaxThreadsPerThreadgroup, info.Limits.MaxThreadgroupMemory, info.Limits.SimdWidth),
		fmt.Sprintf("%d kernels", len(info.Kernels)),
	}}
	if info.Backend != sc.Backend {
		c.Status = checks.Fail
		c.Evidence = append(c.Evidence, fmt.Sprintf("the runner answered as %q, but %q was requested", info.Backend, sc.Backend))
		c.Hint = "rebuild with 'orchard rebuild --force --backend " + sc.Backend + "'"
	}
	have := map[string]bool{}
	for _, k := range info.Kernels {
		have[k] = true
	}
	var missing []string
	if s.Shaders != nil {
		for _, k := range s.Shaders.Out.Kernels {
			if !have[k] {
				missing = append(missing, k)
			}
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		c.Status = checks.Fail
		c.Evidence = append(c.Evidence, "kernels declared in the .metal files but not in the runner: "+strings.Join(missing, ", "))
		c.Hint = "rebuild with 'orchard rebuild --force'"
	}
	return Result{Checks: []checks.Check{c}, Detail: info.Backend + " on " + info.Device}, nil
}
