// softmax.h — row-wise work on a simdgroup's 8-row strip of scores.
//
// Lane layout: lane l works on strip row r = l / 4 and columns c = l % 4 + 4j;
// the 4 lanes of a row combine partial results with simd_shuffle_xor(1) and
// (2). Scores arrive as raw dot products q.k and are mapped to the exp2
// domain with scale_log2 = scale * log2(e). A column is valid when the key
// exists and, under the causal mask, j <= i (top-left alignment).
#pragma once

#include "attn_common.h"

inline bool attn_visible(int i, int j, int nq, int nk, int causal) {
  return i < nq && j < nk && (causal == 0 || j <= i);
}

// Forward online-softmax update for one key block (all 32 lanes). On entry
// s[r][c] (row stride BK) holds raw scores of strip row r; on return it holds
// P = exp2(s2 - m_new) (0 where masked), the running max m and sum l of this
// lane's row are updated, and diag[r][r] = exp2(m_old - m_new) rescales O.
template <int BK>
inline void softmax_update(threadgroup float* s, threadgroup float* diag, thread float& m,
                           thread float& l, int qrow, int k0, int nq, int nk, int causal,
                           float scale_log2, uint lane) {
  const int r = int(lane) / 4;
  const int sub = int(lane) % 4;
  threadgroup float* row = s + r * BK;
  float mx = kMaskScore;
  for (int c = sub; c < BK; c += 4) {
    const bool ok = attn_visible(qrow, k0 + c, nq, nk, causal);
    const float x = ok ? row[c] * scale_log2 : kMaskScore;
    row[c] = x;
    mx = max(mx, x);
  }
  mx = max(mx, simd_shuffle_xor(mx, ushort(1)));
  mx = max(mx, simd_shuffle_xor(mx, ushort(2)));
  const float m_new = max(m, mx);
  float sum = 0.0f;
  for (int c = sub; c < BK; c += 4) {
    const bool ok = attn_visible(qrow, k0 + c, nq, nk, causal);
    const float pr = ok ? fast::exp2(row[c] - m_new) : 0.0f;
    row[c] = pr;
    sum += pr;
  }
  sum += simd_shuffle_xor(sum, ushort(1));
  sum += simd_shuffle_xor(sum, ushort(2));
  const float alpha = fast::exp2(m - m_new);
  l = l * alpha + sum;
  m = m_new;
  if (sub == 0) {
    diag[r * 9] = alpha;
  }
}

// dQ pass (any lane mapping works; no simd ops): for strip row r (query qrow)
// and key columns c, P = exp2(s2 - L2) and s[r][c] = dS = P * (dP - Delta).
// l2 is the row's LSE in the exp2 domain, delta its Delta.
template <int BK>
inline void dq_scores(threadgroup float* s, const threadgroup float* dp, float l2, float delta,
                      int qrow, int k0, int nq, int nk, int causal, float scale_log2, uint lane) {
  const int r = int(lane) / 4;
  const int sub = int(lane) % 4;
  for (int c = sub; c < BK; c += 4) {
    const bool ok = attn_visible(qrow, k0 + c, nq, nk, causal);
    const float pr = ok ? fast::exp2(s[r * BK + c] * scale_log2 - l2) : 0.0f;
    s[r * BK + c] = pr * (dp[r * BK + c] - delta);
  }
}

// dK/dV pass: strip row r is key krow, columns c are queries q0 + c whose LSE
// (exp2 domain) and Delta are in l2s[c], deltas[c]. On return st holds P^T and
// dpt holds dS^T = P^T * (dP^T - Delta).
template <int BQ>
inline void dkv_scores(threadgroup float* st, threadgroup float* dpt,
                       const threadgroup float* l2s, const threadgroup float* deltas, int krow,
                       int q0, int nq, int nk, int causal, float scale_log2, uint lane) {
  const int r = int(lane) / 4;
  const int sub = int(lane) % 4;
  for (int c = sub; c < BQ; c += 4) {
    const bool ok = attn_visible(q0 + c, krow, nq, nk, causal);
    const float pr = ok ? fast::exp2(st[r * BQ + c] * scale_log2 - l2s[c]) : 0.0f;
    st[r * BQ + c] = pr;
    dpt[r * BQ + c] = pr * (dpt[r * BQ + c] - deltas[c]);
  }
}
