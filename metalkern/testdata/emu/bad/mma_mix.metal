// mma_mix.metal — float A and B with a half accumulator is not a mix Metal's
// simdgroup_multiply_accumulate offers (all float, all half, or half A, B
// with float C, D).
#include <metal_stdlib>
using namespace metal;

kernel void mma_mix(device const float* a [[buffer(0)]], device half* out [[buffer(1)]]) {
  simdgroup_float8x8 x;
  simdgroup_load(x, a, 8);
  simdgroup_half8x8 acc = make_filled_simdgroup_matrix<half, 8, 8>(half(0.0f));
  simdgroup_multiply_accumulate(acc, x, x, acc);  // REJECT: simdgroup_multiply_accumulate: Metal offers this only for
  simdgroup_store(acc, out, 8);
}
