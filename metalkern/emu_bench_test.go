package metalkern

// Benchmarks of the emu runner next to BenchmarkReferenceForward (the float64
// Go reference): the same shape, B=1 H=1 N=256 D=64, non-causal (float32,
// the goal's case, and float16).
// They build the real runner once (shared with runlog_test.go's full build)
// and report what the runner itself reports: `ms` (runner-ms: the pass's wall
// time on the host, without process start-up or .npy I/O, docs/runtime.md)
// and `gpu_ms` (emu-ms: the emulation's own time of the dispatch, the
// kernel's run only; the worker pool and fiber stacks are set up before it).
// docs/perf.md has the figures and the commands.

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orchardkit/orchard/metalkern/npy"
	"github.com/orchardkit/orchard/metalkern/reference"
)

// emuBenchRunner returns the full runner (every kernel), built once, or the
// runner named by $EMU_BENCH_RUNNER (to compare builds: docs/perf.md).
func emuBenchRunner(b *testing.B) string {
	b.Helper()
	if p := os.Getenv("EMU_BENCH_RUNNER"); p != "" {
		return p
	}
	if testing.Short() {
		b.Skip("-short: building the runner takes about a minute")
	}
	emuNeedTools(b, "cmake", "g++", "make")
	rt := emuRuntimeDir(b)
	runlogFull.once.Do(func() { runlogFull.bin, runlogFull.err = runlogBuildRunner(rt, "full") })
	if runlogFull.err != nil {
		b.Fatal(runlogFull.err)
	}
	return runlogFull.bin
}

// BenchmarkEmuForward: the runner's `ms` and `gpu_ms` for one forward dispatch, fibers
// mode, float32 and float16 inputs (the same values), with 1 worker and with
// the default (one per core).
//
//	go test -run '^$' -bench 'EmuForward|ReferenceForward' -benchtime 20x ./metalkern/ ./metalkern/reference/
func BenchmarkEmuForward(b *testing.B) {
	bin := emuBenchRunner(b)
	s := reference.Shape{B: 1, H: 1, Nq: 256, Nk: 256, D: 64}
	dir := b.TempDir()
	rng := rand.New(rand.NewPCG(1, 1))
	vals := map[string][]float32{}
	for _, name := range []string{"q", "k", "v"} {
		vals[name] = reference.RandNormal(rng, s.QLen())
	}
	for _, dt := range []struct {
		name string
		npy  npy.DType
	}{{"f32", npy.Float32}, {"f16", npy.Float16}} {
		args := []string{"run", "--mode", "fibers", "--out", filepath.Join(dir, "out-"+dt.name)}
		for _, name := range []string{"q", "k", "v"} {
			p := filepath.Join(dir, name+"-"+dt.name+".npy")
			if err := npy.Write(p, &npy.Array{Shape: []int{s.B, s.H, s.Nq, s.D}, DType: dt.npy, Data: vals[name]}); err != nil {
				b.Fatal(err)
			}
			args = append(args, "--"+name, p)
		}
		for _, workers := range []int{1, 0} {
			name := dt.name + "/workers=default"
			a := args
			if workers > 0 {
				name = fmt.Sprintf("%s/workers=%d", dt.name, workers)
				a = append(append([]string{}, args...), "--workers", fmt.Sprint(workers))
			}
			b.Run(name, func(b *testing.B) {
				var sum, sumEmu float64
				lo, loEmu := math.Inf(1), math.Inf(1)
				for b.Loop() {
					st := emuBenchRun(b, bin, a)
					sum += st.MS
					lo = min(lo, st.MS)
					sumEmu += st.GPUMS
					loEmu = min(loEmu, st.GPUMS)
				}
				b.ReportMetric(sum/float64(b.N), "runner-ms/op")
				b.ReportMetric(lo, "min-runner-ms")
				b.ReportMetric(sumEmu/float64(b.N), "emu-ms/op")
				b.ReportMetric(loEmu, "min-emu-ms")
			})
		}
	}
}

// emuBenchRun runs the runner with the ORCHARD_* variables of the caller
// removed (no logs) and returns its statistics.
func emuBenchRun(b *testing.B, bin string, args []string) Stats {
	b.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ORCHARD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("%s: %v\n%s", bin, err, stderr.String())
	}
	var st Stats
	if err := json.Unmarshal(lastJSONLine(out), &st); err != nil {
		b.Fatalf("runner output: %v: %q", err, out)
	}
	if st.TimeSource != "emu" || st.GPUMS <= 0 {
		b.Fatalf("runner output: want time_source emu and gpu_ms > 0, got %q and %v", st.TimeSource, st.GPUMS)
	}
	return st
}
