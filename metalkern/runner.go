package metalkern

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Exec runs argv to completion with stdout going to w. Steps pass one built
// on the engine (process groups, logs, timeouts); `orchard attn` passes a
// plain one. The Go side talks to the runner only as a process, through the
// contract in docs/runtime.md.
type Exec func(ctx context.Context, argv, env []string, stdout io.Writer) error

// Runner is a built runner program (orchard-runner-emu, -emu-tsan, -metal).
type Runner struct {
	Path string
	// Args are prepended to every command (e.g. a metallib path).
	Args []string
}

// Info is what `runner info` prints.
type Info struct {
	Backend string `json:"backend"`
	Device  string `json:"device"`
	Limits  struct {
		MaxThreadsPerThreadgroup int `json:"max_threads_per_threadgroup"`
		MaxThreadgroupMemory     int `json:"max_threadgroup_memory"`
		SimdWidth                int `json:"simd_width"`
	} `json:"limits"`
	// Kernels are the kernels the backend has (the metallib's functions, or
	// the emu's compiled kernels).
	Kernels []string `json:"kernels"`
	// HostKernels are every kernel the host may dispatch (select.h).
	HostKernels []string `json:"host_kernels"`
	// MissingKernels are HostKernels the backend lacks, as the runner sees it.
	MissingKernels []string `json:"missing_kernels"`
	// DeviceInfo is the device the runner chose (on emu, the emulation's
	// values); zero from a runner older than the field.
	DeviceInfo DeviceInfo `json:"device_info"`
	// TimeSource says what Stats.GPUMS measures: "gpu" or "emu".
	TimeSource string `json:"time_source"`
}

// DeviceInfo is `info`'s device_info: what the runner's device is and
// whether the kernels can run on it.
type DeviceInfo struct {
	Name string `json:"name"`
	// GPUFamily is the highest Apple GPU family supported ("apple9"), "" for
	// none; "emu" on emu.
	GPUFamily string `json:"gpu_family"`
	// MetalFamily is "metal4", "metal3" or "" (none; also on emu).
	MetalFamily              string `json:"metal_family"`
	MaxThreadgroupMemory     int64  `json:"max_threadgroup_memory"`
	MaxThreadsPerThreadgroup int64  `json:"max_threads_per_threadgroup"`
	// RecommendedWorkingSet is in bytes (emu: the host's physical memory).
	RecommendedWorkingSet int64 `json:"recommended_working_set"`
	UnifiedMemory         bool  `json:"unified_memory"`
	// Paravirtual: a VM's GPU (a GitHub-hosted macOS runner's).
	Paravirtual bool `json:"paravirtual"`
	// Problem is why the kernels cannot run on this device ("" when they
	// can): paravirtual, or older than Apple7.
	Problem string `json:"problem"`
	// Devices are every device the runner found, in enumeration order.
	Devices []string `json:"devices"`
}

// AppleFamily is GPUFamily's number (apple9 → 9), 0 when there is none.
func (d DeviceInfo) AppleFamily() int {
	n, err := strconv.Atoi(strings.TrimPrefix(d.GPUFamily, "apple"))
	if err != nil || !strings.HasPrefix(d.GPUFamily, "apple") {
		return 0
	}
	return n
}

// Missing is the sorted kernels the host may dispatch that the backend
// lacks: the runner's own missing_kernels and any HostKernels not in
// Kernels.
func (i Info) Missing() []string {
	have := map[string]bool{}
	for _, k := range i.Kernels {
		have[k] = true
	}
	set := map[string]bool{}
	for _, k := range i.MissingKernels {
		set[k] = true
	}
	for _, k := range i.HostKernels {
		if !have[k] {
			set[k] = true
		}
	}
	return sortedKeys(set)
}

// Undispatched is the sorted kernels the backend has that the host never
// dispatches (empty when the runner does not report HostKernels): with
// Missing, often a misspelt host_name.
func (i Info) Undispatched() []string {
	if len(i.HostKernels) == 0 {
		return nil
	}
	host := map[string]bool{}
	for _, k := range i.HostKernels {
		host[k] = true
	}
	set := map[string]bool{}
	for _, k := range i.Kernels {
		if !host[k] {
			set[k] = true
		}
	}
	return sortedKeys(set)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Info runs `runner info`.
func (r Runner) Info(ctx context.Context, exec Exec) (Info, error) {
	var out bytes.Buffer
	var info Info
	if err := exec(ctx, append(append([]string{r.Path}, r.Args...), "info"), nil, &out); err != nil {
		return info, err
	}
	if err := json.Unmarshal(lastJSONLine(out.Bytes()), &info); err != nil {
		return info, fmt.Errorf("runner info printed no valid JSON (%v): %q", err, excerptBytes(out.Bytes()))
	}
	return info, nil
}

// The runner's storage modes (--storage; the storage= field of its log lines).
const (
	StorageShared  = "shared"
	StoragePrivate = "private"
)

// Storages are the modes the runner takes, in the order the smoke suite
// alternates them.
var Storages = []string{StorageShared, StoragePrivate}

// Request is one forward (and, with DO, backward) run on .npy files.
type Request struct {
	Q, K, V string
	DO      string // optional: run the backward too
	Causal  bool
	Scale   float64 // 0: 1/sqrt(D)
	Out     string  // directory for o.npy, lse.npy (dq/dk/dv.npy)
	Mode    string  // emu only: fibers|threads ("" = runner default)
	// Storage is where the runner keeps the tensors: StorageShared or
	// StoragePrivate (GPU-only, staged through a shared buffer and a blit);
	// "" = the runner's default, shared.
	Storage string
	// BufferOffset binds every tensor this many bytes (a multiple of 4)
	// into its allocation: a test/diagnostic knob (PyTorch tensors arrive
	// as a buffer plus a storage offset). 0 = none.
	BufferOffset int
	// Baseline "plain" runs the plain-attention baseline (kernels/attn_plain.metal)
	// instead of the flash kernels: same inputs and outputs. "" = flash.
	Baseline string
	// Env is added to the runner's environment: the log switches and paths
	// and ORCHARD_RUN_ID (docs/logs.md).
	Env []string
}

// Argv is the command line for req.
func (r Runner) Argv(req Request) []string {
	a := append(append([]string{r.Path}, r.Args...), "run", "--q", req.Q, "--k", req.K, "--v", req.V, "--out", req.Out)
	if req.DO != "" {
		a = append(a, "--do", req.DO)
	}
	if req.Causal {
		a = append(a, "--causal")
	}
	if req.Scale != 0 {
		a = append(a, "--scale", strconv.FormatFloat(req.Scale, 'g', -1, 64))
	}
	if req.Mode != "" {
		a = append(a, "--mode", req.Mode)
	}
	if req.Storage != "" {
		a = append(a, "--storage", req.Storage)
	}
	if req.BufferOffset != 0 {
		a = append(a, "--buffer-offset", strconv.Itoa(req.BufferOffset))
	}
	if req.Baseline != "" {
		a = append(a, "--baseline", req.Baseline)
	}
	return a
}

// Stats is the JSON line `runner run` prints.
type Stats struct {
	// Dispatches counts the dispatches made ("fwd", "bwd"): one log line
	// each. A pass split across several dispatches counts each.
	Dispatches map[string]int `json:"dispatches"`
	// Kernels are the passes' kernels, in order (one per pass).
	Kernels []string `json:"kernels"`
	// MS is the wall time of the dispatches.
	MS float64 `json:"ms"`
	// GPUMS is their device time, from TimeSource: "gpu" (GPUEndTime −
	// GPUStartTime of each command buffer) or "emu" (the emulation's own
	// time, not a GPU figure).
	GPUMS      float64 `json:"gpu_ms"`
	TimeSource string  `json:"time_source"`
	Passes     []Pass  `json:"passes"`
	// Baseline is "plain" for a run of the plain baseline, "" for the flash kernels.
	Baseline string `json:"baseline,omitempty"`
}

// Pass is one pass of a run: its grid and how it was split.
type Pass struct {
	Pass   string `json:"pass"` // fwd, bwd_dq, bwd_dkv
	Kernel string `json:"kernel"`
	Grid   [3]int `json:"grid"` // threadgroups (x, y, z)
	// GroupsPerDispatch is the split bound (select.h; ORCHARD_DISPATCH_GROUPS lowers it).
	GroupsPerDispatch int64   `json:"groups_per_dispatch"`
	Dispatches        int     `json:"dispatches"`
	WallMS            float64 `json:"wall_ms"`
	GPUMS             float64 `json:"gpu_ms"`
	// Counters are the pass's work counts: only the counting emu runner
	// (orchard-runner-emu-counters, steps.CountersRunner) reports them.
	Counters *Counters `json:"counters,omitempty"`
}

// Counters is one pass's work as the counting emu runner counts it
// (docs/perf.md "Work counters"): summed over the pass's dispatches, except
// ThreadgroupBytes and Barriers, which are per threadgroup (the maximum over
// the pass's threadgroups).
type Counters struct {
	// SimdgroupMMA counts 8x8x8 simdgroup_multiply(_accumulate) calls, once per simdgroup.
	SimdgroupMMA int64 `json:"simdgroup_mma"`
	// ThreadgroupBytes is the static threadgroup memory of the pass's kernel
	// (its declarations; the runner checks it equals select.h's threadgroup_bytes).
	ThreadgroupBytes int64 `json:"threadgroup_bytes"`
	// ThreadgroupTrafficBytes are the bytes read and written in threadgroup memory.
	ThreadgroupTrafficBytes int64 `json:"threadgroup_traffic_bytes"`
	// DeviceBytes are the bytes read and written through device pointers.
	DeviceBytes int64 `json:"device_bytes"`
	// Barriers is the number of threadgroup_barrier calls one threadgroup makes.
	Barriers int64 `json:"barriers"`
	// Dispatches is the pass's number of dispatches.
	Dispatches int64 `json:"dispatches"`
}

// Run runs req.
func (r Runner) Run(ctx context.Context, exec Exec, req Request) (Stats, error) {
	var out bytes.Buffer
	var st Stats
	if err := exec(ctx, r.Argv(req), req.Env, &out); err != nil {
		return st, err
	}
	if err := json.Unmarshal(lastJSONLine(out.Bytes()), &st); err != nil {
		return st, fmt.Errorf("runner printed no valid JSON (%v): %q", err, excerptBytes(out.Bytes()))
	}
	return st, nil
}

func lastJSONLine(b []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		if l := bytes.TrimSpace(lines[i]); len(l) > 0 && l[0] == '{' {
			return l
		}
	}
	return nil
}

func excerptBytes(b []byte) string {
	if len(b) > 300 {
		b = b[len(b)-300:]
	}
	return string(b)
}
