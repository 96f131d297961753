// mma.h — 8x8 simdgroup-matrix products on one simdgroup's 8-row strip.
//
// A strip held in registers is an array of fragments covering 8 rows: an
// operand or accumulator of BD columns has BD/8 fragments, a score strip of
// NT*8 columns has NT. Operand fragments are simdgroup_matrix<T> (T = the input
// dtype), accumulators Frag (float). Streamed operands live in threadgroup
// memory as row-major T tiles with row stride TileLd<T, BD> (BD plus padding).
// Every function here is called by all 32 lanes of a simdgroup (simdgroup
// matrix operations are simdgroup-wide).
// MMAs per call: strip_abt NT*BD/8, strip_abt_tile and strip_qkt R*NT*BD/8,
// strip_pb R*NK*BD/8 (R strips, 1 unless given); nothing else multiplies.
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

// acc[r*AS] += a[r*PS] * F for r < R, where F is the 8x8 fragment of a
// threadgroup tile (row stride LD) at src, transposed if asked: one fragment
// load shared by R strips' products (R = 1: one product).
template <int R, int LD, int AS, int PS, typename T>
inline void frag_mma_strips(thread Frag* acc, thread simdgroup_matrix<T, 8, 8>* a,
                            const threadgroup T* src, bool transpose) {
  simdgroup_matrix<T, 8, 8> f;
  simdgroup_load(f, src, LD, ulong2(0, 0), transpose);
  #pragma clang loop unroll(full)
  for (int r = 0; r < R; ++r) {
    simdgroup_multiply_accumulate(acc[r * AS], a[r * PS], f, acc[r * AS]);
  }
}

// out[r*NT + t] += a[r] * B[8t:8t+8, 8k:8k+8]^T for t < NT, r < R: the k-th
// head-dim step of S = A B^T for R strips, a[r] being strip r's k-th 8x8
// fragment of A and B (NT*8 x BD) a threadgroup tile; each B fragment is
// loaded once for all R strips.
template <int NT, int BD, typename T, int R = 1>
inline void strip_abt_step(thread Frag* out, thread simdgroup_matrix<T, 8, 8>* a,
                           const threadgroup T* b, int k) {
  constexpr int LD = TileLd<T, BD>::value;
  #pragma clang loop unroll(full)
  for (int t = 0; t < NT; ++t) {
    frag_mma_strips<R, LD, NT, 1, T>(out + t, a, b + t * 8 * LD + k * 8, true);
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
    strip_abt_step<NT, BD, T>(out, a + k, b, k);
  }
}

// The same product for R strips with A read from threadgroup memory: a points
// at strip 0's first row in a tile of row stride TileLd<T, BD>, strip r
// starts kOwnedRows rows further per r (out: R x NT fragments, strip r at
// out + r*NT). One A fragment per strip is live at a time (loaded once per
// head-dim step, used for its NT outputs): the forward's S = Q K^T where the
// Q block is kept in threadgroup memory (the qtg kernels of host/select.h).
template <int NT, int BD, typename T, int R = 1>
inline void strip_abt_tile(thread Frag* out, const threadgroup T* a, const threadgroup T* b) {
  constexpr int LD = TileLd<T, BD>::value;
  strip_zero<R * NT * 8>(out);
  #pragma clang loop unroll(full)
  for (int k = 0; k < BD / 8; ++k) {
    simdgroup_matrix<T, 8, 8> af[R];
    #pragma clang loop unroll(full)
    for (int r = 0; r < R; ++r) {
      simdgroup_load(af[r], a + r * kOwnedRows * LD + k * 8, LD, ulong2(0, 0), false);
    }
    strip_abt_step<NT, BD, T, R>(out, af, b, k);
  }
}

// The forward's S = Q K^T: from the Q strip cached in registers (qf, one
// strip), or with QTG for R strips from their rows of the Q block in
// threadgroup memory (qs: strip 0's first row), one fragment per strip at a
// time. The branch is a template constant.
template <int NT, int BD, typename T, bool QTG, int R>
inline void strip_qkt(thread Frag* s, thread simdgroup_matrix<T, 8, 8>* qf, const threadgroup T* qs,
                      const threadgroup T* k) {
  if (QTG) {
    strip_abt_tile<NT, BD, T, R>(s, qs, k);
  } else {
    strip_abt<NT, BD, T>(s, qf, k);
  }
}

// acc (8 x BD, registers) += P * B, where P (8 x NK*8) is a register strip and
// B (NK*8 x BD) a threadgroup tile. Used for O += P V, dQ += dS K,
// dV += P^T dO and dK += dS^T Q. With R strips (the forward's two-strip
// blocks) acc + r*BD/8 += (p + r*NK) * B for each r, every B fragment loaded
// once for all R.
template <int NK, int BD, typename T, int R = 1>
inline void strip_pb(thread Frag* acc, thread simdgroup_matrix<T, 8, 8>* p,
                     const threadgroup T* b) {
  constexpr int LD = TileLd<T, BD>::value;
  constexpr int NB = BD / 8;
  #pragma clang loop unroll(full)
  for (int kk = 0; kk < NK; ++kk) {
    #pragma clang loop unroll(full)
    for (int d = 0; d < NB; ++d) {
      frag_mma_strips<R, LD, NB, NK, T>(acc + d, p + kk, b + kk * 8 * LD + d * 8, false);
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
