// Package bench times the built runtime's attention (`orchard bench`): per
// shape, dtype and pass it runs the flash kernels and the plain baseline
// (runner --baseline plain) in the same runner, takes the device time each
// pass's dispatches report (GPU timestamps on Metal, the emulation's clock on
// emu), and derives GFLOP/s from the counted work and the speed-up over the
// baseline. With a counting runner (the emu counters build) it adds each
// pass's work counters.
package bench

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/orchardkit/orchard/metalkern/npy"
)

// MaxHeadDim is the kernels' largest head dim (host/select.h kMaxHeadDim).
const MaxHeadDim = 256

// maxPlainScores bounds B·H·Nq·Nk: the plain baseline keeps S and dS as
// float32 arrays of that many elements with 32-bit indexing.
const maxPlainScores = 1<<31 - 1

// Shape is one attention problem: Q is [B,H,Nq,D], K and V [B,H,Nk,D].
type Shape struct {
	B, H, Nq, Nk, D int
	Causal          bool
}

// String is the shape as --shapes takes it: BxHxNqxNkxD[:causal].
func (s Shape) String() string {
	out := fmt.Sprintf("%dx%dx%dx%dx%d", s.B, s.H, s.Nq, s.Nk, s.D)
	if s.Causal {
		out += ":causal"
	}
	return out
}

// Pairs is the number of (query, key) score entries attention computes:
// Nq·Nk per (b, h), or under the causal mask (top-left: query i sees keys
// j ≤ i) Σ_i min(i+1, Nk) — the exact count of unmasked pairs.
func (s Shape) Pairs() int64 {
	per := int64(s.Nq) * int64(s.Nk)
	if s.Causal {
		n := int64(min(s.Nq, s.Nk)) // rows 0..n-1 see i+1 keys, the rest all Nk
		per = n*(n+1)/2 + int64(s.Nq-int(n))*int64(s.Nk)
	}
	return int64(s.B) * int64(s.H) * per
}

// Flops is the counted work of a pass in floating-point operations, the
// convention of FlashAttention and MFA: the forward is two matrix products
// over the unmasked pairs (S = QKᵀ and O = PV, 2 flops per multiply-add),
// 4·pairs·D; the backward is five (S or P recomputed, dP = dO Vᵀ, dV, dQ,
// dK), counted as 2.5 × the forward, 10·pairs·D. Softmax and the row
// statistics are not counted.
func (s Shape) Flops(pass string) float64 {
	f := 4 * float64(s.Pairs()) * float64(s.D)
	if pass == PassBwd {
		f *= 2.5
	}
	return f
}

// The passes a case times: the forward, or the backward (the runner's
// bwd_* passes, after the forward that produces O and LSE).
const (
	PassFwd = "fwd"
	PassBwd = "bwd"
)

// DefaultShapes is the shape set without --shapes for a backend. On emu it
// is small, so that the default bench takes seconds (the emulation runs
// every thread of every kernel on the CPU); on Metal it is sized for a GPU,
// where small shapes measure little but the launch cost.
func DefaultShapes(backend string) []Shape {
	if backend == "metal" {
		return []Shape{
			{B: 1, H: 8, Nq: 1024, Nk: 1024, D: 64},
			{B: 1, H: 8, Nq: 1024, Nk: 1024, D: 64, Causal: true},
			{B: 1, H: 8, Nq: 1024, Nk: 1024, D: 128},
		}
	}
	return []Shape{
		{B: 1, H: 2, Nq: 128, Nk: 128, D: 64},
		{B: 1, H: 2, Nq: 128, Nk: 128, D: 64, Causal: true},
		{B: 1, H: 1, Nq: 128, Nk: 128, D: 128},
	}
}

// ParseShapes parses --shapes: a comma-separated list of
// BxHxNqxNkxD[:causal]. An error names the bad element and what it needs.
func ParseShapes(spec string) ([]Shape, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, fmt.Errorf("--shapes is empty: want BxHxNqxNkxD[:causal],... e.g. 1x4x256x256x64:causal")
	}
	var out []Shape
	for _, el := range strings.Split(spec, ",") {
		s, err := parseShape(strings.TrimSpace(el))
		if err != nil {
			return nil, fmt.Errorf("--shapes element %q: %v", el, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func parseShape(el string) (Shape, error) {
	var s Shape
	dims, suffix, hasSuffix := strings.Cut(el, ":")
	if hasSuffix {
		if suffix != "causal" {
			return s, fmt.Errorf("unknown suffix %q: the only one is :causal", ":"+suffix)
		}
		s.Causal = true
	}
	parts := strings.Split(dims, "x")
	if len(parts) != 5 {
		return s, fmt.Errorf("want 5 dimensions BxHxNqxNkxD (e.g. 1x4x256x256x64), got %d", len(parts))
	}
	names := []string{"B", "H", "Nq", "Nk", "D"}
	vals := make([]int, 5)
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return s, fmt.Errorf("%s must be a whole number >= 1, got %q", names[i], p)
		}
		vals[i] = n
	}
	s.B, s.H, s.Nq, s.Nk, s.D = vals[0], vals[1], vals[2], vals[3], vals[4]
	if s.D > MaxHeadDim {
		return s, fmt.Errorf("D=%d: the kernels support head dims 1..%d", s.D, MaxHeadDim)
	}
	if n := int64(s.B) * int64(s.H) * int64(max(s.Nq, s.Nk)) * int64(s.D); n > maxPlainScores {
		return s, fmt.Errorf("%d elements per tensor exceed the kernels' 32-bit indexing (max %d)", n, maxPlainScores)
	}
	if n := int64(s.B) * int64(s.H) * int64(s.Nq) * int64(s.Nk); n > maxPlainScores {
		return s, fmt.Errorf("B·H·Nq·Nk = %d: the plain baseline keeps S in device memory with 32-bit indexing (max %d); use a smaller shape", n, maxPlainScores)
	}
	return s, nil
}

// ParseDTypes parses --dtype: a comma-separated list of f16 and f32.
func ParseDTypes(spec string) ([]npy.DType, error) {
	var out []npy.DType
	seen := map[string]bool{}
	for _, el := range strings.Split(spec, ",") {
		el = strings.TrimSpace(el)
		var dt npy.DType
		switch el {
		case "f16":
			dt = npy.Float16
		case "f32":
			dt = npy.Float32
		default:
			return nil, fmt.Errorf("--dtype element %q: want f16 or f32 (a comma-separated list, e.g. f16,f32)", el)
		}
		if !seen[el] {
			out = append(out, dt)
			seen[el] = true
		}
	}
	return out, nil
}

// ParsePasses parses --pass: a comma-separated list of fwd and bwd.
func ParsePasses(spec string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, el := range strings.Split(spec, ",") {
		el = strings.TrimSpace(el)
		if el != PassFwd && el != PassBwd {
			return nil, fmt.Errorf("--pass element %q: want fwd or bwd (a comma-separated list, e.g. fwd,bwd)", el)
		}
		if !seen[el] {
			out = append(out, el)
			seen[el] = true
		}
	}
	return out, nil
}

// DTypeTag is the runner's name for a dtype: f16 or f32.
func DTypeTag(dt npy.DType) string {
	if dt == npy.Float16 {
		return "f16"
	}
	return "f32"
}
