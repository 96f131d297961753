// mma.h — 8x8 simdgroup-matrix products on one simdgroup's 8-row strip.
//
// A strip held in registers is an array of fragments covering 8 rows: an
// operand or accumulator of BD columns has BD/8 fragments, a score strip of
// NT*8 columns has NT. Operand fragments are simdgroup_matrix<T> (T = the input
// dtype), accumulators Frag (float). Streamed operands live in threadgroup
// memory as row-major T tiles with row stride TileLd<T, BD> (BD plus padding).
// Every function here is called by all 32 lanes of a simdgroup (simdgroup
// matrix operations are simdgroup-wide).
// MMAs per call: strip_abt, strip_abt_tile and strip_qkt NT*BD/8, strip_pb NK*BD/8;
// nothing else multiplies.
#pragma once

#include "attn_common.h"

// acc = 0 for a whole strip of BD columns (BD/8 fragments).
template <int BD>
inline void strip_zero(thread Frag* acc) {
  #pragma clang loop unroll(full)
  for (int d = 0; d < BD / 8; ++d) {
    acc[d] = frag_zero();
  }
}

// out[t] += a * B[8t:8t+8, 8k:8k+8]^T for t < NT: the k-th head-dim step of
// S = A B^T, a being A's k-th 8x8 fragment and B (NT*8 x BD) a threadgroup tile.
template <int NT, int BD, typename T>
inline void strip_abt_step(thread Frag* out, thread simdgroup_matrix<T, 8, 8>& a,
                           const threadgroup T* b, int k) {
  constexpr int LD = TileLd<T, BD>::value;
  #pragma clang loop unroll(full)
  for (int t = 0; t < NT; ++t) {
    simdgroup_matrix<T, 8, 8> bt;
    simdgroup_load(bt, b + t * 8 * LD + k * 8, LD, ulong2(0, 0), true);
    simdgroup_multiply_accumulate(out[t], a, bt, out[t]);
  }
}

// out[t] = (A * B^T)[0:8, 8t:8t+8] for t < NT, where A (8 x BD) is in registers
// and B (NT*8 x BD) is a threadgroup tile. Used for S = Q K^T, dP = dO V^T
// (forward with Q in registers, dQ pass) and S^T = K Q^T, dP^T = V dO^T (dK/dV pass).
// Blocked along the head dim: each out[t] sums its BD/8 products in order k = 0, 1, ...
template <int NT, int BD, typename T>
inline void strip_abt(thread Frag* out, thread simdgroup_matrix<T, 8, 8>* a,
                      const threadgroup T* b) {
  strip_zero<NT * 8>(out);
  #pragma clang loop unroll(full)
  for (int k = 0; k < BD / 8; ++k) {
    strip_abt_step<NT, BD, T>(out, a[k], b, k);
  }
}

// The same product with A (8 x BD) read from threadgroup memory: a points at
// the strip's first row in a tile of row stride TileLd<T, BD>. One A fragment
// is live at a time (loaded once per call, used for all NT outputs): the
// forward's S = Q K^T where the Q block is kept in threadgroup memory
// (the qtg kernels of host/select.h).
template <int NT, int BD, typename T>
inline void strip_abt_tile(thread Frag* out, const threadgroup T* a, const threadgroup T* b) {
  constexpr int LD = TileLd<T, BD>::value;
  strip_zero<NT * 8>(out);
  #pragma clang loop unroll(full)
  for (int k = 0; k < BD / 8; ++k) {
    simdgroup_matrix<T, 8, 8> af;
    simdgroup_load(af, a + k * 8, LD, ulong2(0, 0), false);
    strip_abt_step<NT, BD, T>(out, af, b, k);
  }
}

// The forward's S = Q K^T: from the Q strip cached in registers (qf), or
// with QTG from the strip's rows of the Q block in threadgroup memory (qs),
// one fragment at a time. The branch is a template constant.
template <int NT, int BD, typename T, bool QTG>
inline void strip_qkt(thread Frag* s, thread simdgroup_matrix<T, 8, 8>* qf, const threadgroup T* qs,
                      const threadgroup T* k) {
  if (QTG) {
    strip_abt_tile<NT, BD, T>(s, qs, k);
  } else {
    strip_abt<NT, BD, T>(s, qf, k);
  }
}

// acc (8 x BD, registers) += P * B, where P (8 x NK*8) is a register strip and
// B (NK*8 x BD) a threadgroup tile. Used for O += P V, dQ += dS K,
// dV += P^T dO and dK += dS^T Q.
template <int NK, int BD, typename T>
inline void strip_pb(thread Frag* acc, thread simdgroup_matrix<T, 8, 8>* p,
                     const threadgroup T* b) {
  constexpr int LD = TileLd<T, BD>::value;
  #pragma clang loop unroll(full)
  for (int kk = 0; kk < NK; ++kk) {
    #pragma clang loop unroll(full)
    for (int d = 0; d < BD / 8; ++d) {
      simdgroup_matrix<T, 8, 8> bf;
      simdgroup_load(bf, b + kk * 8 * LD + d * 8, LD, ulong2(0, 0), false);
      simdgroup_multiply_accumulate(acc[d], p[kk], bf, acc[d]);
    }
  }
}

// out = T(in), element by element (P and dS become operands of the input dtype).
template <int NT, typename T>
inline void strip_to_operand(thread simdgroup_matrix<T, 8, 8>* out, thread Frag* in) {
  #pragma clang loop unroll(full)
  for (int t = 0; t < NT; ++t) {
    out[t].thread_elements()[0] = T(in[t].thread_elements()[0]);
    out[t].thread_elements()[1] = T(in[t].thread_elements()[1]);
  }
}

// Multiplies this lane's elements of every fragment by w: a per-row scale,
// since all of a lane's elements lie in row frag_row(lane).
template <int BD>
inline void strip_scale(thread Frag* acc, float w) {
  #pragma clang loop unroll(full)
  for (int d = 0; d < BD / 8; ++d) {
    acc[d].thread_elements()[0] *= w;
    acc[d].thread_elements()[1] *= w;
  }
}
