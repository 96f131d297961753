// loader.h — copies between device memory and threadgroup memory / registers.
//
// Device matrices are the row-major [n, d] slice of one (batch, head); tiles
// in threadgroup memory hold the input dtype T with row stride LD (TileLd:
// the padded head dim BD plus 16 bytes). Owned strips go straight between
// device memory and registers, per lane. Rows >= n and columns >= d read as
// zero, so padded rows and head-dim tails contribute nothing to any product,
// and are never written back.
#pragma once

#include "attn_common.h"

// All threads: tile[r][c] = src[row0 + r][c] (zero outside [n, d]). An interior
// tile (all ROWS rows exist and d == BD) is copied with 4-element packed loads
// and no bounds checks; an edge tile element by element, guarded. The branch
// is uniform over the threadgroup.
template <typename T, int ROWS, int BD>
inline void load_tile(threadgroup T* tile, const device T* src, int row0, int n, int d, uint tid) {
  constexpr int LD = TileLd<T, BD>::value;
  static_assert(BD % 4 == 0 && LD % 4 == 0, "rows are whole 4-element vectors");
  typedef typename Packed4<T>::type V4;
  if (row0 + ROWS <= n && d == BD) {
    constexpr int kVecs = BD / 4;  // per row
    for (int i = int(tid); i < ROWS * kVecs; i += kThreads) {
      const int r = i / kVecs;
      const int c = (i % kVecs) * 4;
      const V4 x = *(const device V4*)(src + (row0 + r) * d + c);  // C-style: the counting build's pointers are classes
      *(threadgroup V4*)(tile + r * LD + c) = x;
    }
  } else {
    for (int idx = int(tid); idx < ROWS * BD; idx += kThreads) {
      const int r = idx / BD;
      const int c = idx % BD;
      const int gr = row0 + r;
      tile[r * LD + c] = gr < n && c < d ? src[gr * d + c] : T(0.0f);
    }
  }
}

// Per lane, no threadgroup memory: frags (8 rows x BD) = src[row0 + r][c], the
// rows of one simdgroup's strip, each lane reading its own two elements of
// every fragment (zero outside [n, d]).
template <typename T, int BD>
inline void load_strip_frags(thread simdgroup_matrix<T, 8, 8>* frags, const device T* src, int row0,
                             int n, int d, uint lane) {
  const int r = row0 + frag_row(lane);
  const int c0 = frag_col(lane);
  const bool in = r < n;
  #pragma clang loop unroll(full)
  for (int k = 0; k < BD / 8; ++k) {
    const int c = k * 8 + c0;
    frags[k].thread_elements()[0] = in && c < d ? src[r * d + c] : T(0.0f);
    frags[k].thread_elements()[1] = in && c + 1 < d ? src[r * d + c + 1] : T(0.0f);
  }
}

// Per lane, no threadgroup memory: this lane's share of rowsum(src * frags)
// for its row of the strip (the same elements load_strip_frags gives it,
// products in float; zero outside [n, d]). row_sum (softmax.h) completes it.
template <typename T, int BD>
inline float strip_row_dot(const device T* src, thread simdgroup_matrix<T, 8, 8>* frags, int row0, int n,
                           int d, uint lane) {
  const int r = row0 + frag_row(lane);
  const int c0 = frag_col(lane);
  float acc = 0.0f;
  if (r < n) {
    #pragma clang loop unroll(full)
    for (int k = 0; k < BD / 8; ++k) {
      const int c = k * 8 + c0;
      if (c < d) {
        acc += float(src[r * d + c]) * float(frags[k].thread_elements()[0]);
      }
      if (c + 1 < d) {
        acc += float(src[r * d + c + 1]) * float(frags[k].thread_elements()[1]);
      }
    }
  }
  return acc;
}

// The same share with the strip read from a threadgroup tile (the strip's
// first row at tile, row stride TileLd<T, BD>): the same elements, products
// and order as strip_row_dot on the fragments load_strip_frags would give.
template <typename T, int BD>
inline float strip_row_dot_tile(const device T* src, const threadgroup T* tile, int row0, int n, int d,
                                uint lane) {
  constexpr int LD = TileLd<T, BD>::value;
  const int r = row0 + frag_row(lane);
  const int c0 = frag_col(lane);
  const threadgroup T* t = tile + frag_row(lane) * LD;
  float acc = 0.0f;
  if (r < n) {
    #pragma clang loop unroll(full)
    for (int k = 0; k < BD / 8; ++k) {
      const int c = k * 8 + c0;
      if (c < d) {
        acc += float(src[r * d + c]) * float(t[c]);
      }
      if (c + 1 < d) {
        acc += float(src[r * d + c + 1]) * float(t[c + 1]);
      }
    }
  }
  return acc;
}

// Per lane: dst[row0 + r][c] = T(frags * mul) inside [n, d]; mul is this lane's
// row's factor (1/l for O, the softmax scale for dQ and dK).
template <typename T, int BD>
inline void store_strip_frags(device T* dst, thread Frag* frags, int row0, int n, int d, float mul,
                              uint lane) {
  const int r = row0 + frag_row(lane);
  const int c0 = frag_col(lane);
  if (r < n) {
    #pragma clang loop unroll(full)
    for (int k = 0; k < BD / 8; ++k) {
      const int c = k * 8 + c0;
      if (c < d) {
        dst[r * d + c] = T(frags[k].thread_elements()[0] * mul);
      }
      if (c + 1 < d) {
        dst[r * d + c + 1] = T(frags[k].thread_elements()[1] * mul);
      }
    }
  }
}
