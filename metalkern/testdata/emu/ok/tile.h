// tile.h — copies a ROWS x COLS tile of a row-major [rows, cols] matrix into
// threadgroup memory, zero outside the matrix. All threads call it.
#pragma once

#include "emu_test.h"

template <typename T, int ROWS, int COLS>
inline void load_tile(threadgroup float* tile, const device T* src, int row0, int col0, int rows, int cols,
                      uint tid) {
  for (int i = int(tid); i < ROWS * COLS; i += kThreads) {
    const int r = row0 + i / COLS, c = col0 + i % COLS;
    tile[i] = (r < rows && c < cols) ? float(src[r * cols + c]) : 0.0f;
  }
}
