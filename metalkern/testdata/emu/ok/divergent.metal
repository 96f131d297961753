// divergent.metal — barrier and simd misuse that Apple GPUs may tolerate or
// hang on; emu must report each one with the kernel name and the call site.
#include <metal_stdlib>
using namespace metal;

// Half the lanes skip the simd_sum.
kernel void div_simd(device const float* in [[buffer(0)]], device float* out [[buffer(1)]],
                     uint tid [[thread_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {
  float v = in[tid];
  if (lane < 16) {
    v = simd_sum(v);  // SITE: div_simd
  }
  out[tid] = v;
}

// Only the first simdgroup reaches the barrier; the others return.
kernel void div_return(device float* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
  if (tid >= 32) {
    return;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);  // SITE: div_return
  out[tid] = 1.0f;
}

// Even and odd threads wait at two different barriers.
kernel void div_sites(device float* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
  if (tid % 2 == 0) {
    threadgroup_barrier(mem_flags::mem_threadgroup);  // SITE: div_sites_even
  } else {
    threadgroup_barrier(mem_flags::mem_threadgroup);  // SITE: div_sites_odd
  }
  out[tid] = 1.0f;
}
