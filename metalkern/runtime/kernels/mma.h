// mma.h — 8x8 simdgroup-matrix products on one simdgroup's 8-row strip.
//
// A strip operand held in registers is an array of BD/8 fragments covering
// 8 rows x BD columns. Streamed operands live in threadgroup memory as
// row-major tiles with row stride BD. Every function here is called by all 32
// lanes of a simdgroup (simdgroup matrix operations are simdgroup-wide).
#pragma once

#include "attn_common.h"

// out[0:8, 0:NT*8] = A * B^T, where A (8 x BD) is in registers and B (NT*8 x BD)
// is a threadgroup tile. `out` has row stride ld. Used for S = Q K^T, dP = dO V^T
// (forward / dQ pass) and S^T = K Q^T, dP^T = V dO^T (dK/dV pass).
template <int NT, int BD>
inline void strip_abt(threadgroup float* out, int ld, thread Frag* a, const threadgroup float* b,
                      Frag zero) {
  #pragma clang loop unroll(full)
  for (int t = 0; t < NT; ++t) {
    Frag acc = zero;
    #pragma clang loop unroll(full)
    for (int k = 0; k < BD / 8; ++k) {
      Frag bt;
      simdgroup_load(bt, b + t * 8 * BD + k * 8, BD, ulong2(0, 0), true);
      simdgroup_multiply_accumulate(acc, a[k], bt, acc);
    }
    simdgroup_store(acc, out + t * 8, ld);
  }
}

// acc (8 x BD, registers) += P * B, where P (8 x NK*8, row stride ld) and
// B (NK*8 x BD) are threadgroup tiles. Used for O += P V, dQ += dS K,
// dV += P^T dO and dK += dS^T Q.
template <int NK, int BD>
inline void strip_pb(thread Frag* acc, const threadgroup float* p, int ld,
                     const threadgroup float* b) {
  #pragma clang loop unroll(full)
  for (int kk = 0; kk < NK; ++kk) {
    Frag pf;
    simdgroup_load(pf, p + kk * 8, ld, ulong2(0, 0), false);
    #pragma clang loop unroll(full)
    for (int d = 0; d < BD / 8; ++d) {
      Frag bf;
      simdgroup_load(bf, b + kk * 8 * BD + d * 8, BD, ulong2(0, 0), false);
      simdgroup_multiply_accumulate(acc[d], pf, bf, acc[d]);
    }
  }
}

// acc = diag(w) * acc, with the 8x8 diagonal matrix diag(w) stored row-major in
// threadgroup memory (zero off the diagonal). Rescales each row of the strip.
template <int BD>
inline void strip_scale_rows(thread Frag* acc, const threadgroup float* diag, Frag zero) {
  Frag dg;
  simdgroup_load(dg, diag, 8, ulong2(0, 0), false);
  #pragma clang loop unroll(full)
  for (int d = 0; d < BD / 8; ++d) {
    Frag old = acc[d];
    simdgroup_multiply_accumulate(acc[d], dg, old, zero);
  }
}

// acc = 0 for a whole strip.
template <int BD>
inline void strip_zero(thread Frag* acc, Frag zero) {
  #pragma clang loop unroll(full)
  for (int d = 0; d < BD / 8; ++d) {
    acc[d] = zero;
  }
}
