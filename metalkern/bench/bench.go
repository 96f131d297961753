package bench

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/orchardkit/orchard/metalkern"
	"github.com/orchardkit/orchard/metalkern/npy"
	"github.com/orchardkit/orchard/metalkern/reference"
)

// Options says what to time and with what.
type Options struct {
	Runner metalkern.Runner
	Exec   metalkern.Exec
	// Dir holds the inputs and outputs of the runs (created; its contents
	// are replaced).
	Dir    string
	Shapes []Shape
	DTypes []npy.DType
	Passes []string // PassFwd, PassBwd
	// Warmup runs per variant are made and not timed; Repeat are timed.
	Warmup, Repeat int
	// Seed for the random inputs (normal values).
	Seed uint64
	// Counting, when set, is the emu counting runner: one more flash run
	// per shape and dtype gives each case's counters.
	Counting *metalkern.Runner
	// Mode is the emu launcher mode ("" = the runner's default).
	Mode string
	// Env is added to every runner call's environment.
	Env []string
	// Progress, when set, is told before each shape and dtype.
	Progress func(msg string)
}

// MS is a case's times over its repeats, in milliseconds.
type MS struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

// Case is one shape, dtype and pass: its times, its rate and its speed-up
// over the plain baseline.
type Case struct {
	Name   string `json:"name"`
	B      int    `json:"B"`
	H      int    `json:"H"`
	Nq     int    `json:"Nq"`
	Nk     int    `json:"Nk"`
	D      int    `json:"D"`
	DType  string `json:"dtype"`
	Causal bool   `json:"causal"`
	Pass   string `json:"pass"`
	// MS is the device time of the pass's dispatches (time_source).
	MS MS `json:"ms"`
	// GFlops is Shape.Flops / the median time (3 decimals).
	GFlops float64 `json:"gflops"`
	// BaselineMS is the plain baseline's median time of the same pass.
	BaselineMS float64 `json:"baseline_ms"`
	// Speedup is BaselineMS / MS.Median (3 decimals).
	Speedup float64 `json:"speedup"`
	// Counters: only with a counting runner.
	Counters *metalkern.Counters `json:"counters,omitempty"`
}

// Report is a whole bench run.
type Report struct {
	Backend string `json:"backend"`
	Device  string `json:"device"`
	// TimeSource is what the times measure: "gpu" (the GPU's timestamps)
	// or "emu" (the emulation's own time, not a GPU figure).
	TimeSource string `json:"time_source"`
	Warmup     int    `json:"warmup"`
	Repeat     int    `json:"repeat"`
	Cases      []Case `json:"cases"`
}

// Run times every shape × dtype × pass. Each repeat is a separate runner
// process (see docs/perf.md): the runner times each dispatch itself, so
// process start, file I/O and pipeline creation are outside the figures.
func Run(ctx context.Context, o Options) (Report, error) {
	if o.Repeat < 1 {
		return Report{}, fmt.Errorf("repeat must be at least 1, got %d", o.Repeat)
	}
	info, err := o.Runner.Info(ctx, o.Exec)
	if err != nil {
		return Report{}, fmt.Errorf("runner info: %w", err)
	}
	rep := Report{Backend: info.Backend, Device: info.Device, TimeSource: info.TimeSource, Warmup: o.Warmup, Repeat: o.Repeat}
	bwd := false
	for _, p := range o.Passes {
		bwd = bwd || p == PassBwd
	}
	if err := os.RemoveAll(o.Dir); err != nil {
		return rep, err
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x62656e6368))
	for _, s := range o.Shapes {
		for _, dt := range o.DTypes {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			if o.Progress != nil {
				o.Progress(s.String() + " " + DTypeTag(dt))
			}
			cases, err := runShape(ctx, o, rng, s, dt, bwd)
			if err != nil {
				return rep, fmt.Errorf("%s %s: %w", s, DTypeTag(dt), err)
			}
			rep.Cases = append(rep.Cases, cases...)
		}
	}
	return rep, nil
}

// runShape writes one shape's inputs and runs both variants.
func runShape(ctx context.Context, o Options, rng *rand.Rand, s Shape, dt npy.DType, bwd bool) ([]Case, error) {
	dir := filepath.Join(o.Dir, strings.ReplaceAll(s.String(), ":", "-")+"-"+DTypeTag(dt))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	rs := reference.Shape{B: s.B, H: s.H, Nq: s.Nq, Nk: s.Nk, D: s.D}
	inputs := []struct {
		name  string
		shape []int
		n     int
	}{{"q", []int{s.B, s.H, s.Nq, s.D}, rs.QLen()}, {"k", []int{s.B, s.H, s.Nk, s.D}, rs.KVLen()},
		{"v", []int{s.B, s.H, s.Nk, s.D}, rs.KVLen()}, {"do", []int{s.B, s.H, s.Nq, s.D}, rs.QLen()}}
	for _, in := range inputs {
		if in.name == "do" && !bwd {
			continue
		}
		a := &npy.Array{Shape: in.shape, DType: dt, Data: reference.RandNormal(rng, in.n)}
		if err := npy.Write(filepath.Join(dir, in.name+".npy"), a); err != nil {
			return nil, err
		}
	}
	req := metalkern.Request{Q: filepath.Join(dir, "q.npy"), K: filepath.Join(dir, "k.npy"), V: filepath.Join(dir, "v.npy"),
		Causal: s.Causal, Out: filepath.Join(dir, "out"), Mode: o.Mode, Env: o.Env}
	if bwd {
		req.DO = filepath.Join(dir, "do.npy")
	}
	flash, err := times(ctx, o, o.Runner, req, "")
	if err != nil {
		return nil, err
	}
	plain, err := times(ctx, o, o.Runner, req, "plain")
	if err != nil {
		return nil, fmt.Errorf("plain baseline: %w", err)
	}
	var counted metalkern.Stats
	if o.Counting != nil {
		if counted, err = o.Counting.Run(ctx, o.Exec, req); err != nil {
			return nil, fmt.Errorf("counting runner: %w", err)
		}
	}
	var out []Case
	for _, pass := range o.Passes {
		c := Case{Name: s.String() + "/" + DTypeTag(dt) + "/" + pass, B: s.B, H: s.H, Nq: s.Nq, Nk: s.Nk, D: s.D,
			DType: DTypeTag(dt), Causal: s.Causal, Pass: pass, MS: summarize(flash[pass])}
		c.BaselineMS = summarize(plain[pass]).Median
		if c.MS.Median > 0 {
			c.GFlops = round3(s.Flops(pass) / (c.MS.Median * 1e6))
			c.Speedup = round3(c.BaselineMS / c.MS.Median)
		}
		if o.Counting != nil {
			if c.Counters, err = sumCounters(counted, pass); err != nil {
				return nil, err
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// times runs req Warmup+Repeat times and returns each timed run's device
// milliseconds per pass kind (fwd: the passes named fwd*, bwd: bwd*).
func times(ctx context.Context, o Options, r metalkern.Runner, req metalkern.Request, baseline string) (map[string][]float64, error) {
	req.Baseline = baseline
	out := map[string][]float64{}
	for i := 0; i < o.Warmup+o.Repeat; i++ {
		st, err := r.Run(ctx, o.Exec, req)
		if err != nil {
			return nil, err
		}
		if st.Baseline != baseline {
			return nil, fmt.Errorf("the runner ran %q, not the %q asked for: rebuild the runtime ('orchard rebuild')", orFlash(st.Baseline), orFlash(baseline))
		}
		if i < o.Warmup {
			continue
		}
		for _, pass := range []string{PassFwd, PassBwd} {
			ms, n := 0.0, 0
			for _, p := range st.Passes {
				if strings.HasPrefix(p.Pass, pass) {
					ms += p.GPUMS
					n++
				}
			}
			if n > 0 {
				out[pass] = append(out[pass], ms)
			}
		}
	}
	return out, nil
}

func orFlash(b string) string {
	if b == "" {
		return "flash"
	}
	return b
}

// sumCounters adds up the counters of the passes of one kind.
func sumCounters(st metalkern.Stats, pass string) (*metalkern.Counters, error) {
	var c metalkern.Counters
	n := 0
	for _, p := range st.Passes {
		if !strings.HasPrefix(p.Pass, pass) {
			continue
		}
		if p.Counters == nil {
			return nil, fmt.Errorf("the counting runner reported no counters for pass %s: rebuild it", p.Pass)
		}
		c.SimdgroupMMA += p.Counters.SimdgroupMMA
		c.ThreadgroupBytes = max(c.ThreadgroupBytes, p.Counters.ThreadgroupBytes)
		c.ThreadgroupTrafficBytes += p.Counters.ThreadgroupTrafficBytes
		c.DeviceBytes += p.Counters.DeviceBytes
		c.Barriers += p.Counters.Barriers
		c.Dispatches += p.Counters.Dispatches
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("the counting runner ran no %s pass", pass)
	}
	return &c, nil
}

// round3 rounds to 3 decimals (the runner's times have 3).
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// summarize is min, median and max of xs (zero when empty).
func summarize(xs []float64) MS {
	if len(xs) == 0 {
		return MS{}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return MS{Min: s[0], Median: med, Max: s[len(s)-1]}
}
