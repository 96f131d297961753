package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/orchardkit/orchard/checks"
	"github.com/orchardkit/orchard/metalkern"
	"github.com/orchardkit/orchard/metalkern/attn"
	"github.com/orchardkit/orchard/metalkern/bench"
	"github.com/orchardkit/orchard/metalkern/npy"
	"github.com/orchardkit/orchard/metalkern/reference"
	"github.com/orchardkit/orchard/steps"
)

// Flags reach BenchOptions parsed; defaults are the backend's shape set,
// both dtypes and passes, 1 warm-up and 3 repeats.
func TestNewBenchCmdFlags(t *testing.T) {
	capture := func(args ...string) *BenchOptions {
		t.Helper()
		io, _, _ := testIOStreams(nil)
		var got *BenchOptions
		cmd := newBenchCmd(&Factory{IO: io, Global: &GlobalOptions{}}, func(o *BenchOptions) error { got = o; return nil })
		cmd.SetArgs(args)
		if err := cmd.ExecuteContext(context.Background()); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return got
	}
	o := capture()
	if o.Shapes != nil || len(o.DTypes) != 2 || len(o.Passes) != 2 || o.Warmup != 1 || o.Repeat != 3 || o.Counters {
		t.Errorf("defaults: %+v", o)
	}
	o = capture("--shapes", "1x2x16x24x8:causal", "--dtype", "f32", "--pass", "bwd", "--warmup", "0", "--repeat", "2", "--counters", "--seed", "9")
	want := []bench.Shape{{B: 1, H: 2, Nq: 16, Nk: 24, D: 8, Causal: true}}
	if len(o.Shapes) != 1 || o.Shapes[0] != want[0] || o.DTypes[0] != npy.Float32 || o.Passes[0] != "bwd" ||
		o.Warmup != 0 || o.Repeat != 2 || !o.Counters || o.Seed != 9 {
		t.Errorf("parsed: %+v", o)
	}
}

// Each flag's bad value is exit 2 with a message naming it, before any build.
func TestBenchBadFlagsExit2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--shapes", "1x2x16x16"}, `--shapes element "1x2x16x16": want 5 dimensions`},
		{[]string{"--shapes", "1x2x16x16x8,1x2x16x16x512"}, `"1x2x16x16x512": D=512`},
		{[]string{"--shapes", "1x2x16x16x8:full"}, `unknown suffix ":full"`},
		{[]string{"--shapes", ""}, "--shapes is empty"},
		{[]string{"--dtype", "bf16"}, `--dtype element "bf16": want f16 or f32`},
		{[]string{"--pass", "forward"}, `--pass element "forward": want fwd or bwd`},
		{[]string{"--warmup", "-1"}, "--warmup must be in 0..1000, got -1"},
		{[]string{"--repeat", "0"}, "--repeat must be in 1..1000, got 0"},
		{[]string{"--repeat", "x"}, `invalid argument "x" for "--repeat"`},
		{[]string{"--runner-timeout", "0s"}, "--runner-timeout must be positive"},
		{[]string{"--backend", "reference"}, "must be auto, emu or metal"},
	} {
		code, stdout, stderr := runCLI(t, nil, append([]string{"bench", "--build-dir", t.TempDir()}, tc.args...)...)
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 saying %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bench-min-speedup", "0"}, "--bench-min-speedup must be a positive speed-up"},
		{[]string{"--bench-min-speedup", "-2"}, "--bench-min-speedup must be a positive speed-up"},
		{[]string{"--bench-min-speedup", "+Inf"}, "--bench-min-speedup must be a positive speed-up"},
		{[]string{"--bench-min-speedup", "fast"}, `invalid argument "fast"`},
	} {
		code, _, stderr := runCLI(t, nil, append([]string{"rebuild", "--build-dir", t.TempDir()}, tc.args...)...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("rebuild %v: exit %d, stderr %q; want exit 2 saying %q", tc.args, code, stderr, tc.want)
		}
	}
}

// The plain baseline (runner --baseline plain) computes what the float64
// reference computes, in both dtypes and storage modes, causal or not,
// Nq != Nk, and with its passes split across dispatches.
func TestPlainBaselineMatchesReference(t *testing.T) {
	build := sharedBuild(t)
	r := metalkern.Runner{Path: builtRunner(t, build)}
	exec := attn.RunnerExec(0)
	const b, h, nq, nk, d = 2, 2, 37, 45, 24
	s := reference.Shape{B: b, H: h, Nq: nq, Nk: nk, D: d}
	for _, dt := range []npy.DType{npy.Float32, npy.Float16} {
		dir, in := attnFixture(t, b, h, nq, nk, d, dt)
		q, k, v, do := reference.Float64s(in["q"].Data), reference.Float64s(in["k"].Data), reference.Float64s(in["v"].Data), reference.Float64s(in["do"].Data)
		for i, causal := range []bool{false, true} {
			storage := metalkern.Storages[i]
			var env []string
			if causal {
				env = []string{"ORCHARD_DISPATCH_GROUPS=3"}
			}
			out := filepath.Join(dir, "out"+storage)
			st, err := r.Run(context.Background(), exec, metalkern.Request{Q: filepath.Join(dir, "q.npy"), K: filepath.Join(dir, "k.npy"),
				V: filepath.Join(dir, "v.npy"), DO: filepath.Join(dir, "do.npy"), Causal: causal, Out: out, Storage: storage, Baseline: "plain", Env: env})
			if err != nil {
				t.Fatalf("%s causal=%v: %v", dt, causal, err)
			}
			if st.Baseline != "plain" || st.Dispatches["fwd"] < 3 || st.Dispatches["bwd"] < 4 || len(st.Passes) != 7 {
				t.Errorf("%s causal=%v: stats %+v", dt, causal, st)
			}
			if causal && st.Passes[0].Dispatches < 2 {
				t.Errorf("ORCHARD_DISPATCH_GROUPS=3 did not split the scores pass: %+v", st.Passes[0])
			}
			o, lse := reference.Forward(q, k, v, s, causal, reference.DefaultScale(d))
			dq, dk, dv := reference.Backward(q, k, v, o, lse, do, s, causal, reference.DefaultScale(d))
			tol, _ := reference.ToleranceFor(dt)
			for name, ref := range map[string][]float64{"o": o, "lse": lse, "dq": dq, "dk": dk, "dv": dv} {
				a, err := npy.Read(filepath.Join(out, name+".npy"))
				if err != nil {
					t.Fatal(err)
				}
				if e := reference.RelErr(a.Data, ref); !(e <= tol.MaxRelErr) {
					t.Errorf("%s causal=%v %s: %s: rel err %g > %g", dt, causal, storage, name, e, tol.MaxRelErr)
				}
			}
		}
	}
	// The runner refuses another baseline, exit 2 naming the flag.
	dir, _ := attnFixture(t, 1, 1, 4, 4, 8, npy.Float32)
	_, err := r.Run(context.Background(), exec, metalkern.Request{Q: filepath.Join(dir, "q.npy"), K: filepath.Join(dir, "k.npy"),
		V: filepath.Join(dir, "v.npy"), Out: filepath.Join(dir, "out"), Baseline: "naive"})
	var ie *attn.InputError
	if !asInputError(err, &ie) || !strings.Contains(ie.Msg, `--baseline must be plain, got "naive"`) {
		t.Errorf("--baseline naive: %v", err)
	}
}

func asInputError(err error, ie **attn.InputError) bool {
	e, ok := err.(*attn.InputError)
	if ok {
		*ie = e
	}
	return ok
}

// One small bench on the shared build: the piped table, the terminal
// table, the JSON (clean stdout, every case, figures that add up) and the
// JSON's shape against docs/json.md's bench example; then rebuild --bench
// with a threshold nothing meets.
func TestBenchOnEmu(t *testing.T) {
	build := sharedBuild(t)
	args := []string{"bench", "--build-dir", build, "--shapes", "1x1x32x40x16,1x2x24x24x8:causal", "--repeat", "2", "--warmup", "0"}

	t.Run("piped table", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, nil, append(args, "--dtype", "f32")...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		if len(lines) != 5 || lines[0] != "case\tmin_ms\tmedian_ms\tmax_ms\tgflops\tbaseline_ms\tspeedup\ttime_source" {
			t.Fatalf("table:\n%s", stdout)
		}
		for i, name := range []string{"1x1x32x40x16/f32/fwd", "1x1x32x40x16/f32/bwd", "1x2x24x24x8:causal/f32/fwd", "1x2x24x24x8:causal/f32/bwd"} {
			f := strings.Split(lines[i+1], "\t")
			if len(f) != 8 || f[0] != name || f[7] != "emu" || !strings.HasSuffix(f[6], "x") {
				t.Errorf("row %d: %q", i+1, lines[i+1])
			}
		}
	})

	t.Run("terminal table", func(t *testing.T) {
		io, out, errOut := testIOStreams(nil)
		io.OutTTY = true
		if code := run(context.Background(), append(args, "--dtype", "f16", "--pass", "fwd"), io); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		text := out.String()
		if !strings.Contains(text, "times are emulation time on the CPU (time_source=emu), not GPU figures") ||
			!regexp.MustCompile(`(?m)^ +case +min_ms +median_ms +max_ms +gflops +baseline_ms +speedup$`).MatchString(text) ||
			!regexp.MustCompile(`(?m)^ +1x2x24x24x8:causal/f16/fwd( +[0-9.]+){6}x$`).MatchString(text) {
			t.Errorf("terminal table:\n%s", text)
		}
	})

	var rep bench.Report
	t.Run("json", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, nil, append(args, "--json")...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		dec := json.NewDecoder(strings.NewReader(stdout))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rep); err != nil || dec.More() {
			t.Fatalf("stdout is not one bench report (%v):\n%s", err, stdout)
		}
		if rep.Backend != "emu" || rep.TimeSource != "emu" || !strings.HasPrefix(rep.Device, "cpu") || len(rep.Cases) != 8 {
			t.Fatalf("report: %+v", rep)
		}
		for _, c := range rep.Cases {
			s := bench.Shape{B: c.B, H: c.H, Nq: c.Nq, Nk: c.Nk, D: c.D, Causal: c.Causal}
			if c.Name != s.String()+"/"+c.DType+"/"+c.Pass || !(c.MS.Min > 0 && c.MS.Min <= c.MS.Median && c.MS.Median <= c.MS.Max) ||
				!(c.BaselineMS > 0) || c.Counters != nil {
				t.Errorf("case %+v", c)
			}
			if g := s.Flops(c.Pass) / (c.MS.Median * 1e6); !near(c.GFlops, g) || !near(c.Speedup, c.BaselineMS/c.MS.Median) {
				t.Errorf("%s: gflops %g (want %g), speedup %g", c.Name, c.GFlops, g, c.Speedup)
			}
		}
		checkBenchDocExample(t, stdout)
	})

	t.Run("counters", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, nil, "bench", "--build-dir", build, "--shapes", "1x1x64x64x32", "--dtype", "f32",
			"--repeat", "1", "--warmup", "0", "--counters", "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var rep bench.Report
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil || len(rep.Cases) != 2 {
			t.Fatalf("stdout is not a 2-case bench report (%v):\n%s", err, stdout)
		}
		// The ideal matrix work of 1x1x64x64x32 (whole blocks, no padding):
		// forward 2·(64/8)(64/8)(32/8) MMAs, backward 7·… (docs/perf.md
		// "Ideal matrix work"); the kernels do at most half as much again.
		ideal := map[string]int64{"fwd": 2 * 8 * 8 * 4, "bwd": 7 * 8 * 8 * 4}
		for _, c := range rep.Cases {
			k := c.Counters
			if k == nil {
				t.Fatalf("%s: no counters", c.Name)
			}
			if k.SimdgroupMMA < ideal[c.Pass] || 2*k.SimdgroupMMA > 3*ideal[c.Pass] || k.ThreadgroupBytes <= 0 ||
				k.DeviceBytes <= 0 || k.Barriers <= 0 || k.Dispatches < 1 {
				t.Errorf("%s: counters %+v (ideal MMAs %d)", c.Name, *k, ideal[c.Pass])
			}
		}
	})

	t.Run("rebuild --bench below threshold", func(t *testing.T) {
		r, code, stderr := runJSON(t, "rebuild", "--build-dir", build, "--bench-min-speedup", "1e9")
		c := reportCheck(r, steps.CheckPerformance)
		if code != 0 || !r.OK || c.Status != checks.Warn {
			t.Fatalf("exit %d, ok %v, performance %+v\n%s", code, r.OK, c, stderr)
		}
		ev := strings.Join(c.Evidence, "\n")
		if !strings.Contains(ev, "12 of 12 cases below the threshold 1000000000.00x") || !strings.Contains(ev, "emulation time") ||
			!strings.Contains(ev, "1x2x128x128x64:causal/f16/bwd: median") || !strings.Contains(c.Hint, "--bench-min-speedup") {
			t.Errorf("evidence:\n%s\nhint %q", ev, c.Hint)
		}
		if last := r.Checks[len(r.Checks)-1]; last.ID != steps.CheckPerformance {
			t.Errorf("performance is not the last item: %s", last.ID)
		}
	})
}

// near: a is b rounded to 3 decimals.
func near(a, b float64) bool { return math.Abs(a-b) <= 0.0005+1e-12 }

// checkBenchDocExample compares docs/json.md's bench example with a real
// bench report: the same keys with the same types, and every key in the
// bench field table.
func checkBenchDocExample(t *testing.T, real string) {
	t.Helper()
	doc, err := os.ReadFile("../../docs/json.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	i := strings.Index(text, "## orchard bench --json")
	if i < 0 {
		t.Fatal("docs/json.md has no '## orchard bench --json' section")
	}
	text = text[i:]
	m := regexp.MustCompile("(?s)```json\n(.*?)\n```").FindStringSubmatch(text)
	if m == nil {
		t.Fatal("docs/json.md: no ```json block in the bench section")
	}
	var example, got any
	if err := json.Unmarshal([]byte(m[1]), &example); err != nil {
		t.Fatalf("docs/json.md's bench example is not JSON: %v", err)
	}
	if err := json.Unmarshal([]byte(real), &got); err != nil {
		t.Fatal(err)
	}
	ds, err := shape(example)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := shape(got)
	if err != nil {
		t.Fatal(err)
	}
	// The example shows counters (--counters); the real run has none.
	if diff := diffShapes("bench", ds, rs); len(diff) > 0 {
		var other []string
		for _, d := range diff {
			if !strings.Contains(d, "counters") {
				other = append(other, d)
			}
		}
		sort.Strings(other)
		if len(other) > 0 {
			t.Errorf("docs/json.md's bench example does not have a real report's shape:\n  %s", strings.Join(other, "\n  "))
		}
	}
	documented := map[string]bool{}
	for _, f := range regexp.MustCompile("(?m)^\\| `([A-Za-z_]+)` \\|").FindAllStringSubmatch(text, -1) {
		documented[f[1]] = true
	}
	keys := map[string]bool{}
	keysOf(ds, keys)
	keysOf(rs, keys)
	for k := range keys {
		if !documented[k] {
			t.Errorf("bench field %q is not in docs/json.md's bench table", k)
		}
	}
}
