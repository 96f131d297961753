// probe.metal — a kernel whose work is known exactly, for the counting
// build's tests (metalkern/counters_test.go derives every count from this
// structure). 128 threads = 4 simdgroups per threadgroup; n = rounds.
#include <metal_stdlib>
using namespace metal;

[[kernel]] void count_probe(const device float* in [[buffer(0)]], device float* out [[buffer(1)]],
                            constant uint& n [[buffer(2)]],
                            uint3 gid [[threadgroup_position_in_grid]],
                            uint3 groups [[threadgroups_per_grid]],
                            uint tid [[thread_index_in_threadgroup]],
                            uint sg [[simdgroup_index_in_threadgroup]]) {
  threadgroup float tile[256];  // 1024 bytes
  threadgroup float extra[16];  // 64 bytes
  const device float* src = in + gid.x * 256;
  device float* dst = out + gid.x * 256;
  if (tid < 16) {
    extra[tid] = 1.0f;  // 16 threadgroup writes of 4 bytes
  }
  for (uint r = 0; r < n; ++r) {
    // 2 device reads and 2 threadgroup writes of 4 bytes per thread.
    tile[tid] = src[tid];
    tile[tid + 128] = src[tid + 128];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    // Per simdgroup: an 8x8 load and store in threadgroup memory (256 bytes
    // each) and one multiply-accumulate.
    simdgroup_float8x8 a;
    simdgroup_load(a, tile + sg * 64, 8);
    simdgroup_multiply_accumulate(a, a, a, a);
    simdgroup_store(a, tile + sg * 64, 8);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    // 2 threadgroup reads and 2 device writes of 4 bytes per thread.
    dst[tid] = tile[tid] * 0.0f;
    dst[tid + 128] = tile[tid + 128] * 0.0f;
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  // Group x makes x more barriers (the counter is the maximum over groups).
  for (uint i = 0; i < gid.x; ++i) {
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  // Per simdgroup: an 8x8 load from and store to device memory (256 bytes
  // each) and one multiply.
  simdgroup_float8x8 b;
  simdgroup_load(b, src + sg * 64, 8);
  simdgroup_multiply(b, b, b);
  simdgroup_store(b, out + groups.x * 256 + (gid.x * 4 + sg) * 64, 8);
}
