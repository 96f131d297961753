// softmax.h — row-wise work on a simdgroup's 8-row strip of scores, in registers.
//
// A score strip is NT fragments (8 rows x NT*8 columns); lane l holds elements
// (frag_row(l), 8t + frag_col(l) + j) of fragment t (attn_common.h). Row
// reductions combine the 4 lanes of a row with simd_shuffle_xor(1) and (8).
// Scores arrive as raw dot products q.k and are mapped to the exp2 domain with
// scale_log2 = scale * log2(e). A column is valid when the key exists and,
// under the causal mask, j <= i (top-left alignment).
#pragma once

#include "attn_common.h"

inline bool attn_visible(int i, int j, int nq, int nk, int causal) {
  return i < nq && j < nk && (causal == 0 || j <= i);
}

// Forward online-softmax update for one key block (all 32 lanes). On entry s
// holds the raw scores of this lane's row qrow against keys k0..k0+NT*8; on
// return it holds P = exp2(s2 - m_new) (0 where masked). m is the row's running
// max (the same in the row's 4 lanes); lpart is this lane's share of the running
// sum (reduced across the row only at the end, attn_fwd). Returns
// alpha = exp2(m_old - m_new), the factor this lane's O elements are rescaled by.
template <int NT>
inline float softmax_update(thread Frag* s, thread float& m, thread float& lpart, int qrow, int k0,
                            int nq, int nk, int causal, float scale_log2, uint lane) {
  const int c0 = k0 + frag_col(lane);
  float mx = kMaskScore;
  #pragma clang loop unroll(full)
  for (int t = 0; t < NT; ++t) {
    #pragma clang loop unroll(full)
    for (int j = 0; j < 2; ++j) {
      const bool ok = attn_visible(qrow, c0 + t * 8 + j, nq, nk, causal);
      const float x = ok ? s[t].thread_elements()[j] * scale_log2 : kMaskScore;
      s[t].thread_elements()[j] = x;
      mx = max(mx, x);
    }
  }
  mx = max(mx, simd_shuffle_xor(mx, ushort(1)));
  mx = max(mx, simd_shuffle_xor(mx, ushort(8)));
  const float m_new = max(m, mx);
  float sum = 0.0f;
  #pragma clang loop unroll(full)
  for (int t = 0; t < NT; ++t) {
    #pragma clang loop unroll(full)
    for (int j = 0; j < 2; ++j) {
      const bool ok = attn_visible(qrow, c0 + t * 8 + j, nq, nk, causal);
      const float pr = ok ? fast::exp2(s[t].thread_elements()[j] - m_new) : 0.0f;
      s[t].thread_elements()[j] = pr;
      sum += pr;
    }
  }
  const float alpha = fast::exp2(m - m_new);
  lpart = lpart * alpha + sum;
  m = m_new;
  return alpha;
}

// Sum of a per-lane value over the 4 lanes of its row.
inline float row_sum(float x) {
  x += simd_shuffle_xor(x, ushort(1));
  x += simd_shuffle_xor(x, ushort(8));
  return x;
}

// dQ pass: this lane's row is query qrow, its columns keys k0 + 8t + frag_col + j.
// On return s holds dS = P * (dP - Delta) with P = exp2(s * scale_log2 - l2);
// l2 is the row's LSE in the exp2 domain, delta its Delta.
template <int NT>
inline void dq_scores(thread Frag* s, thread Frag* dp, float l2, float delta, int qrow, int k0,
                      int nq, int nk, int causal, float scale_log2, uint lane) {
  const int c0 = k0 + frag_col(lane);
  #pragma clang loop unroll(full)
  for (int t = 0; t < NT; ++t) {
    #pragma clang loop unroll(full)
    for (int j = 0; j < 2; ++j) {
      const bool ok = attn_visible(qrow, c0 + t * 8 + j, nq, nk, causal);
      const float pr = ok ? fast::exp2(s[t].thread_elements()[j] * scale_log2 - l2) : 0.0f;
      s[t].thread_elements()[j] = pr * (dp[t].thread_elements()[j] - delta);
    }
  }
}

// dK/dV pass: this lane's row is key krow, its columns queries q0 + c with
// c = 8t + frag_col + j, whose LSE (exp2 domain) and Delta are in l2s[c],
// deltas[c] (threadgroup memory). On return st holds P^T and dpt holds
// dS^T = P^T * (dP^T - Delta), 0 where masked: LSE and Delta are read only
// for the visible scores.
template <int NT>
inline void dkv_scores(thread Frag* st, thread Frag* dpt, const threadgroup float* l2s,
                       const threadgroup float* deltas, int krow, int q0, int nq, int nk,
                       int causal, float scale_log2, uint lane) {
  const int c0 = frag_col(lane);
  #pragma clang loop unroll(full)
  for (int t = 0; t < NT; ++t) {
    #pragma clang loop unroll(full)
    for (int j = 0; j < 2; ++j) {
      const int c = c0 + t * 8 + j;
      const bool ok = attn_visible(q0 + c, krow, nq, nk, causal);
      const float pr = ok ? fast::exp2(st[t].thread_elements()[j] * scale_log2 - l2s[c]) : 0.0f;
      st[t].thread_elements()[j] = pr;
      dpt[t].thread_elements()[j] = ok ? pr * (dpt[t].thread_elements()[j] - deltas[c]) : 0.0f;
    }
  }
}
