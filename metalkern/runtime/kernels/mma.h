// mma.h — 8x8 simdgroup-matrix products on one simdgroup's 8-row strip.
//
// A strip held in registers is an array of fragments covering 8 rows: an
// operand or accumulator of BD columns has BD/8 fragments, a score strip of
// NT*8 columns has NT. Streamed operands live in threadgroup memory as
// row-major tiles with row stride BD. Every function here is called by all 32
// lanes of a simdgroup (simdgroup matrix operations are simdgroup-wide).
// MMAs per call: strip_abt NT*BD/8, strip_pb NK*BD/8; nothing else multiplies.
#pragma once

#include "attn_common.h"

// out[t] = (A * B^T)[0:8, 8t:8t+8] for t < NT, where A (8 x BD) is in registers
// and B (NT*8 x BD) is a threadgroup tile. Used for S = Q K^T, dP = dO V^T
// (forward / dQ pass) and S^T = K Q^T, dP^T = V dO^T (dK/dV pass).
template <int NT, int BD>
inline void strip_abt(thread Frag* out, thread Frag* a, const threadgroup float* b) {
  #pragma clang loop unroll(full)
  for (int t = 0; t < NT; ++t) {
    Frag acc = frag_zero();
    #pragma clang loop unroll(full)
    for (int k = 0; k < BD / 8; ++k) {
      Frag bt;
      simdgroup_load(bt, b + t * 8 * BD + k * 8, BD, ulong2(0, 0), true);
      simdgroup_multiply_accumulate(acc, a[k], bt, acc);
    }
    out[t] = acc;
  }
}

// acc (8 x BD, registers) += P * B, where P (8 x NK*8) is a register strip and
// B (NK*8 x BD) a threadgroup tile. Used for O += P V, dQ += dS K,
// dV += P^T dO and dK += dS^T Q.
template <int NK, int BD>
inline void strip_pb(thread Frag* acc, thread Frag* p, const threadgroup float* b) {
  #pragma clang loop unroll(full)
  for (int kk = 0; kk < NK; ++kk) {
    #pragma clang loop unroll(full)
    for (int d = 0; d < BD / 8; ++d) {
      Frag bf;
      simdgroup_load(bf, b + kk * 8 * BD + d * 8, BD, ulong2(0, 0), false);
      simdgroup_multiply_accumulate(acc[d], p[kk], bf, acc[d]);
    }
  }
}

// acc = 0 for a whole strip.
template <int BD>
inline void strip_zero(thread Frag* acc) {
  #pragma clang loop unroll(full)
  for (int d = 0; d < BD / 8; ++d) {
    acc[d] = frag_zero();
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
