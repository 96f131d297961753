// deferred.metal — simdgroup matrix products as fibers mode defers them
// (docs/emu.md "Matrix products in fibers mode"): pending results copied,
// swapped, overwritten and half-rounded must behave as values; more ops in
// flight than the record window; the limit on how long a result is kept;
// and matrix ops that only some lanes do. One simdgroup (32 threads) each.
#include <metal_stdlib>
using namespace metal;

struct DeferParams {
  int n;     ///< matrix ops between the first product and its use
  int as_c;  ///< 1: use it as a C operand; 0: store it
};

// out[64 i ..] for i = 0..6: acc_2, acc_1, acc_0 (swapped copies), A B + acc_1
// with a C that is a value in lane 0 only, A (a product overwritten by a load),
// 4 A B (a loop temporary), acc_2; acc_i = (i + 1) A B + 1.
kernel void mm_values(device const float* a [[buffer(0)]], device const float* b [[buffer(1)]],
                      device float* out [[buffer(2)]], uint lane [[thread_index_in_simdgroup]]) {
  simdgroup_float8x8 am, bm;
  simdgroup_load(am, a, 8);
  simdgroup_load(bm, b, 8);
  simdgroup_float8x8 acc = make_filled_simdgroup_matrix<float, 8, 8>(1.0f);
  simdgroup_float8x8 saved[3];
  for (int i = 0; i < 3; ++i) {
    simdgroup_multiply_accumulate(acc, am, bm, acc);
    saved[i] = acc;
  }
  simdgroup_float8x8 t = saved[0];
  saved[0] = saved[2];
  saved[2] = t;
  if (lane == 0) {
    saved[1].thread_elements()[0] += 0.0f;
  }
  simdgroup_float8x8 mixed;
  simdgroup_multiply_accumulate(mixed, am, bm, saved[1]);
  simdgroup_float8x8 over;
  simdgroup_multiply(over, am, bm);
  simdgroup_load(over, a, 8);
  simdgroup_float8x8 sum = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
  for (int i = 0; i < 4; ++i) {
    simdgroup_float8x8 tmp;
    simdgroup_multiply(tmp, am, bm);
    sum.thread_elements()[0] += tmp.thread_elements()[0];
    sum.thread_elements()[1] += tmp.thread_elements()[1];
  }
  simdgroup_store(saved[0], out, 8);
  simdgroup_store(saved[1], out + 64, 8);
  simdgroup_store(saved[2], out + 128, 8);
  simdgroup_store(mixed, out + 192, 8);
  simdgroup_store(over, out + 256, 8);
  simdgroup_store(sum, out + 320, 8);
  simdgroup_store(acc, out + 384, 8);
}

// All-half products chained through a half accumulator (each step's result
// rounded to half, then the next step's C): out[64 i ..] = step i, i = 0..2.
kernel void mm_half_chain(device const half* a [[buffer(0)]], device const half* b [[buffer(1)]],
                          device half* out [[buffer(2)]]) {
  simdgroup_half8x8 am, bm;
  simdgroup_load(am, a, 8);
  simdgroup_load(bm, b, 8);
  simdgroup_half8x8 acc = make_filled_simdgroup_matrix<half, 8, 8>(half(0.5f));
  simdgroup_half8x8 steps[3];
  for (int i = 0; i < 3; ++i) {
    simdgroup_multiply_accumulate(acc, am, bm, acc);
    steps[i] = acc;
  }
  for (int i = 0; i < 3; ++i) {
    simdgroup_store(steps[i], out + 64 * i, 8);
  }
}

// 400 products before any result is read (more than the records in flight):
// out[64 j ..] = 100 A B for j = 0..3.
kernel void mm_many(device const float* a [[buffer(0)]], device const float* b [[buffer(1)]],
                    device float* out [[buffer(2)]]) {
  simdgroup_float8x8 am, bm;
  simdgroup_load(am, a, 8);
  simdgroup_load(bm, b, 8);
  simdgroup_float8x8 acc[4];
  for (int j = 0; j < 4; ++j) {
    acc[j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
  }
  for (int i = 0; i < 100; ++i) {
    for (int j = 0; j < 4; ++j) {
      simdgroup_multiply_accumulate(acc[j], am, bm, acc[j]);
    }
  }
  for (int j = 0; j < 4; ++j) {
    simdgroup_store(acc[j], out + 64 * j, 8);
  }
}

// x = A B, then p.n more products, then x is stored (out[0..64]) or used as
// the C operand of one more (out[0..64] = 2 A B); out[64..128] = p.n A B.
kernel void mm_late(device const float* a [[buffer(0)]], device const float* b [[buffer(1)]],
                    device float* out [[buffer(2)]], constant DeferParams& p [[buffer(3)]]) {
  simdgroup_float8x8 am, bm;
  simdgroup_load(am, a, 8);
  simdgroup_load(bm, b, 8);
  simdgroup_float8x8 x;
  simdgroup_multiply(x, am, bm);  // SITE: mm_late_x
  simdgroup_float8x8 y = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
  for (int i = 0; i < p.n; ++i) {
    simdgroup_multiply_accumulate(y, am, bm, y);
  }
  if (p.as_c != 0) {
    simdgroup_multiply_accumulate(x, am, bm, x);
  }
  simdgroup_store(x, out, 8);
  simdgroup_store(y, out + 64, 8);
}

// Divergent matrix ops (Apple GPUs may tolerate some; emu reports each with
// the kernel, the sites and the lanes, in both launcher modes).

// Even and odd lanes multiply at two different call sites.
kernel void mma_div_sites(device float* out [[buffer(0)]], uint lane [[thread_index_in_simdgroup]]) {
  simdgroup_float8x8 x, id = simdgroup_float8x8(1.0f);
  if (lane % 2 == 0) {
    simdgroup_multiply(x, id, id);  // SITE: mma_div_even
  } else {
    simdgroup_multiply(x, id, id);  // SITE: mma_div_odd
  }
  simdgroup_store(x, out, 8);
}

// Half the lanes multiply, then all reach a barrier.
kernel void mma_div_barrier(device float* out [[buffer(0)]], uint lane [[thread_index_in_simdgroup]]) {
  simdgroup_float8x8 x = simdgroup_float8x8(2.0f), id = simdgroup_float8x8(1.0f);
  if (lane < 16) {
    simdgroup_multiply(x, id, id);  // SITE: mma_div_barrier_op
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);  // SITE: mma_div_barrier
  simdgroup_store(x, out, 8);
}

// Half the lanes multiply, then all reach a simd_sum.
kernel void mma_div_simd(device float* out [[buffer(0)]], uint lane [[thread_index_in_simdgroup]]) {
  simdgroup_float8x8 x = simdgroup_float8x8(2.0f), id = simdgroup_float8x8(1.0f);
  if (lane < 16) {
    simdgroup_multiply(x, id, id);  // SITE: mma_div_simd_op
  }
  out[64 + lane] = simd_sum(float(lane));  // SITE: mma_div_simd
  simdgroup_store(x, out, 8);
}

// Half the lanes multiply and read their result, the others go on to a
// barrier: the readers would wait forever.
kernel void mma_div_wait(device float* out [[buffer(0)]], uint lane [[thread_index_in_simdgroup]]) {
  simdgroup_float8x8 x = simdgroup_float8x8(2.0f), id = simdgroup_float8x8(1.0f);
  if (lane < 16) {
    simdgroup_multiply(x, id, id);  // SITE: mma_div_wait_op
    out[lane] = x.thread_elements()[0];
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);  // SITE: mma_div_wait
  out[32 + lane] = 1.0f;
}

// Half the lanes multiply (never reading the result) and every lane returns.
kernel void mma_div_return(device float* out [[buffer(0)]], uint lane [[thread_index_in_simdgroup]]) {
  simdgroup_float8x8 x = simdgroup_float8x8(2.0f), id = simdgroup_float8x8(1.0f);
  if (lane < 16) {
    simdgroup_multiply(x, id, id);  // SITE: mma_div_return_op
  }
  out[lane] = 1.0f;
}
