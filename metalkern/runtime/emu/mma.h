// mma.h — the arithmetic of one 8x8 simdgroup matrix product, shared by
// the synchronous exchange (launcher.cpp, threads mode) and the deferred
// products (group.cpp, fibers mode), so both compute exactly the same bits.
// Matrices are row-major 8x8 floats (halves for half A and B operands);
// lane l holds elements at and at + 1 of each, at = kLaneAt.at[l].
#pragma once

#include <cstdint>
#include <cstring>

#include "group.h"
#include "orchard_emu/matrix.h"

namespace orchard_emu {

// Row-major index of lane l's first element (the second is next to it).
struct LaneAt {
  unsigned char at[kSimdWidth];
};
constexpr LaneAt make_lane_at() {
  LaneAt a{};
  for (unsigned l = 0; l < kSimdWidth; ++l)
    a.at[l] = (unsigned char)(metal::detail::sg_row(l) * 8 + metal::detail::sg_col(l));
  return a;
}
inline constexpr LaneAt kLaneAt = make_lane_at();

typedef float MmaF4 __attribute__((vector_size(16)));
typedef std::uint32_t MmaU4 __attribute__((vector_size(16)));

// out[i] = half_bits_to_float(h[i]) for 64 elements, 4 at a time (the same
// steps on vectors; the compiler does not vectorise the scalar function's
// selects on its own).
inline void widen_halves(const std::uint16_t* h, float* out) {
  for (int i = 0; i < 64; i += 4) {
    const MmaU4 x = {h[i], h[i + 1], h[i + 2], h[i + 3]};
    const MmaU4 em = (x & 0x7fffu) << 13;
    const MmaU4 exp = em & 0x0f800000u;
    const MmaU4 normal = em + 0x38000000u;
    const MmaU4 special = (normal + 0x38000000u) | ((MmaU4)((em & 0x007fe000u) != 0u) & 0x00400000u);
    const MmaF4 sub = (MmaF4)(em + 0x38800000u) - 0x1p-14f;
    const MmaU4 is_special = (MmaU4)(exp == 0x0f800000u), is_sub = (MmaU4)(exp == 0u);
    MmaU4 r = (special & is_special) | ((MmaU4)sub & is_sub) | (normal & ~(is_special | is_sub));
    r |= (x & 0x8000u) << 16;
    std::memcpy(&out[i], &r, 16);
  }
}

// D = A * B + C, all row-major 8x8 floats (d may not alias the operands):
// D(r, c) = C(r, c) + A(r, 0) B(0, c) + ... + A(r, 7) B(7, c), in that
// order, one multiply and one add per term (4 columns per vector op).
inline void mma_product_sse(const float* a, const float* b, const float* c, float* d) {
  for (int r = 0; r < 8; ++r) {
    MmaF4 lo, hi;
    std::memcpy(&lo, &c[r * 8], 16);
    std::memcpy(&hi, &c[r * 8 + 4], 16);
    for (int k = 0; k < 8; ++k) {
      const float x = a[r * 8 + k];
      MmaF4 av = {x, x, x, x}, blo, bhi;
      std::memcpy(&blo, &b[k * 8], 16);
      std::memcpy(&bhi, &b[k * 8 + 4], 16);
      lo += av * blo;
      hi += av * bhi;
    }
    std::memcpy(&d[r * 8], &lo, 16);
    std::memcpy(&d[r * 8 + 4], &hi, 16);
  }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// The same product with 8-float AVX vectors (a row per vector) where the CPU
// has AVX2: the same multiplies and adds in the same order, each rounded on
// its own (no FMA is enabled here, so nothing is contracted): the same bits.
typedef float MmaF8 __attribute__((vector_size(32)));
[[gnu::target("avx2"), gnu::noinline]] inline void mma_product_avx2(const float* a, const float* b, const float* c,
                                                                    float* d) {
  for (int r = 0; r < 8; ++r) {
    MmaF8 acc;
    std::memcpy(&acc, &c[r * 8], 32);
    for (int k = 0; k < 8; ++k) {
      const float x = a[r * 8 + k];
      MmaF8 av = {x, x, x, x, x, x, x, x}, bv;
      std::memcpy(&bv, &b[k * 8], 32);
      acc += av * bv;
    }
    std::memcpy(&d[r * 8], &acc, 32);
  }
}
inline const bool kMmaHaveAvx2 = (__builtin_cpu_init(), __builtin_cpu_supports("avx2"));
inline void mma_product(const float* a, const float* b, const float* c, float* d) {
  if (kMmaHaveAvx2)
    mma_product_avx2(a, b, c, d);
  else
    mma_product_sse(a, b, c, d);
}
#else
inline void mma_product(const float* a, const float* b, const float* c, float* d) { mma_product_sse(a, b, c, d); }
#endif

// A half result used as a C operand: the synchronous path converts the
// float result to half in the lane and back to float (acc_float in
// orchard_emu/matrix.h); these are the same two conversions.
inline float through_half(float x) {
  half h = half(x);
  std::uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return half_bits_to_float(bits);
}

}  // namespace orchard_emu
