// emu_test.h — shared by the emu test kernels (included twice by
// matmul.metal, directly and through tile.h: #pragma once must hold).
#pragma once

#include <metal_stdlib>
using namespace metal;

struct MatmulParams {
  int M;  ///< rows of A and C
  int N;  ///< columns of B and C
  int K;  ///< columns of A, rows of B
};

// A program-scope constant: every .metal file that includes this header
// gets its own copy (emu wraps each file in an anonymous namespace).
constant constexpr int kThreads = 128;
