// matmul.metal — C = A B with threadgroup tiles and 8x8 simdgroup matrices:
// a 16x16 block of C per threadgroup, one 8x8 quarter per simdgroup.
#include <metal_stdlib>
using namespace metal;

#include "emu_test.h"
#include "tile.h"

template <typename T, int BM, int BN, int BK>
[[kernel, max_total_threads_per_threadgroup(128)]] void matmul(device const T* a [[buffer(0)]], device const T* b [[buffer(1)]],
                       device float* c [[buffer(2)]], constant MatmulParams& p [[buffer(3)]],
                       uint2 tgid [[threadgroup_position_in_grid]],
                       uint tid [[thread_index_in_threadgroup]],
                       ushort sg [[simdgroup_index_in_threadgroup]]) {
  static_assert(BM == 16 && BN == 16 && BK % 8 == 0, "four 8x8 blocks, one per simdgroup");
  threadgroup float as[BM * BK], bs[BK * BN];
  threadgroup float cs[BM][BN];
  const int row0 = int(tgid.y) * BM, col0 = int(tgid.x) * BN;
  const int sr = (int(sg) / 2) * 8, sc = (int(sg) % 2) * 8;
  simdgroup_float8x8 acc = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
  for (int k0 = 0; k0 < p.K; k0 += BK) {
    load_tile<T, BM, BK>(as, a, row0, k0, p.M, p.K, tid);
    load_tile<T, BK, BN>(bs, b, k0, col0, p.K, p.N, tid);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (int kk = 0; kk < BK; kk += 8) {
      simdgroup_float8x8 am, bm;
      simdgroup_load(am, as, BK, ulong2(kk, sr));  // origin = (column, row)
      simdgroup_load(bm, bs, BN, ulong2(sc, kk));
      simdgroup_multiply_accumulate(acc, am, bm, acc);
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  simdgroup_store(acc, &cs[sr][sc], BN);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  for (int i = int(tid); i < BM * BN; i += kThreads) {
    const int r = row0 + i / BN, col = col0 + i % BN;
    if (r < p.M && col < p.N) {
      c[r * p.N + col] = cs[i / BN][i % BN];
    }
  }
}

template [[host_name("matmul_f32")]] [[kernel]] void matmul<float, 16, 16, 16>(device const float* a [[buffer(0)]], device const float* b [[buffer(1)]], device float* c [[buffer(2)]], constant MatmulParams& p [[buffer(3)]], uint2 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], ushort sg [[simdgroup_index_in_threadgroup]]);
template [[host_name("matmul_f16")]] [[kernel]] void matmul<half, 16, 16, 8>(device const half* a [[buffer(0)]], device const half* b [[buffer(1)]], device float* c [[buffer(2)]], constant MatmulParams& p [[buffer(3)]], uint2 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], ushort sg [[simdgroup_index_in_threadgroup]]);

// One 8x8 block: C = A * Bt^T + I with Bt [8, 8] read through a transposed
// load, and A's diagonal scaled through thread_elements() after a
// simdgroup_multiply. A plain (non-template) kernel, one simdgroup.
kernel void mm_transpose(device const float* a [[buffer(0)]], device const float* bt [[buffer(1)]],
                         device float* c [[buffer(2)]], device float* d [[buffer(3)]],
                         uint lane [[thread_index_in_simdgroup]]) {
  simdgroup_float8x8 am, bm, id = simdgroup_float8x8(1.0f), out;
  simdgroup_load(am, a, 8);
  simdgroup_load(bm, bt, 8, ulong2(0, 0), true);
  simdgroup_multiply_accumulate(out, am, bm, id);
  simdgroup_store(out, c, 8);
  // d = 2 * A, through each lane's two elements.
  simdgroup_float8x8 twice;
  simdgroup_multiply(twice, am, id);
  twice.thread_elements() *= 2.0f;
  simdgroup_store(twice, d, 8);
}

// Half operands with float accumulation, one 8x8 product per threadgroup:
// D = A * B + C for the blocks at 64 * group (A, B half; C, D float).
kernel void mm_half_operands(device const half* a [[buffer(0)]], device const half* b [[buffer(1)]],
                             device const float* c [[buffer(2)]], device float* d [[buffer(3)]],
                             uint g [[threadgroup_position_in_grid]]) {
  simdgroup_half8x8 am, bm;
  simdgroup_float8x8 cm, dm;
  simdgroup_load(am, a + 64 * g, 8);
  simdgroup_load(bm, b + 64 * g, 8);
  simdgroup_load(cm, c + 64 * g, 8);
  simdgroup_multiply_accumulate(dm, am, bm, cm);
  simdgroup_store(dm, d + 64 * g, 8);
}
