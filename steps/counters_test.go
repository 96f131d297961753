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

var tileRE = regexp.MustCompile(`_bq(\d+)_bk(\d+)_bd(\d+)(_qtg|_qdotg|_ktg|_kvtg)?$`)

// tiles reads (bq, bk, bd) off a kernel name (select.h kernel_name; a
// forward or dQ kernel whose name ends in _qtg keeps its Q block in
// threadgroup memory, qTile; a dQ kernel ending in _qdotg its Q and dO
// blocks, a dK/dV kernel ending in _ktg its K block and in _kvtg its K and V
// blocks, tgOperands).
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

// qTile: the forward kernel keeps its Q block in threadgroup memory (Tile.q_tg).
func qTile(kernel string) bool { return strings.HasSuffix(kernel, "_qtg") }

// tgOperands: how many of a backward kernel's two owned operands (dQ: Q, dO;
// dK/dV: K, V) sit in threadgroup memory (0, 1: the first, 2: both).
func tgOperands(kernel string) int {
	switch {
	case strings.HasSuffix(kernel, "_qdotg"), strings.HasSuffix(kernel, "_kvtg"):
		return 2
	case strings.HasSuffix(kernel, "_qtg"), strings.HasSuffix(kernel, "_ktg"):
		return 1
	}
	return 0
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// wantCounters derives each pass's counts from the kernels' loop structure
// (kernels/attn_fwd.metal, attn_bwd.metal, loader.h, mma.h, softmax.h), for
// any shape, causal or not (es is the input dtype's size, nb = bd/8):
//   - every kernel runs 4 simdgroups, one 8-row strip of the 32-row owned
//     block each (a forward with bq = 64: R = bq/32 = 2 strips each, every
//     K/V fragment loaded once for both); no simdgroup skips work past N
//     (padded rows and columns are zeros) nor, under the causal mask, a
//     strip's fully masked block of a visited K block, so MMAs, fragment
//     loads and tile writes count whole strips and blocks;
//   - the blocks visited: fwd and dQ every K block of bk rows (causal: the
//     ones starting below min(Nk, q0 + 32)), dK/dV every Q block of bq
//     rows (causal: from the one holding row k0);
//   - MMAs per simdgroup, strip and streamed block of b rows (strip_abt and
//     strip_pb, (b/8)·nb each): fwd 2 (S, P V), dQ 3 (S, dP, dS K), dK/dV 4
//     (S^T, dP^T, P^T dO, dS^T Q); S, P, dP, dS stay in registers, nothing
//     else multiplies;
//   - barriers: fwd 4 per block (K, then V, each written and read), dQ and
//     dK/dV 2; none outside the block loops (owned strips go straight
//     between device memory and registers, and owned blocks kept in
//     threadgroup memory are published by the first block's barrier), but
//     one before the loop in a _qdotg dQ (its Delta reads the dO tile);
//   - threadgroup_bytes: the tiles of the input dtype with rows padded by
//     16 bytes (ld = bd + 16/es): fwd bk·ld (bk·ld + bq·ld for a _qtg kernel:
//     the Q block too), dQ 2·bk·ld, dK/dV 2·bq·ld plus the block's LSE and
//     Delta (2·bq floats);
//   - threadgroup traffic per block: each streamed tile written in full,
//     b·bd·es bytes (load_tile's packed 4-element stores on interior tiles
//     and its guarded element stores on edge tiles write the same bytes;
//     the row padding is never touched), and every fragment load of the
//     products, 64·es bytes (32 lanes, 2 elements each); a _qtg forward also
//     writes its Q block once per threadgroup (bq·bd·es) and each simdgroup
//     reads its R strips' nb Q fragments once per K block (strip_abt_tile:
//     one per strip and head-dim step, shared by the step's bk/8 products),
//     the K/V fragments once per simdgroup whatever R; a backward kernel
//     with n owned operands in threadgroup memory (tgOperands) writes each
//     32-row block once per threadgroup (32·bd·es) and every simdgroup
//     reads its nb fragments of each once per streamed block, in place of
//     the register strip (strip_qkt: S, and dP for the second); a _qdotg
//     dQ also reads its dO tile once per element inside [N, D] for Delta;
//     dK/dV also writes the bq LSE and Delta floats and dkv_scores reads
//     both only for the visible scores of the owned block's 32·bq;
//   - device bytes: the owned strips read and the outputs written once per
//     element inside [N, D] (per lane, guarded); each visited tile's rows
//     present times D elements (a packed load reads the same bytes as the
//     guarded ones), once per threadgroup; LSE and Delta as the kernels
//     index them (dQ computes Delta = rowsum(dO * O) for its rows from the
//     dO strip it holds and O read once per element, per lane in registers:
//     float multiply-adds and two shuffles per row, no MMA, no threadgroup
//     memory, no barrier; only its O reads and Delta writes count).
func wantCounters(t *testing.T, c countersCase, p metalkern.Pass) metalkern.Counters {
	t.Helper()
	es := c.dtype.Size()
	frag := 64 * es                                                              // one simdgroup_load of a T fragment
	rows := func(start, n, total int) int { return max(0, min(n, total-start)) } // rows of a block that exist
	var mma, tgBytes, traffic, device, barriers int
	switch p.Pass {
	case "fwd":
		bq, bk, bd := tiles(t, p.Kernel)
		nb := bd / 8
		qtg, strips := qTile(p.Kernel), bq/32
		tgBytes = es * bk * (bd + 16/es)
		if qtg {
			tgBytes += es * bq * (bd + 16/es) // the Q block
		}
		for q0 := 0; q0 < c.Nq; q0 += bq {
			kend, blocks := c.Nk, 0
			if c.causal {
				kend = min(c.Nk, q0+bq)
			}
			if qtg {
				traffic += bq * bd * es // the Q block written
			}
			for k0 := 0; k0 < kend; k0 += bk {
				blocks++
				mma += 4 * strips * 2 * (bk / 8) * nb      // S = Q K^T, O += P V
				traffic += 2*bk*bd*es + 4*2*(bk/8)*nb*frag // K and V tiles; their fragments
				if qtg {
					traffic += 4 * strips * nb * frag // each simdgroup's Q fragments
				}
				device += 2 * rows(k0, bk, c.Nk) * c.D * es // K and V
			}
			barriers = max(barriers, 4*blocks)
		}
		// Q read (per lane or by load_tile: once per element inside [N, D]
		// either way), O written, LSE by each row's leader lane.
		device += 2*c.Nq*c.D*es + 4*c.Nq
	case "bwd_dq":
		bq, bk, bd := tiles(t, p.Kernel)
		nb := bd / 8
		ntg := tgOperands(p.Kernel) // Q (and dO) blocks in threadgroup memory
		tgBytes = es * (2*bk + ntg*bq) * (bd + 16/es)
		for q0 := 0; q0 < c.Nq; q0 += bq {
			kend, blocks := c.Nk, 0
			if c.causal {
				kend = min(c.Nk, q0+bq)
			}
			traffic += ntg * bq * bd * es // the owned blocks written
			if ntg == 2 {
				traffic += rows(q0, bq, c.Nq) * c.D * es // Delta's reads of the dO tile
			}
			for k0 := 0; k0 < kend; k0 += bk {
				blocks++
				mma += 4 * 3 * (bk / 8) * nb // S, dP, dQ += dS K
				traffic += 2*bk*bd*es + 4*3*(bk/8)*nb*frag + 4*ntg*nb*frag
				device += 2 * rows(k0, bk, c.Nk) * c.D * es
			}
			extra := 0
			if ntg == 2 {
				extra = 1 // the barrier publishing the Q and dO blocks
			}
			barriers = max(barriers, 2*blocks+extra)
		}
		// Q, dO and O read (O once per element, by strip_row_dot), dQ written;
		// all 4 lanes of a row read its LSE, its leader lane writes its Delta.
		device += 4*c.Nq*c.D*es + 4*4*c.Nq + 4*c.Nq
	case "bwd_dkv":
		bq, bk, bd := tiles(t, p.Kernel)
		nb := bd / 8
		ntg := tgOperands(p.Kernel) // K (and V) blocks in threadgroup memory
		tgBytes = es*(2*bq+ntg*bk)*(bd+16/es) + 4*2*bq
		for k0 := 0; k0 < c.Nk; k0 += bk {
			qstart, blocks := 0, 0
			if c.causal {
				qstart = k0 / bq * bq
			}
			traffic += ntg * bk * bd * es // the owned blocks written
			for q0 := qstart; q0 < c.Nq; q0 += bq {
				blocks++
				mma += 4 * 4 * (bq / 8) * nb // S^T, dP^T, dV += P^T dO, dK += dS^T Q
				visible := 0                 // (key, query) pairs of the block that attn_visible passes
				for i := k0; i < min(k0+bk, c.Nk); i++ {
					for j := q0; j < min(q0+bq, c.Nq); j++ {
						if !c.causal || i <= j {
							visible++
						}
					}
				}
				traffic += 2*bq*bd*es + 4*4*(bq/8)*nb*frag + 4*ntg*nb*frag + 4*2*bq + 2*4*visible
				n := rows(q0, bq, c.Nq)
				device += 2*n*c.D*es + 8*n // Q and dO; the LSE and Delta of the rows present
			}
			barriers = max(barriers, 2*blocks)
		}
		device += 4 * c.Nk * c.D * es // K and V read, dK and dV written
	default:
		t.Fatalf("unknown pass %q", p.Pass)
	}
	bh := int64(c.B * c.H)
	return metalkern.Counters{SimdgroupMMA: bh * int64(mma), ThreadgroupBytes: int64(tgBytes),
		ThreadgroupTrafficBytes: bh * int64(traffic), DeviceBytes: bh * int64(device), Barriers: int64(barriers),
		Dispatches: int64(p.Dispatches)}
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
		// Edge tiles everywhere (guarded element loads): D below its bucket, ragged Nq and Nk.
		{1, 1, 40, 72, 48, npy.Float16, false},
		{1, 1, 72, 40, 64, npy.Float32, true},
		{1, 1, 40, 48, 100, npy.Float16, true},  // the f16 bd128 _qtg forward on an edge Q tile
		{1, 1, 96, 72, 40, npy.Float32, true},   // the f32 bq64 forward: a full and an edge 64-row block
		{1, 1, 64, 48, 128, npy.Float16, false}, // the f16 bd128 _qdotg dQ and _kvtg dK/dV on full tiles
	}
	base := len(cases)
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
		variants = i < base // the table's shapes run once
		t.Run(c.String(), func(t *testing.T) {
			req := writeCountersInputs(t, t.TempDir(), c)
			st, err := r.Run(ctx, ex, req)
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Passes) != 3 {
				t.Fatalf("passes %+v", st.Passes)
			}
			var fwdMMA, bwdMMA int64
			for _, p := range st.Passes {
				if p.Counters == nil {
					t.Fatalf("pass %s has no counters", p.Pass)
				}
				want, got := wantCounters(t, c, p), *p.Counters
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
			if !variants { // a -counters-table shape: its rows of the table, one run
				table = append(table, tableRows(c, st.Passes, ideal)...)
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
	const anchor = "return es * size_t(t.bk + (t.q_tg ? t.bq : 0)) * ld;" // the forward's
	if strings.Count(string(text), anchor) != 1 {
		t.Fatalf("select.h has no single %q", anchor)
	}
	if err := os.WriteFile(sel, []byte(strings.Replace(string(text), anchor,
		"return es * size_t(t.bk + (t.q_tg ? t.bq : 0)) * ld + 1;", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	b3 := &Build{Source: src, Toolchain: &ToolchainStep{Prober: NewProber(getenv)}}
	bin3, _, err := CountersRunner(ctx, opts, b3)
	if err != nil {
		t.Fatal(err)
	}
	c := cases[1]
	const fwd = "attn_fwd_f16_bq32_bk32_bd64"
	tg := wantCounters(t, c, metalkern.Pass{Pass: "fwd", Kernel: fwd}).ThreadgroupBytes
	_, err = metalkern.Runner{Path: bin3}.Run(ctx, ex, writeCountersInputs(t, t.TempDir(), c))
	var ee *ExecError
	if !errors.As(err, &ee) || !strings.Contains(ee.LastLine(), fmt.Sprintf("kernel %s declares %d bytes of "+
		"threadgroup memory but select.h's threadgroup_bytes() says %d: make them agree", fwd, tg, tg+1)) {
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
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %d | %s | %d | %d | %.1f | %d | %d | %d |", shape, dt, p.Pass,
			p.Kernel, w.SimdgroupMMA, ratio, w.ThreadgroupBytes, w.ThreadgroupTrafficBytes,
			float64(w.ThreadgroupTrafficBytes)/float64(out), w.DeviceBytes, w.Barriers, w.Dispatches))
	}
	rows = append(rows, fmt.Sprintf("| %s | %s | bwd (dq + dkv) | | %d | %.3f | | | | | | |", shape, dt, bwd,
		float64(bwd)/float64(7*ideal)))
	return rows
}
