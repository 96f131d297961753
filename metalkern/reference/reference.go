// Package reference is the float64 reference attention (forward and
// backward, causal or not) that judges the kernels, with the error measure
// and tolerances used to compare kernel outputs against it.
package reference

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// Shape gives the sizes of one attention problem. Q, O and dO are laid
// out [B, H, Nq, D], K and V [B, H, Nk, D], LSE [B, H, Nq], all C order.
type Shape struct{ B, H, Nq, Nk, D int }

// QLen returns the element count of Q, O, dO and dQ: B*H*Nq*D.
func (s Shape) QLen() int { return s.B * s.H * s.Nq * s.D }

// KVLen returns the element count of K, V, dK and dV: B*H*Nk*D.
func (s Shape) KVLen() int { return s.B * s.H * s.Nk * s.D }

// Rows returns the element count of LSE: B*H*Nq.
func (s Shape) Rows() int { return s.B * s.H * s.Nq }

// Validate reports a shape the reference cannot compute: negative sizes, or
// D < 1.
func (s Shape) Validate() error {
	if s.B < 0 || s.H < 0 || s.Nq < 0 || s.Nk < 0 || s.D < 1 {
		return fmt.Errorf("invalid attention shape %+v: sizes must be >= 0 and D >= 1", s)
	}
	return nil
}

// DefaultScale returns the softmax scale 1/sqrt(D).
func DefaultScale(d int) float64 { return 1 / math.Sqrt(float64(d)) }

// visibleKeys returns how many keys (a prefix 0..n-1) query row i attends
// to. Causal masking is PyTorch's is_causal, aligned top-left: query i sees
// keys j <= i, whatever Nq and Nk are. (MLX and FlashAttention-2 align
// bottom-right when Nq != Nk; orchard does not.)
func visibleKeys(i, nk int, causal bool) int {
	if causal {
		return min(i+1, nk)
	}
	return nk
}

// Forward computes softmax attention in float64:
//
//	S = scale * Q Kᵀ (masked when causal), O = softmax(S) V,
//	LSE = logsumexp of each row of S (natural log).
//
// It subtracts the row maximum before exponentiating. A row with no
// visible key (only possible when Nk == 0, since with top-left causal
// alignment every row sees key 0) gets O = 0 and LSE = -Inf: the softmax of
// an empty row is taken as all-zero weights, the convention of kernels that
// guard fully masked rows. It panics if a slice length does not match s.
func Forward(q, k, v []float64, s Shape, causal bool, scale float64) (o, lse []float64) {
	checkLens("Forward", s, []namedLen{
		{"q", len(q), s.QLen()}, {"k", len(k), s.KVLen()}, {"v", len(v), s.KVLen()},
	})
	o = make([]float64, s.QLen())
	lse = make([]float64, s.Rows())
	qs, ks, d := s.Nq*s.D, s.Nk*s.D, s.D
	forEachHead(s, func(bh int) {
		qh, kh, vh := q[bh*qs:][:qs], k[bh*ks:][:ks], v[bh*ks:][:ks]
		oh, lh := o[bh*qs:][:qs], lse[bh*s.Nq:][:s.Nq]
		p := make([]float64, s.Nk)
		for i := range s.Nq {
			n := visibleKeys(i, s.Nk, causal)
			oi := oh[i*d:][:d]
			if n == 0 {
				lh[i] = math.Inf(-1)
				continue
			}
			qi := qh[i*d:][:d]
			m := math.Inf(-1)
			for j := range n {
				p[j] = scale * dot(qi, kh[j*d:][:d])
				m = max(m, p[j])
			}
			var l float64
			for j := range n {
				p[j] = math.Exp(p[j] - m)
				l += p[j]
				axpy(oi, p[j], vh[j*d:][:d])
			}
			inv := 1 / l
			for c := range oi {
				oi[c] *= inv
			}
			lh[i] = m + math.Log(l)
		}
	})
	return o, lse
}

// Backward computes, in float64, the gradients of the loss
// sum(dout ∘ O) with respect to q, k and v, given the forward's o and lse
// (pass Forward's outputs). With P = exp(S - LSE):
//
//	dV = Pᵀ dO,  dP = dO Vᵀ,  Δ = rowsum(dO ∘ O),
//	dS = P ∘ (dP - Δ),  dQ = scale * dS K,  dK = scale * dSᵀ Q.
//
// Rows with no visible key contribute nothing (P = 0, dS = 0). It panics if
// a slice length does not match s.
func Backward(q, k, v, o, lse, dout []float64, s Shape, causal bool, scale float64) (dq, dk, dv []float64) {
	checkLens("Backward", s, []namedLen{
		{"q", len(q), s.QLen()}, {"k", len(k), s.KVLen()}, {"v", len(v), s.KVLen()},
		{"o", len(o), s.QLen()}, {"lse", len(lse), s.Rows()}, {"dout", len(dout), s.QLen()},
	})
	dq = make([]float64, s.QLen())
	dk = make([]float64, s.KVLen())
	dv = make([]float64, s.KVLen())
	qs, ks, d := s.Nq*s.D, s.Nk*s.D, s.D
	forEachHead(s, func(bh int) {
		qh, kh, vh := q[bh*qs:][:qs], k[bh*ks:][:ks], v[bh*ks:][:ks]
		oh, doh, lh := o[bh*qs:][:qs], dout[bh*qs:][:qs], lse[bh*s.Nq:][:s.Nq]
		dqh, dkh, dvh := dq[bh*qs:][:qs], dk[bh*ks:][:ks], dv[bh*ks:][:ks]
		for i := range s.Nq {
			n := visibleKeys(i, s.Nk, causal)
			if n == 0 || math.IsInf(lh[i], -1) {
				continue
			}
			qi, doi := qh[i*d:][:d], doh[i*d:][:d]
			dqi := dqh[i*d:][:d]
			delta := dot(doi, oh[i*d:][:d])
			for j := range n {
				kj, vj := kh[j*d:][:d], vh[j*d:][:d]
				p := math.Exp(scale*dot(qi, kj) - lh[i])
				axpy(dvh[j*d:][:d], p, doi)
				ds := p * (dot(doi, vj) - delta)
				axpy(dqi, scale*ds, kj)
				axpy(dkh[j*d:][:d], scale*ds, qi)
			}
		}
	})
	return dq, dk, dv
}

// forEachHead runs fn for every (batch, head) index 0..B*H-1 on at most
// GOMAXPROCS goroutines. Each index owns disjoint slices of the outputs.
func forEachHead(s Shape, fn func(bh int)) {
	heads := s.B * s.H
	workers := min(runtime.GOMAXPROCS(0), heads)
	if workers <= 1 {
		for bh := range heads {
			fn(bh)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				bh := int(next.Add(1) - 1)
				if bh >= heads {
					return
				}
				fn(bh)
			}
		})
	}
	wg.Wait()
}

type namedLen struct {
	name      string
	got, want int
}

func checkLens(fn string, s Shape, lens []namedLen) {
	if err := s.Validate(); err != nil {
		panic("metalkern: " + fn + ": " + err.Error())
	}
	for _, l := range lens {
		if l.got != l.want {
			panic(fmt.Sprintf("metalkern: %s: len(%s) = %d, shape %+v needs %d", fn, l.name, l.got, s, l.want))
		}
	}
}

// dot returns a·b with four partial sums (faster, and no less accurate, than
// one running sum).
func dot(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	for len(a) >= 4 && len(b) >= 4 {
		s0 += a[0] * b[0]
		s1 += a[1] * b[1]
		s2 += a[2] * b[2]
		s3 += a[3] * b[3]
		a, b = a[4:], b[4:]
	}
	for i := range a {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpy does y += alpha * x.
func axpy(y []float64, alpha float64, x []float64) {
	x = x[:len(y)]
	for len(y) >= 4 && len(x) >= 4 {
		y[0] += alpha * x[0]
		y[1] += alpha * x[1]
		y[2] += alpha * x[2]
		y[3] += alpha * x[3]
		x, y = x[4:], y[4:]
	}
	for i := range y {
		y[i] += alpha * x[i]
	}
}
