// mma.h — 8x8 simdgroup-matrix products on one simdgroup's 8-row strip.
//
// A strip held in registers is an array of fragments covering 8 rows: an
// operand or accumulator of BD columns has BD/8 fragments, a score strip of
// NT*8 columns has NT. Operand fragments are simdgroup_matrix<T> (T = the input
// dtype), accumulators Frag (float). Streamed operands live in threadgroup
// memory as row-major T tiles with row stride TileLd<T, BD> (BD plus padding).
// Every function here is called by all 32 lanes of a simdgroup (simdgroup
// matrix operations are simdgroup-wide).
// MMAs per call: strip_abt NT*BD/8, strip_pb NK*BD/8; nothing else multiplies.
#pragma once

#include "attn_common.h"

// out[t] = (A * B^T)[0:8, 8t:8t+8] for t < NT, where A (8 x BD) is in registers
// and B (NT*8 x BD) is a threadgroup tile. Used for S = Q K^T, dP = dO V^T
// (forward / dQ pass) and S^T = K Q^T, dP^T = V dO^T (dK/dV pass).
template <int NT, int BD, typename T>
inline void strip_abt(thread Frag* out, thread simdgroup_matrix<T, 8, 8>* a,
                      const threadgroup T* b) {
  constexpr int LD = TileLd<T, BD>::value;
  #pragma clang loop unroll(full)
  for (int t = 0; t < NT; ++t) {
    Frag acc = frag_zero();
    #pragma clang loop unroll(full)
    for (int k = 0; k < BD / 8; ++k) {
      simdgroup_matrix<T, 8, 8> bt;
      simdgroup_load(bt, b + t * 8 * LD + k * 8, LD, ulong2(0, 0), true);
      simdgroup_multiply_accumulate(acc, a[k], bt, acc);
    }
    out[t] = acc;
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
