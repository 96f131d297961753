package steps

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orchardkit/orchard/metalkern"
	"github.com/orchardkit/orchard/metalkern/npy"
)

// -counters-table BxHxNqxNkxD,... also runs these shapes (f32 and f16, checked
// like the others) and logs the markdown table of docs/perf.md "Work counters":
//
//	go test ./steps -run TestCountersRunnerAttention -v -args -counters-table 1x1x256x256x64,1x1x256x256x128,1x1x256x256x256
var countersTable = flag.String("counters-table", "", "shapes BxHxNqxNkxD,... for the docs/perf.md work-counter table")

func TestCountersStepCommands(t *testing.T) {
	b := &Build{Source: metalkern.Embedded(), Toolchain: &ToolchainStep{}}
	b.Toolchain.Out.CMakePath, b.Toolchain.Out.CXXPath = "/usr/bin/cmake", "/usr/bin/g++"
	sc := &Context{BuildDir: "/b", Backend: BackendMetal}
	s := &CountersStep{B: b}
	cfg := strings.Join(s.configure(sc), " ")
	for _, w := range []string{"-DORCHARD_BACKEND=emu", "-DORCHARD_COUNTERS=ON", "-DORCHARD_GEN_DIR=/b/counters/gen",
		"-B /b/counters/cmake/"} {
		if !strings.Contains(cfg, w) {
			t.Errorf("configure %q lacks %q", cfg, w)
		}
	}
	if args := s.buildArgs(sc); args[len(args)-1] != CountersRunnerName {
		t.Errorf("build %v", args)
	}
	// Its own tree: never the kernel step's.
	k := &KernelStep{B: b}
	if s.tree(sc).Dir == k.cmakeDir(sc) || !strings.HasPrefix(s.outputs(sc).Runner, "/b/counters/") {
		t.Errorf("tree %s, kernel tree %s", s.tree(sc).Dir, k.cmakeDir(sc))
	}
}

// countersCase is one run of the counting runner and what its passes should count.
type countersCase struct {
	B, H, Nq, Nk, D int
	dtype           npy.DType
	causal          bool
}

func (c countersCase) String() string {
	s := fmt.Sprintf("%dx%dx%dx%dx%d_%s", c.B, c.H, c.Nq, c.Nk, c.D, c.dtype)
	if c.causal {
		s += "_causal"
	}
	return s
}

func writeCountersInputs(t *testing.T, dir string, c countersCase) metalkern.Request {
	t.Helper()
	req := metalkern.Request{Out: filepath.Join(dir, "out"), Causal: c.causal}
	if err := os.MkdirAll(req.Out, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"q", "k", "v", "do"} {
		n := c.Nq
		if name == "k" || name == "v" {
			n = c.Nk
		}
		a := &npy.Array{Shape: []int{c.B, c.H, n, c.D}, DType: c.dtype, Data: make([]float32, c.B*c.H*n*c.D)}
		for j := range a.Data {
			a.Data[j] = float32((j*7+i*3)%17-8) / 16
		}
		p := filepath.Join(dir, name+".npy")
		if err := npy.Write(p, a); err != nil {
			t.Fatal(err)
		}
		switch name {
		case "q":
			req.Q = p
		case "k":
			req.K = p
		case "v":
			req.V = p
		case "do":
			req.DO = p
		}
	}
	return req
}

var tileRE = regexp.MustCompile(`_bq(\d+)_bk(\d+)_bd(\d+)$`)

// tiles reads (bq, bk, bd) off a kernel name (select.h kernel_name).
func tiles(t *testing.T, kernel string) (bq, bk, bd int) {
	t.Helper()
	m := tileRE.FindStringSubmatch(kernel)
	if m == nil {
		t.Fatalf("kernel name %q has no tiles", kernel)
	}
	bq, _ = strconv.Atoi(m[1])
	bk, _ = strconv.Atoi(m[2])
	bd, _ = strconv.Atoi(m[3])
	return
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// wantCounters derives each pass's counts from the kernels' loop structure
// (kernels/attn_fwd.metal, attn_bwd.metal, mma.h, loader.h), per (batch,
// head), for non-causal shapes whose Nq and Nk are multiples of 32 and D of
// the kernel's bd (so no tile is partial):
//   - every kernel runs 4 simdgroups, one 8-row strip each, with nb = bd/8
//     fragments per strip row;
//   - fwd, per K block of bk rows: S = Q K^T is (bk/8)·nb MMAs, the
//     diag(alpha) rescale nb, O += P V (bk/8)·nb; then one more rescale by
//     1/l (nb);
//   - dQ, per K block: S and dP (2·(bk/8)·nb), dQ += dS K ((bk/8)·nb);
//   - dK/dV, per Q block of bq rows: S^T and dP^T (2·(bq/8)·nb), dV and dK
//     (2·(bq/8)·nb);
//   - barriers: load_strip_frags / store_strip_frags make 2 per staging round
//     plus 1 (rounds = 32 / min(capacity, 32)); each block 4; fwd 2 more
//     (zeroing the diagonals, the 1/l diagonal), dQ/dK/dV 1 (zeros);
//   - device bytes: each tensor element read or written once per threadgroup
//     that loads it (K and V by every Q block in fwd/dQ, Q and dO by every K
//     block in dK/dV), LSE/Delta as the kernels index them;
//   - threadgroup traffic: each pass's tile writes, fragment loads and
//     stores and scalar score accesses, itemised at each case below.
//
// Causal shapes: MMAs and barriers from the visited blocks; the rest is
// checked for determinism only.
func wantCounters(t *testing.T, c countersCase, p metalkern.Pass) metalkern.Counters {
	t.Helper()
	bh := c.B * c.H
	es := c.dtype.Size()
	w := metalkern.Counters{Dispatches: int64(p.Dispatches)}
	rounds := func(capacity int) int { return 32 / min(capacity, 32) }
	switch p.Pass {
	case "fwd":
		bq, bk, bd := tiles(t, p.Kernel)
		nb, groups, kb := bd/8, ceilDiv(c.Nq, bq), ceilDiv(c.Nk, bk)
		if c.causal { // group g visits the K blocks below min(Nk, (g+1)·bq)
			for g := 0; g < groups; g++ {
				w.SimdgroupMMA += int64(bh * 4 * (ceilDiv(min(c.Nk, (g+1)*bq), bk)*(2*(bk/8)*nb+nb) + nb))
			}
			w.Barriers = int64(2 + 2*(2*rounds(bk)+1) + 4*ceilDiv(min(c.Nk, groups*bq), bk))
			return w
		}
		w.SimdgroupMMA = int64(bh * groups * 4 * (kb*(2*(bk/8)*nb+nb) + nb))
		w.ThreadgroupBytes = int64(4 * (bk*bd + bq*bk + 4*64))
		r := rounds(bk)
		w.Barriers = int64(2 + 2*(2*r+1) + 4*kb)
		w.DeviceBytes = int64(bh * (es*(2*c.Nq*c.D+2*groups*c.Nk*c.D) + 4*c.Nq))
		// Threadgroup traffic per group (float tiles, 4 bytes an element;
		// an 8x8 fragment load or store is 256 bytes): zeroing the diagonals
		// and the zero fragment; the Q strip staged (load_tile writes
		// 32·bd, each simdgroup loads nb fragments); per K block the K and V
		// tiles written (bk·bd each), S = Q K^T ((bk/8)·nb fragment loads
		// and bk/8 stores per simdgroup), the softmax (every lane reads and
		// writes each of its bk/4 scores twice, 8 diagonal entries per
		// simdgroup), the rescale's diagonal load, P V ((bk/8)·(1 + nb)
		// loads); then the 1/l diagonal (32 writes, 4 loads), nb stores per
		// simdgroup and store_tile's 32·D reads.
		perBlock := 4*bk*bd + 4*((bk/8)*nb+bk/8)*256 + 4*bk*bd + 128*(bk/4)*4*4 + 32*4 + 4*256 + 4*(bk/8)*(1+nb)*256
		perGroup := 64*4*4 + 4*256 + 32*bd*4 + 4*nb*256 + kb*perBlock + 32*4 + 4*256 + 4*nb*256 + 32*c.D*4
		w.ThreadgroupTrafficBytes = int64(bh * groups * perGroup)
	case "bwd_pre":
		w.DeviceBytes = int64(bh * (es*2*c.Nq*c.D + 4*c.Nq))
		w.ThreadgroupTrafficBytes = 0
	case "bwd_dq":
		bq, bk, bd := tiles(t, p.Kernel)
		nb, groups, kb := bd/8, ceilDiv(c.Nq, bq), ceilDiv(c.Nk, bk)
		if c.causal {
			for g := 0; g < groups; g++ {
				w.SimdgroupMMA += int64(bh * 4 * ceilDiv(min(c.Nk, (g+1)*bq), bk) * 3 * (bk / 8) * nb)
			}
			w.Barriers = int64(1 + 3*(2*rounds(2*bk)+1) + 4*ceilDiv(min(c.Nk, groups*bq), bk))
			return w
		}
		w.SimdgroupMMA = int64(bh * groups * 4 * kb * 3 * (bk / 8) * nb)
		w.ThreadgroupBytes = int64(4 * (2*bk*bd + 2*bq*bk + 64))
		r := rounds(2 * bk)
		w.Barriers = int64(1 + 3*(2*r+1) + 4*kb)
		// Every lane reads its row's LSE and Delta: 4 lanes x 8 bytes per row.
		w.DeviceBytes = int64(bh * (es*(3*c.Nq*c.D+2*groups*c.Nk*c.D) + 32*c.Nq))
		// Per group: the zeros (64 writes, 4 fragment loads); Q and dO staged
		// (32·bd writes and nb fragment loads per simdgroup each); per K block
		// the K and V tiles, S and dP (as in fwd), dq_scores (every lane reads
		// S and dP and writes dS for each of its bk/4 columns), dQ += dS K; dQ
		// stored (nb fragment stores per simdgroup, 32·D reads).
		stage := 32*bd*4 + 4*nb*256
		abt := 4 * ((bk/8)*nb + bk/8) * 256
		perBlock := 2*bk*bd*4 + 2*abt + 128*(bk/4)*3*4 + 4*(bk/8)*(1+nb)*256
		w.ThreadgroupTrafficBytes = int64(bh * groups * (64*4 + 4*256 + 2*stage + kb*perBlock + 4*nb*256 + 32*c.D*4))
	case "bwd_dkv":
		bq, bk, bd := tiles(t, p.Kernel)
		nb, groups, qb := bd/8, ceilDiv(c.Nk, bk), ceilDiv(c.Nq, bq)
		if c.causal { // group g starts at the Q block holding row g·bk
			maxQB := 0
			for g := 0; g < groups; g++ {
				n := ceilDiv(c.Nq-(g*bk/bq)*bq, bq)
				w.SimdgroupMMA += int64(bh * 4 * n * 4 * (bq / 8) * nb)
				maxQB = max(maxQB, n)
			}
			w.Barriers = int64(1 + 4*(2*rounds(2*bq)+1) + 4*maxQB)
			return w
		}
		w.SimdgroupMMA = int64(bh * groups * 4 * qb * 4 * (bq / 8) * nb)
		w.ThreadgroupBytes = int64(4 * (2*bq*bd + 2*bk*bq + 2*bq + 64))
		r := rounds(2 * bq)
		w.Barriers = int64(1 + 4*(2*r+1) + 4*qb)
		w.DeviceBytes = int64(bh * (es*(4*c.Nk*c.D+2*groups*c.Nq*c.D) + 8*groups*c.Nq))
		// Per group: the zeros; K and V staged; per Q block the Q and dO
		// tiles, bq LSE and Delta writes, S^T and dP^T, dkv_scores (every
		// lane reads S^T, its LSE, dP^T and Delta and writes P^T and dS^T for
		// each of its bq/4 columns), dV and dK; dV and dK stored.
		stage := 32*bd*4 + 4*nb*256
		abt := 4 * ((bq/8)*nb + bq/8) * 256
		perBlock := 2*bq*bd*4 + 2*bq*4 + 2*abt + 128*(bq/4)*6*4 + 2*4*(bq/8)*(1+nb)*256
		w.ThreadgroupTrafficBytes = int64(bh * groups * (64*4 + 4*256 + 2*stage + qb*perBlock + 2*(4*nb*256+32*c.D*4)))
	default:
		t.Fatalf("unknown pass %q", p.Pass)
	}
	return w
}

// The real attention kernels on the counting runner that CountersRunner
// builds from the embedded runtime: every count equals what the kernels'
// loop structure gives, the same in both launcher modes, with any number of
// workers and however the grid is split; the forward and backward MMAs
// against the ideal 2·(Nq/8)(Nk/8)(D/8) and 7·(Nq/8)(Nk/8)(D/8) per head.
func TestCountersRunnerAttention(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the counting runner (-short)")
	}
	for _, tool := range []string{"cmake", "g++"} {
		if _, err := osexec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: the counting runner cannot be built", tool)
		}
	}
	getenv := func(k string) string {
		if strings.HasPrefix(k, "ORCHARD_") {
			return ""
		}
		return os.Getenv(k)
	}
	dir := t.TempDir()
	// An ejected runtime: the last check edits it.
	rt := filepath.Join(dir, "runtime")
	if _, err := metalkern.Embedded().Eject(rt, false); err != nil {
		t.Fatal(err)
	}
	src, err := metalkern.FromDir(rt)
	if err != nil {
		t.Fatal(err)
	}
	b := &Build{Source: src, Toolchain: &ToolchainStep{Prober: NewProber(getenv)}}
	ctx := context.Background()
	opts := Options{BuildDir: filepath.Join(dir, "build"), Who: "counters test", Getenv: getenv}
	bin, run, err := CountersRunner(ctx, opts, b)
	if err != nil {
		t.Fatalf("%v: %+v", err, run)
	}
	// A second call reuses the stamp: no rebuild.
	start := time.Now()
	b2 := &Build{Source: src, Toolchain: &ToolchainStep{Prober: NewProber(getenv)}}
	bin2, _, err := CountersRunner(ctx, opts, b2)
	if err != nil || bin2 != bin {
		t.Fatalf("second call: %q %v (first %q)", bin2, err, bin)
	}
	t.Logf("cached CountersRunner: %v", time.Since(start))

	r := metalkern.Runner{Path: bin}
	ex := RunnerExec(2*time.Minute, nil)
	cases := []countersCase{
		{1, 2, 64, 96, 64, npy.Float32, false},
		{1, 1, 64, 64, 64, npy.Float16, false},
		{1, 1, 32, 64, 128, npy.Float32, false},
		{2, 1, 32, 32, 256, npy.Float16, false},
		{1, 1, 32, 32, 32, npy.Float32, false},
		{1, 1, 96, 80, 128, npy.Float32, true},
	}
	var table []string
	variants := true
	if *countersTable != "" {
		for _, sh := range strings.Split(*countersTable, ",") {
			var c countersCase
			if _, err := fmt.Sscanf(sh, "%dx%dx%dx%dx%d", &c.B, &c.H, &c.Nq, &c.Nk, &c.D); err != nil {
				t.Fatalf("-counters-table %q: %v", sh, err)
			}
			for _, dt := range []npy.DType{npy.Float32, npy.Float16} {
				c.dtype = dt
				cases = append(cases, c)
			}
		}
	}
	for i, c := range cases {
		variants = i < 6 // the table's shapes run once
		t.Run(c.String(), func(t *testing.T) {
			req := writeCountersInputs(t, t.TempDir(), c)
			st, err := r.Run(ctx, ex, req)
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Passes) != 4 {
				t.Fatalf("passes %+v", st.Passes)
			}
			var fwdMMA, bwdMMA int64
			for _, p := range st.Passes {
				if p.Counters == nil {
					t.Fatalf("pass %s has no counters", p.Pass)
				}
				want := wantCounters(t, c, p)
				got := *p.Counters
				if c.causal && p.Pass != "bwd_pre" { // MMAs and barriers derived; the rest checked for determinism
					want.ThreadgroupBytes, want.ThreadgroupTrafficBytes, want.DeviceBytes =
						got.ThreadgroupBytes, got.ThreadgroupTrafficBytes, got.DeviceBytes
				}
				if got != want {
					t.Errorf("%s (%s): counters %+v, want %+v", p.Pass, p.Kernel, got, want)
				}
				switch p.Pass {
				case "fwd":
					fwdMMA = got.SimdgroupMMA
				case "bwd_dq", "bwd_dkv":
					bwdMMA += got.SimdgroupMMA
				}
			}
			ideal := int64(c.B*c.H) * int64(c.Nq/8) * int64(c.Nk/8) * int64(c.D/8)
			t.Logf("fwd MMAs %d = %.4f x ideal, bwd %d = %.4f x ideal", fwdMMA, float64(fwdMMA)/float64(2*ideal),
				bwdMMA, float64(bwdMMA)/float64(7*ideal))
			if !c.causal && (fwdMMA < 2*ideal || bwdMMA < 7*ideal) { // no kernel can do less than the ideal
				t.Errorf("below the ideal: fwd %d (ideal %d), bwd %d (ideal %d)", fwdMMA, 2*ideal, bwdMMA, 7*ideal)
			}
			table = append(table, tableRows(c, st.Passes, ideal)...)
			if !variants {
				return
			}
			// The same counts in threads mode, with one worker, and split into
			// one threadgroup per dispatch (only "dispatches" differs).
			for _, v := range []struct {
				mode string
				env  []string
			}{{"threads", nil}, {"fibers", []string{"ORCHARD_EMU_WORKERS=1"}}, {"fibers", []string{"ORCHARD_DISPATCH_GROUPS=1"}}} {
				req2 := req
				req2.Mode, req2.Env = v.mode, v.env
				st2, err := r.Run(ctx, ex, req2)
				if err != nil {
					t.Fatal(err)
				}
				for i, p := range st2.Passes {
					got, first := *p.Counters, *st.Passes[i].Counters
					got.Dispatches, first.Dispatches = 0, 0
					if got != first {
						t.Errorf("%s %v: %s counters %+v, first run %+v", v.mode, v.env, p.Pass, got, first)
					}
					if slices.Contains(v.env, "ORCHARD_DISPATCH_GROUPS=1") &&
						int64(p.Dispatches) != int64(p.Grid[0]*p.Grid[1]*p.Grid[2]) {
						t.Errorf("%s: %d dispatches for grid %v", p.Pass, p.Dispatches, p.Grid)
					}
				}
			}
		})
	}
	// The kernel's declared threadgroup memory must be select.h's figure:
	// a host formula that disagrees fails the counting run, naming both.
	sel := filepath.Join(rt, "host", "select.h")
	text, err := os.ReadFile(sel)
	if err != nil {
		t.Fatal(err)
	}
	const anchor = "return 4u * size_t(t.bk * t.bd + t.bq * t.bk + 4 * 64);"
	if !strings.Contains(string(text), anchor) {
		t.Fatalf("select.h has no %q", anchor)
	}
	if err := os.WriteFile(sel, []byte(strings.Replace(string(text), anchor,
		"return 4u * size_t(t.bk * t.bd + t.bq * t.bk + 4 * 64 + 1);", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	b3 := &Build{Source: src, Toolchain: &ToolchainStep{Prober: NewProber(getenv)}}
	bin3, _, err := CountersRunner(ctx, opts, b3)
	if err != nil {
		t.Fatal(err)
	}
	c := cases[1]
	_, err = metalkern.Runner{Path: bin3}.Run(ctx, ex, writeCountersInputs(t, t.TempDir(), c))
	var ee *ExecError
	if !errors.As(err, &ee) || !strings.Contains(ee.LastLine(), "kernel attn_fwd_f16_bq32_bk32_bd64 declares 13312 bytes of "+
		"threadgroup memory but select.h's threadgroup_bytes() says 13316: make them agree") {
		t.Fatalf("mismatched select.h: %v", err)
	}
	if *countersTable != "" {
		t.Logf("\n| shape | dtype | pass | kernel | simdgroup_mma | x ideal | threadgroup_bytes | threadgroup_traffic_bytes | traffic / output element | device_bytes | barriers | dispatches |\n"+
			"|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n%s", strings.Join(table, "\n"))
	}
}

// tableRows are a case's lines of the docs/perf.md table: each pass, then
// the backward's total against the seven-product ideal.
func tableRows(c countersCase, passes []metalkern.Pass, ideal int64) []string {
	shape := fmt.Sprintf("%dx%dx%dx%dx%d", c.B, c.H, c.Nq, c.Nk, c.D)
	dt := map[npy.DType]string{npy.Float32: "f32", npy.Float16: "f16"}[c.dtype]
	var rows []string
	var bwd int64
	for _, p := range passes {
		w := *p.Counters
		ratio, out := "", int64(c.B*c.H*c.Nq*c.D)
		switch p.Pass {
		case "fwd":
			ratio = fmt.Sprintf("%.3f", float64(w.SimdgroupMMA)/float64(2*ideal))
		case "bwd_dkv":
			out = int64(2 * c.B * c.H * c.Nk * c.D)
			fallthrough
		case "bwd_dq":
			bwd += w.SimdgroupMMA
		case "bwd_pre":
			out = int64(c.B * c.H * c.Nq)
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %d | %s | %d | %d | %.1f | %d | %d | %d |", shape, dt, p.Pass,
			p.Kernel, w.SimdgroupMMA, ratio, w.ThreadgroupBytes, w.ThreadgroupTrafficBytes,
			float64(w.ThreadgroupTrafficBytes)/float64(out), w.DeviceBytes, w.Barriers, w.Dispatches))
	}
	rows = append(rows, fmt.Sprintf("| %s | %s | bwd (dq + dkv) | | %d | %.3f | | | | | | |", shape, dt, bwd,
		float64(bwd)/float64(7*ideal)))
	return rows
}
