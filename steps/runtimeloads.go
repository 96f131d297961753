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
	info, err := runnerFor(s.Kernel).Info(ctx, execFor(sc, s.B, nil))
	if ctx.Err() != nil {
		return Result{}, ctx.Err()
	}
	if err != nil {
		f := describeRunnerFailure(err, s.B, sc, 0)
		c := checks.Check{ID: "runtime-loads", Title: s.Title(), Status: checks.Fail,
			Evidence: []string{"runner info: " + f.Summary}, Hint: f.Hint}
		for _, l := range f.Tail {
			c.Evidence = append(c.Evidence, "  stderr: "+l)
		}
		return Result{Checks: []checks.Check{c}, Detail: "the runner did not start"}, nil
	}
	s.Out = info
	c := checks.Check{ID: "runtime-loads", Title: s.Title(), Status: checks.Pass, Evidence: []string{
		fmt.Sprintf("backend %s on %s", info.Backend, info.Device),
		fmt.Sprintf("limits: %d threads/threadgroup, %d B threadgroup memory, simd width %d",
			info.Limits.MaxThreadsPerThreadgroup, info.Limits.MaxThreadgroupMemory, info.Limits.SimdWidth),
		fmt.Sprintf("%d kernels, %d dispatched by the host", len(info.Kernels), len(info.HostKernels)),
	}}
	if d := deviceEvidence(info); d != "" {
		c.Evidence = append(c.Evidence, d)
	}
	if t := timingEvidence(info.TimeSource); t != "" {
		c.Evidence = append(c.Evidence, t)
	}
	if s.B.Validate {
		c.Evidence = append(c.Evidence, validationEvidence(sc.Backend))
	}
	var hints []string
	if p := info.DeviceInfo.Problem; p != "" && sc.Backend == BackendMetal {
		c.Status = checks.Fail
		c.Evidence = append(c.Evidence, "the kernels cannot run on this device: "+p)
		hints = append(hints, "run with --backend emu here (it verifies the same kernels on the CPU); the Metal stages need an Apple7+ GPU that is not paravirtual")
	}
	if info.Backend != sc.Backend {
		c.Status = checks.Fail
		c.Evidence = append(c.Evidence, fmt.Sprintf("the runner answered as %q, but %q was requested", info.Backend, sc.Backend))
		hints = append(hints, "rebuild with '"+s.B.Rerun("rebuild", "--force", "--backend", sc.Backend)+"'")
	}
	// What the host may dispatch (select.h) must be in the backend: a
	// misspelt host_name compiles, and fails only when that shape runs.
	if missing := info.Missing(); len(missing) > 0 {
		c.Status = checks.Fail
		c.Evidence = append(c.Evidence, "kernels the host dispatches but the runner lacks: "+strings.Join(missing, ", "))
		if extra := info.Undispatched(); len(extra) > 0 {
			c.Evidence = append(c.Evidence, "kernels the runner has but the host never dispatches: "+strings.Join(extra, ", "))
		}
		hints = append(hints, "each host_name in kernels/*.metal must be a name host/select.h's kernel_name() builds; fix the instantiation's host_name, then rerun '"+s.B.Rerun("rebuild")+"'")
	}
	have := map[string]bool{}
	for _, k := range info.Kernels {
		have[k] = true
	}
	var undeclared []string
	if s.Shaders != nil {
		for _, k := range s.Shaders.Out.Kernels {
			if !have[k] {
				undeclared = append(undeclared, k)
			}
		}
	}
	if len(undeclared) > 0 {
		sort.Strings(undeclared)
		c.Status = checks.Fail
		c.Evidence = append(c.Evidence, "kernels declared in the .metal files but not in the runner: "+strings.Join(undeclared, ", "))
		hints = append(hints, "rebuild with '"+s.B.Rerun("rebuild", "--force")+"'")
	}
	c.Hint = strings.Join(hints, "; ")
	return Result{Checks: []checks.Check{c}, Detail: info.Backend + " on " + info.Device}, nil
}

// deviceEvidence is the runner's device_info in one line ("" from a runner
// that does not report it).
func deviceEvidence(info metalkern.Info) string {
	d := info.DeviceInfo
	if d.Name == "" {
		return ""
	}
	parts := []string{d.Name}
	if d.GPUFamily != "" {
		parts = append(parts, "family "+d.GPUFamily)
	}
	if d.MetalFamily != "" {
		parts = append(parts, d.MetalFamily)
	}
	parts = append(parts, fmt.Sprintf("%d B threadgroup memory", d.MaxThreadgroupMemory),
		fmt.Sprintf("%d threads/threadgroup", d.MaxThreadsPerThreadgroup))
	if d.RecommendedWorkingSet > 0 {
		parts = append(parts, fmt.Sprintf("working set %.1f GiB", float64(d.RecommendedWorkingSet)/(1<<30)))
	}
	if d.UnifiedMemory {
		parts = append(parts, "unified memory")
	}
	if d.Paravirtual {
		parts = append(parts, "paravirtual")
	}
	s := "device: " + strings.Join(parts, ", ")
	if len(d.Devices) > 1 {
		s += " (of " + strings.Join(d.Devices, ", ") + ")"
	}
	return s
}

// timingEvidence says what the runner's gpu_ms/gpu_us measure.
func timingEvidence(source string) string {
	switch source {
	case "gpu":
		return "timing: gpu_us is GPUEndTime − GPUStartTime of each dispatch's command buffer; pipelines are made before anything is timed"
	case "emu":
		return "timing: gpu_us is the emulation's own time of each dispatch (time_source=emu), not a GPU figure"
	}
	return ""
}

// validationEvidence is --validate's line for the backend.
func validationEvidence(backend string) string {
	if backend == BackendMetal {
		return "validation: Metal API and shader validation on for every runner call (" + strings.Join(ValidationEnv, " ") + ")"
	}
	return "validation: --validate turns on Metal's API and shader validation, a Metal feature (not used on " + backend + "); emu's own checks (divergent barriers and simd ops, threadgroup memory and thread limits, unbound buffers, setBytes size, hangs) are always on (docs/emu.md)"
}
