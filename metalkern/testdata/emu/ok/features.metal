// features.metal — one value per MSL feature the kernels rely on, each
// exact, so a shim regression shows as a wrong number (not just a compile).
#include <metal_stdlib>
using namespace metal;

kernel void features(device float* out [[buffer(0)]], uint lane [[thread_index_in_simdgroup]]) {
  static_assert(sizeof(float3) == 16 && sizeof(half) == 2 && sizeof(ulong) == 8, "MSL sizes");
  constexpr float kTwo = 2.0f;
  const float4 a = float4(1.0f, -2.0f, 3.0f, -4.0f);
  const float4 b = max(a, 0.0f) * kTwo + float4(0.5f);  // (2.5, 0.5, 6.5, 0.5)
  const float2 c = float2(a.x, a.y) + 1;               // (2, -1)
  const int i = metal::min(7, 3) + metal::max(-1, 2) + abs(-5);
  const uint u = as_type<uint>(1.0f);
  const half h = half(1.5f) * half(2.0f);
  const ushort us = ushort(65535);
  const ulong ul = ulong(1) << 40;
  const float e = fast::exp2(3.0f) + exp2(1.0f) + log2(8.0f);
  const float f = fma(2.0f, 3.0f, 1.0f) + sqrt(16.0f) + rsqrt(4.0f);
  const float g = select(1.0f, 2.0f, a.x > 0.0f) + clamp(5.0f, 0.0f, 1.0f);
  const bool special = isnan(as_type<float>(0x7fc00000u)) && isinf(numeric_limits<float>::infinity());
  const float m = metal::numeric_limits<float>::max() == FLT_MAX ? 1.0f : 0.0f;
  const float4 s = select(float4(0.0f), float4(1.0f), a < b);
  const float d = dot(float3(1.0f, 2.0f, 3.0f), float3(4.0f, 5.0f, 6.0f));
  const half hm = numeric_limits<half>::max();
  const int3 iv = int3(7, -7, 9) / 2 % 3;
  if (lane == 0) {
    out[0] = b.x;
    out[1] = b.y;
    out[2] = b.z;
    out[3] = b.w;
    out[4] = c.x;
    out[5] = c.y;
    out[6] = float(i);
    out[7] = float(u == 0x3f800000u);
    out[8] = float(h);
    out[9] = float(us);
    out[10] = float(ul == 1099511627776ul);
    out[11] = e;
    out[12] = f;
    out[13] = g;
    out[14] = float(special);
    out[15] = m;
    out[16] = s.x + s.y + s.z + s.w;
    out[17] = d;
    out[18] = float(hm);
    out[19] = float(iv.x * 100 + iv.y * 10 + iv.z);
  }
}
