package metalkern

// The counting build on a kernel whose work is known exactly
// (testdata/counters/probe.metal): testdata/emu/driver.cpp as the runner's
// main, the probe generated with emugen.GenerateCounting, the real
// CMakeLists.txt with -DORCHARD_COUNTERS=ON (orchard-runner-emu-counters).
// The attention kernels' counts are tested through the real runner in
// steps/counters_test.go.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/orchardkit/orchard/metalkern/emugen"
	"github.com/orchardkit/orchard/metalkern/npy"
)

var countersProbe struct {
	once sync.Once
	bin  string
	err  error
}

func countersProbeRunner(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: builds the counting emu runner")
	}
	emuNeedTools(t, "cmake", "g++", "make")
	rt := emuRuntimeDir(t)
	countersProbe.once.Do(func() {
		root := filepath.Join(emuTmpRoot, "counters")
		gen, build := filepath.Join(root, "gen"), filepath.Join(root, "build")
		if countersProbe.err = os.MkdirAll(gen, 0o755); countersProbe.err != nil {
			return
		}
		files, _ := filepath.Glob(filepath.Join("testdata", "counters", "*.metal"))
		for _, f := range files {
			src, err := os.ReadFile(f)
			if err != nil {
				countersProbe.err = err
				return
			}
			code, _, err := emugen.GenerateCounting(f, src, filepath.Join(rt, "include"))
			if err != nil {
				countersProbe.err = err
				return
			}
			if countersProbe.err = os.WriteFile(filepath.Join(gen, emugen.OutputName(f)), code, 0o644); countersProbe.err != nil {
				return
			}
		}
		driver, _ := filepath.Abs(filepath.Join("testdata", "emu", "driver.cpp"))
		argv := []string{"cmake", "-S", rt, "-B", build, "-DORCHARD_BACKEND=emu", "-DORCHARD_GEN_DIR=" + gen,
			"-DORCHARD_RUNNER_SOURCES=" + driver, "-DORCHARD_COUNTERS=ON"}
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			countersProbe.err = fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, emuTail(out, 60))
			return
		}
		if countersProbe.err = emuCMakeBuild(build, "orchard-runner-emu-counters"); countersProbe.err == nil {
			countersProbe.bin = filepath.Join(build, "orchard-runner-emu-counters")
		}
	})
	if countersProbe.err != nil {
		t.Fatal(countersProbe.err)
	}
	return countersProbe.bin
}

type probeCounts struct{ mma, tgBytes, tgTraffic, device, barriers int64 }

func parseProbeCounts(t *testing.T, stdout string) probeCounts {
	t.Helper()
	for _, l := range strings.Split(stdout, "\n") {
		if !strings.HasPrefix(l, "counters ") {
			continue
		}
		var c probeCounts
		if _, err := fmt.Sscanf(l, "counters mma=%d tg_bytes=%d tg_traffic=%d device=%d barriers=%d",
			&c.mma, &c.tgBytes, &c.tgTraffic, &c.device, &c.barriers); err != nil {
			t.Fatalf("counters line %q: %v", l, err)
		}
		return c
	}
	t.Fatalf("the driver printed no counters line:\n%s", stdout)
	return probeCounts{}
}

// probeWant is what probe.metal does with G threadgroups of 128 threads (4
// simdgroups) and n rounds, read off its source: per round a thread makes 2
// device reads, 2 threadgroup writes, 2 threadgroup reads and 2 device writes
// of 4 bytes, and each simdgroup an 8x8 threadgroup load and store (64
// floats each) and one multiply-accumulate, between 3 barriers; once per
// group 16 threadgroup writes of 4 bytes, and per simdgroup an 8x8 device
// load and store and one multiply; group x makes x extra barriers.
func probeWant(groups, n int64) probeCounts {
	const threads, simdgroups, frag = 128, 4, 64 * 4
	return probeCounts{
		mma:       groups * simdgroups * (n + 1),
		tgBytes:   256*4 + 16*4,
		tgTraffic: groups * (n*(threads*2*4*2+simdgroups*frag*2) + 16*4),
		device:    groups * (n*threads*2*4*2 + simdgroups*frag*2),
		barriers:  3*n + groups - 1,
	}
}

func TestCountersProbeExact(t *testing.T) {
	bin := countersProbeRunner(t)
	l := emuNative(bin)
	for _, tc := range []struct {
		groups, n int64
		mode      string
		env       []string
	}{
		{1, 0, "fibers", nil},
		{3, 2, "fibers", nil},
		{3, 2, "threads", nil},
		{5, 3, "fibers", []string{"ORCHARD_EMU_WORKERS=1"}},
		{5, 3, "fibers", []string{"ORCHARD_EMU_WORKERS=3"}},
	} {
		name := fmt.Sprintf("G%d_n%d_%s_%s", tc.groups, tc.n, tc.mode, strings.Join(tc.env, ","))
		t.Run(name, func(t *testing.T) {
			in := make([]float32, tc.groups*256)
			for i := range in {
				in[i] = float32(i%7) / 8
			}
			r := emuRun{kernel: "count_probe", mode: tc.mode, grid: [3]int{int(tc.groups), 1, 1}, tg: [3]int{128, 1, 1},
				in: map[int][]byte{0: npy.Float32Bytes(in)}, out: map[int]int{1: int(tc.groups) * (256 + 256) * 4},
				u32: map[int][]int64{2: {tc.n}}, env: tc.env}
			got := parseProbeCounts(t, l.mustRun(t, r).stdout)
			if want := probeWant(tc.groups, tc.n); got != want {
				t.Fatalf("counters %+v, want %+v", got, want)
			}
		})
	}
}
