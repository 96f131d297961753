// loader.h — copies between device memory and threadgroup memory.
//
// Device matrices are the row-major [n, d] slice of one (batch, head); tiles
// in threadgroup memory are float with row stride BD (the padded head dim).
// Rows >= n and columns >= d read as zero, so padded rows and head-dim tails
// contribute nothing to any product, and are never written back.
#pragma once

#include "attn_common.h"

// All threads: tile[r][c] = src[row0 + r][c] (zero outside [n, d]).
template <typename T, int ROWS, int BD>
inline void load_tile(threadgroup float* tile, const device T* src, int row0, int n, int d,
                      uint tid) {
  for (int idx = int(tid); idx < ROWS * BD; idx += kThreads) {
    const int r = idx / BD;
    const int c = idx % BD;
    const int gr = row0 + r;
    float x = 0.0f;
    if (gr < n && c < d) {
      x = float(src[gr * d + c]);
    }
    tile[idx] = x;
  }
}

// All threads: dst[row0 + r][c] = T(tile[r][c] * mul) inside [n, d].
template <typename T, int ROWS, int BD>
inline void store_tile(device T* dst, const threadgroup float* tile, int row0, int n, int d,
                       float mul, uint tid) {
  for (int idx = int(tid); idx < ROWS * BD; idx += kThreads) {
    const int r = idx / BD;
    const int c = idx % BD;
    const int gr = row0 + r;
    if (gr < n && c < d) {
      dst[gr * d + c] = T(tile[idx] * mul);
    }
  }
}

// All threads: each simdgroup loads the BD/8 fragments of its 8-row strip of the
// owned block [row0, row0 + kOwnedRows) of src. The rows pass through `stage`
// (room for CAP rows of BD floats) in rounds when the block does not fit.
template <typename T, int CAP, int BD>
inline void load_strip_frags(thread Frag* frags, threadgroup float* stage, const device T* src,
                             int row0, int n, int d, uint tid, uint sg) {
  constexpr int R = CAP < kOwnedRows ? CAP : kOwnedRows;
  static_assert(R % kStrip == 0 && kOwnedRows % R == 0, "staging rounds must hold whole strips");
  for (int base = 0; base < kOwnedRows; base += R) {
    threadgroup_barrier(mem_flags::mem_threadgroup);
    load_tile<T, R, BD>(stage, src, row0 + base, n, d, tid);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    const int mine = int(sg) * kStrip - base;
    if (mine >= 0 && mine < R) {  // uniform per simdgroup
      #pragma clang loop unroll(full)
      for (int k = 0; k < BD / 8; ++k) {
        simdgroup_load(frags[k], stage + mine * BD + k * 8, BD, ulong2(0, 0), false);
      }
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
}

// All threads: the inverse of load_strip_frags; values are multiplied by `mul`.
template <typename T, int CAP, int BD>
inline void store_strip_frags(device T* dst, thread Frag* frags, threadgroup float* stage,
                              int row0, int n, int d, float mul, uint tid, uint sg) {
  constexpr int R = CAP < kOwnedRows ? CAP : kOwnedRows;
  static_assert(R % kStrip == 0 && kOwnedRows % R == 0, "staging rounds must hold whole strips");
  for (int base = 0; base < kOwnedRows; base += R) {
    threadgroup_barrier(mem_flags::mem_threadgroup);
    const int mine = int(sg) * kStrip - base;
    if (mine >= 0 && mine < R) {  // uniform per simdgroup
      #pragma clang loop unroll(full)
      for (int k = 0; k < BD / 8; ++k) {
        simdgroup_store(frags[k], stage + mine * BD + k * 8, BD);
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    store_tile<T, R, BD>(dst, stage, row0 + base, n, d, mul, tid);
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
}
