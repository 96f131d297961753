package steps

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/metalkern"
	"github.com/orchardkit/orchard/metalkern/bench"
	"github.com/orchardkit/orchard/metalkern/npy"
)

// CountingRunner is the emu counting runner for `orchard bench --counters`:
// CountersRunner builds it (cached, in <build-dir>/counters, always on emu,
// apart from the runner the smoke suite runs) with the engine options o.
func CountingRunner(ctx context.Context, o Options, b *Build) (metalkern.Runner, error) {
	path, _, err := CountersRunner(ctx, o, b)
	if err != nil {
		return metalkern.Runner{}, err
	}
	return metalkern.Runner{Path: path}, nil
}

// PerformanceStep is rebuild --bench: the bench's default shapes (both
// dtypes, fwd and bwd) timed against the plain baseline, as one checklist
// item. Never a failure: below MinSpeedup it is a warning, since timings
// depend on the machine (and on emu measure the emulation, not a GPU).
// Never cached: it measures the machine as it is now.
type PerformanceStep struct {
	B      *Build
	Kernel *KernelStep
	// MinSpeedup: the item warns when any case's speed-up over the plain
	// baseline is below it; 0 sets no threshold (the item reports figures).
	MinSpeedup float64
	// Shapes to time (nil: bench.DefaultShapes of the backend); Repeat timed runs per
	// variant after one warm-up (0: 3).
	Shapes []bench.Shape
	Repeat int
	Out    bench.Report
}

func (s *PerformanceStep) Name() string  { return "performance" }
func (s *PerformanceStep) Title() string { return "Performance" }

// CheckIDs: one item.
func (s *PerformanceStep) CheckIDs(string) []string { return []string{CheckPerformance} }

func (s *PerformanceStep) Run(ctx context.Context, sc *Context) (Result, error) {
	shapes := s.Shapes
	if shapes == nil {
		shapes = bench.DefaultShapes(sc.Backend)
	}
	repeat := s.Repeat
	if repeat <= 0 {
		repeat = 3
	}
	rep, err := bench.Run(ctx, bench.Options{
		Runner: runnerFor(s.Kernel), Exec: execFor(sc, s.B, nil), Dir: filepath.Join(sc.BuildDir, "bench"),
		Shapes: shapes, DTypes: []npy.DType{npy.Float32, npy.Float16}, Passes: []string{bench.PassFwd, bench.PassBwd},
		Warmup: 1, Repeat: repeat, Seed: s.B.Seed, Mode: s.B.EmuMode,
		Progress: func(msg string) { sc.Progress("bench " + msg) },
	})
	if ctx.Err() != nil {
		return Result{}, ctx.Err()
	}
	if err != nil {
		c := checks.Check{ID: CheckPerformance, Title: s.Title(), Status: checks.Warn,
			Evidence: []string{"the bench could not run: " + err.Error()},
			Hint:     "run '" + s.B.Rerun("bench") + "' to see it fail on its own"}
		return Result{Checks: []checks.Check{c}, Detail: "bench failed"}, nil
	}
	s.Out = rep
	fmt.Fprintln(sc.Log, "bench:")
	if err := bench.WriteTable(sc.Log, rep, true); err != nil {
		return Result{}, err
	}
	c := performanceCheck(rep, s.MinSpeedup)
	if c.Status == checks.Warn {
		c.Hint = "the speed-up threshold is --bench-min-speedup; compare with '" + s.B.Rerun("bench") + "' (more repeats: --repeat)"
	}
	return Result{Checks: []checks.Check{c}, Detail: fmt.Sprintf("%d cases", len(rep.Cases))}, nil
}

// performanceCheck is the item for a report: the worst and best speed-up
// with their cases, the median rate, and below min (when min > 0) a warning
// naming every case under it.
func performanceCheck(rep bench.Report, min float64) checks.Check {
	c := checks.Check{ID: CheckPerformance, Title: "Performance", Status: checks.Pass}
	if len(rep.Cases) == 0 {
		c.Status = checks.Warn
		c.Evidence = []string{"no cases ran"}
		return c
	}
	cs := append([]bench.Case(nil), rep.Cases...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].Speedup < cs[j].Speedup })
	worst, best := cs[0], cs[len(cs)-1]
	c.Evidence = []string{
		fmt.Sprintf("%d cases on %s (%s); %s", len(cs), rep.Device, rep.Backend, bench.TimeLabel(rep.TimeSource)),
		fmt.Sprintf("speed-up over plain attention: worst %.2fx (%s: %.3f ms vs %.3f ms), best %.2fx (%s)",
			worst.Speedup, worst.Name, worst.MS.Median, worst.BaselineMS, best.Speedup, best.Name),
	}
	for _, k := range rep.Cases {
		c.Evidence = append(c.Evidence, fmt.Sprintf("%s: median %.3f ms, %.2f GFLOP/s, %.2fx", k.Name, k.MS.Median, k.GFlops, k.Speedup))
	}
	if min > 0 {
		var below []string
		for _, k := range cs {
			if k.Speedup < min {
				below = append(below, fmt.Sprintf("%s %.2fx", k.Name, k.Speedup))
			}
		}
		if len(below) > 0 {
			c.Status = checks.Warn
			c.Evidence = append([]string{fmt.Sprintf("%d of %d cases below the threshold %.2fx: %s", len(below), len(cs), min, strings.Join(below, ", "))}, c.Evidence...)
		} else {
			c.Evidence = append([]string{fmt.Sprintf("every case at or above the threshold %.2fx", min)}, c.Evidence...)
		}
	}
	return c
}
