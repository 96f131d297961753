package steps

import (
	"strings"
	"testing"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/metalkern/bench"
)

// The performance item: figures only without a threshold; a warning (never
// a failure) naming every case below one.
func TestPerformanceCheck(t *testing.T) {
	rep := bench.Report{Backend: "emu", Device: "cpu (fibers, 2 workers)", TimeSource: "emu", Cases: []bench.Case{
		{Name: "a/f32/fwd", MS: bench.MS{Median: 2}, BaselineMS: 1, Speedup: 0.5, GFlops: 1},
		{Name: "a/f16/fwd", MS: bench.MS{Median: 1}, BaselineMS: 3, Speedup: 3, GFlops: 2},
	}}
	c := performanceCheck(rep, 0)
	if c.ID != CheckPerformance || c.Status != checks.Pass || !strings.Contains(c.Evidence[1], "worst 0.50x (a/f32/fwd: 2.000 ms vs 1.000 ms), best 3.00x (a/f16/fwd)") ||
		!strings.Contains(c.Evidence[0], "not GPU figures") {
		t.Errorf("no threshold: %+v", c)
	}
	c = performanceCheck(rep, 1.5)
	if c.Status != checks.Warn || c.Evidence[0] != "1 of 2 cases below the threshold 1.50x: a/f32/fwd 0.50x" {
		t.Errorf("threshold 1.5: %+v", c)
	}
	c = performanceCheck(rep, 0.4)
	if c.Status != checks.Pass || c.Evidence[0] != "every case at or above the threshold 0.40x" {
		t.Errorf("threshold 0.4: %+v", c)
	}
	if c := performanceCheck(bench.Report{}, 1); c.Status != checks.Warn {
		t.Errorf("no cases: %+v", c)
	}
}
