// race.metal — a neighbour exchange through threadgroup memory, with and
// without the barrier between the writes and the reads.
#include <metal_stdlib>
using namespace metal;

kernel void race_missing_barrier(device const float* in [[buffer(0)]], device float* out [[buffer(1)]],
                                 uint tid [[thread_index_in_threadgroup]],
                                 uint n [[threads_per_threadgroup]]) {
  threadgroup float buf[256];
  buf[tid] = in[tid] * 2.0f;  // SITE: race_write
  out[tid] = buf[(tid + 1) % n];  // SITE: race_read
}

kernel void race_fixed(device const float* in [[buffer(0)]], device float* out [[buffer(1)]],
                       uint tid [[thread_index_in_threadgroup]], uint n [[threads_per_threadgroup]]) {
  threadgroup float buf[256];
  buf[tid] = in[tid] * 2.0f;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[tid] = buf[(tid + 1) % n];
}
