// oversize.metal — 36 KiB of threadgroup memory: more than Apple GPUs allow.
#include <metal_stdlib>
using namespace metal;

kernel void tg_oversize(device float* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
  threadgroup float a[4096];  // 16 KiB
  threadgroup float b[4096];  // 16 KiB
  threadgroup float c[1024];  // 4 KiB over the limit; SITE: over
  a[tid] = 1.0f;
  b[tid] = 2.0f;
  c[tid] = 3.0f;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[tid] = a[tid] + b[tid] + c[tid];
}
