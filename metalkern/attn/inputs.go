package attn

import (
	"errors"
	"slices"

	"github.com/orchardkit/orchard/metalkern"
	"github.com/orchardkit/orchard/metalkern/npy"
	"github.com/orchardkit/orchard/metalkern/reference"
)

// tensor is one input whose header has been read.
type tensor struct {
	flag, path string
	h          npy.Header
}

// inputs are the validated headers; do is nil without --do.
type inputs struct {
	q, k, v, do *tensor
	shape       reference.Shape
}

func (in *inputs) tensors() []*tensor {
	ts := []*tensor{in.q, in.k, in.v}
	if in.do != nil {
		ts = append(ts, in.do)
	}
	return ts
}

// checkInputs reads only the headers and checks shapes, dtypes, the
// runtime's limits, the memory the run needs and then each file's size:
// no tensor data is read.
func checkInputs(opts Options) (*inputs, error) {
	read := func(flag, path string) (*tensor, error) {
		h, err := npy.ReadHeader(path)
		if err != nil {
			return nil, inputErrorf("%s: %v", flag, err)
		}
		if len(h.Shape) != 4 {
			return nil, inputErrorf("%s %s: shape %v has %d dimensions; want 4: [B,H,N,D]", flag, path, h.Shape, len(h.Shape))
		}
		if n := h.Elements(); n > MaxElements {
			return nil, inputErrorf("%s %s: shape %v has %d elements; the kernels index with 32-bit integers, at most %d elements per tensor", flag, path, h.Shape, n, MaxElements)
		}
		return &tensor{flag: flag, path: path, h: h}, nil
	}
	in := &inputs{}
	var err error
	if in.q, err = read("--q", opts.Q); err != nil {
		return nil, err
	}
	if in.k, err = read("--k", opts.K); err != nil {
		return nil, err
	}
	if in.v, err = read("--v", opts.V); err != nil {
		return nil, err
	}
	if opts.DO != "" {
		if in.do, err = read("--do", opts.DO); err != nil {
			return nil, err
		}
	}
	q, k, v := in.q.h.Shape, in.k.h.Shape, in.v.h.Shape
	in.shape = reference.Shape{B: q[0], H: q[1], Nq: q[2], Nk: k[2], D: q[3]}
	switch {
	case in.shape.D < 1 || in.shape.D > MaxHeadDim:
		return nil, inputErrorf("--q %s: head dim D=%d; the kernels support 1..%d", opts.Q, in.shape.D, MaxHeadDim)
	case in.shape.Nq < 1 || in.shape.Nk < 1 || in.shape.B < 1 || in.shape.H < 1:
		return nil, inputErrorf("empty tensors: Q %v, K %v; every dimension must be ≥ 1", q, k)
	case k[0] != q[0] || k[1] != q[1] || k[3] != q[3]:
		return nil, inputErrorf("--k %s: shape %v does not match Q %v: want [%d,%d,Nk,%d]", opts.K, k, q, q[0], q[1], q[3])
	case !slices.Equal(v, k):
		return nil, inputErrorf("--v %s: shape %v must equal K's %v", opts.V, v, k)
	case in.k.h.DType != in.q.h.DType || in.v.h.DType != in.q.h.DType:
		return nil, inputErrorf("dtypes differ: Q %s, K %s, V %s; save all three as float32 or all as float16", in.q.h.DType, in.k.h.DType, in.v.h.DType)
	}
	if in.do != nil {
		if !slices.Equal(in.do.h.Shape, q) {
			return nil, inputErrorf("--do %s: shape %v must equal Q's %v", opts.DO, in.do.h.Shape, q)
		}
		if in.do.h.DType != in.q.h.DType {
			return nil, inputErrorf("--do %s: dtype %s differs from Q's %s", opts.DO, in.do.h.DType, in.q.h.DType)
		}
	}
	mem := opts.Memory
	if mem == nil {
		mem = SystemMemory
	}
	if avail, ok := mem(); ok {
		if need := in.peakBytes(opts.Reference, opts.Storage == metalkern.StoragePrivate); need > avail {
			big := in.q
			for _, t := range in.tensors() {
				if t.h.Elements() > big.h.Elements() {
					big = t
				}
			}
			backend := "the runner"
			if opts.Reference {
				backend = "--backend reference"
			}
			return nil, inputErrorf("%s %s: %d elements of %s; this run (%s) needs ~%s and %s is available: use smaller tensors or free memory",
				big.flag, big.path, big.h.Elements(), big.h.DType, backend, gib(need), gib(avail))
		}
	}
	for _, t := range in.tensors() {
		if err := npy.CheckSize(t.path, t.h); err != nil {
			return nil, inputErrorf("%s: %v", t.flag, err)
		}
	}
	return in, nil
}

// peakBytes estimates the run's peak memory: orchard's own plus the
// runner's, from the element counts alone.
//
// The reference holds every input as float64 (8 B/element), reads one file
// at a time (its bytes and a float32 copy), computes o and lse (then dq, dk,
// dv) in float64 and converts one output at a time to float32 to write it.
// The runner holds each input twice in its dtype (the file's array and the
// device buffer) and allocates o and lse (then delta, dq, dk, dv); orchard
// itself then only scans the inputs in fixed-size chunks. Private storage
// adds, for one tensor at a time, a shared staging buffer and a host copy.
func (in *inputs) peakBytes(ref, private bool) uint64 {
	s := in.shape
	nq, nk, rows := uint64(s.B*s.H*s.Nq*s.D), uint64(s.B*s.H*s.Nk*s.D), uint64(s.B*s.H*s.Nq)
	size := uint64(in.q.h.DType.Size())
	bwd := in.do != nil
	all := nq + 2*nk // input elements
	outs := nq       // output elements of the input dtype
	if bwd {
		all += nq
		outs += nq + 2*nk
	}
	largest := max(nq, nk)
	if ref {
		return 8*all + (size+4)*largest + 8*(outs+rows) + 4*largest
	}
	n := 2*size*all + size*outs + 4*rows
	if bwd {
		n += 4 * rows // delta
	}
	if private {
		n += 2 * max(size*largest, 4*rows)
	}
	return n + 1<<20 // orchard's scan buffers
}

// errStop ends a Scan early.
var errStop = errors.New("stop")

// scanFinite streams t's data and rejects its first NaN or Inf.
func scanFinite(t *tensor) error {
	var bad error
	_, err := npy.Scan(t.path, func(start int, chunk []float32) error {
		if i, ok := reference.HasNonFinite(chunk); ok {
			bad = nonFinite(t, start+i, chunk[i])
			return errStop
		}
		return nil
	})
	if bad != nil {
		return bad
	}
	if err != nil {
		return inputErrorf("%s: %v", t.flag, err)
	}
	return nil
}

func nonFinite(t *tensor, i int, v float32) error {
	return inputErrorf("%s %s: element %d is %v; pass --allow-nonfinite to accept non-finite values", t.flag, t.path, i, v)
}
