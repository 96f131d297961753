// simd.metal — simd_* functions, builtins and half conversion, each result
// written out per thread so the test can check every lane exactly.
#include <metal_stdlib>
using namespace metal;

// Per thread, 10 results: [sum, max, prefix_exclusive_sum, shuffle(lane^5),
// shuffle_xor(1), shuffle_down(3), shuffle_up(2), broadcast(lane 7),
// prefix_inclusive_sum, ballot(v > 0) low bits]. Inputs are small integers
// so every result is exact. Works with a partial last simdgroup.
kernel void simd_ops(device const float* in [[buffer(0)]], device float* out [[buffer(1)]],
                     device float* block [[buffer(2)]],
                     uint gid [[thread_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                     uint lane [[thread_index_in_simdgroup]], uint sg [[simdgroup_index_in_threadgroup]],
                     uint nsg [[simdgroups_per_threadgroup]], uint3 group [[threadgroup_position_in_grid]]) {
  threadgroup float partial[32];
  const float v = in[gid];
  device float* o = out + gid * 10;
  o[0] = simd_sum(v);
  o[1] = simd_max(v);
  o[2] = simd_prefix_exclusive_sum(v);
  o[3] = simd_shuffle(v, ushort(lane ^ 5));
  o[4] = simd_shuffle_xor(v, ushort(1));
  o[5] = simd_shuffle_down(v, ushort(3));
  o[6] = simd_shuffle_up(v, ushort(2));
  o[7] = simd_broadcast(v, ushort(7));
  o[8] = simd_prefix_inclusive_sum(v);
  o[9] = float(uint(ulong(simd_ballot(v > 0.0f)) & 0xffu));
  // Threadgroup sum: simd_sum per simdgroup, then simdgroup 0 adds the partials.
  const float s = simd_sum(v);
  if (lane == 0) {
    partial[sg] = s;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (sg == 0) {
    const float x = lane < nsg ? partial[lane] : 0.0f;
    const float total = simd_sum(x);
    if (lane == 0) {
      block[group.x] = total;
    }
  }
}

// Builtins of a 3D dispatch: 8 values per thread.
kernel void builtins(device uint* out [[buffer(0)]], uint3 gpos [[thread_position_in_grid]],
                     uint3 tgpos [[threadgroup_position_in_grid]], ushort3 local [[thread_position_in_threadgroup]],
                     uint3 tptg [[threads_per_threadgroup]], uint3 grid [[threadgroups_per_grid]],
                     uint tid [[thread_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]],
                     uint sg [[simdgroup_index_in_threadgroup]]) {
  const uint3 tpg3 = grid * tptg;  // threads per grid
  const uint flat = (gpos.z * tpg3.y + gpos.y) * tpg3.x + gpos.x;
  device uint* o = out + flat * 8;
  o[0] = gpos.x;
  o[1] = gpos.y;
  o[2] = gpos.z;
  o[3] = tgpos.x + 10u * tgpos.y + 100u * tgpos.z;
  o[4] = uint(local.x) + 10u * uint(local.y) + 100u * uint(local.z);
  o[5] = tid;
  o[6] = lane;
  o[7] = sg;
}

// float -> half -> float, and half arithmetic in a vector.
kernel void half_round(device const float* in [[buffer(0)]], device float* out [[buffer(1)]],
                       device half* raw [[buffer(2)]], uint i [[thread_position_in_grid]]) {
  const half h = half(in[i]);
  raw[i] = h;
  const half2 hv = half2(h, h) * half2(2.0f, 1.0f);
  out[i] = float(hv.y);
}
