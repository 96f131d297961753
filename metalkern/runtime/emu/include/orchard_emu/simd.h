// orchard_emu/simd.h — barriers and simdgroup / quadgroup functions.
//
// Every simd_* / quad_* call is one exchange: the lane writes its value to
// its slot, waits until all lanes of its simdgroup have reached the SAME call
// site (std::source_location), then reads the slots it needs. A lane that
// reaches a different site, a threadgroup_barrier, or returns while others
// wait is reported as a divergent simd op naming the kernel, the sites and
// the lanes. Reductions run in lane order (deterministic, not the GPU's tree).
#pragma once

#include <source_location>

#include "orchard_emu/context.h"
#include "orchard_emu/math.h"

namespace metal {

enum class mem_flags : unsigned {
  mem_none = 0,
  mem_device = 1,
  mem_threadgroup = 2,
  mem_texture = 4,
  mem_threadgroup_imageblock = 8,
  mem_object_data = 16,
};
constexpr mem_flags operator|(mem_flags a, mem_flags b) { return mem_flags(unsigned(a) | unsigned(b)); }

using srcloc = std::source_location;

inline void threadgroup_barrier(mem_flags, const srcloc& loc = srcloc::current()) {
#ifdef ORCHARD_EMU_COUNTERS
  orchard_emu::count_barrier();
#endif
  orchard_emu::barrier_tg(loc);
}
inline void simdgroup_barrier(mem_flags, const srcloc& loc = srcloc::current()) {
  orchard_emu::barrier_sg(loc, "simdgroup_barrier");
}

namespace detail {
template <class T> orchard_emu::Xchg xchg(const T& v, const srcloc& loc, const char* op) {
  static_assert(sizeof(T) <= orchard_emu::kSlotBytes, "simd op on a value larger than 32 bytes");
  static_assert(std::is_trivially_copyable_v<T>, "simd op on a non-trivially-copyable type");
  return orchard_emu::exchange(&v, sizeof(T), loc, op);
}
// Reads lane `src` when it exists, else the caller's own value.
template <class T> T lane_or_own(const orchard_emu::Xchg& x, unsigned src) {
  return x.get<T>(src < x.width ? src : x.lane);
}
}  // namespace detail

// ---- reductions over the simdgroup ----
#define ORCHARD_SIMD_REDUCE(name, combine)                           \
  template <class T> T name(T v, const srcloc& loc = srcloc::current()) { \
    orchard_emu::Xchg x = detail::xchg(v, loc, #name);                            \
    T a = x.get<T>(0);                                               \
    for (unsigned i = 1; i < x.width; ++i) {                         \
      T b = x.get<T>(i);                                             \
      a = T(combine);                                                \
    }                                                                \
    return a;                                                        \
  }
ORCHARD_SIMD_REDUCE(simd_sum, a + b)
ORCHARD_SIMD_REDUCE(simd_product, a * b)
ORCHARD_SIMD_REDUCE(simd_max, metal::max(a, b))
ORCHARD_SIMD_REDUCE(simd_min, metal::min(a, b))
ORCHARD_SIMD_REDUCE(simd_and, a & b)
ORCHARD_SIMD_REDUCE(simd_or, a | b)
ORCHARD_SIMD_REDUCE(simd_xor, a ^ b)
#undef ORCHARD_SIMD_REDUCE

inline bool simd_all(bool v, const srcloc& loc = srcloc::current()) {
  orchard_emu::Xchg x = detail::xchg(v, loc, "simd_all");
  for (unsigned i = 0; i < x.width; ++i)
    if (!x.get<bool>(i)) return false;
  return true;
}
inline bool simd_any(bool v, const srcloc& loc = srcloc::current()) {
  orchard_emu::Xchg x = detail::xchg(v, loc, "simd_any");
  for (unsigned i = 0; i < x.width; ++i)
    if (x.get<bool>(i)) return true;
  return false;
}

// simd_ballot: bit i set when lane i passed true.
struct simd_vote {
  using vote_t = ulong;
  vote_t v;
  explicit constexpr operator vote_t() const { return v; }
  constexpr bool all() const { return v == 0xffffffffull; }
  constexpr bool any() const { return v != 0; }
};
inline simd_vote simd_ballot(bool v, const srcloc& loc = srcloc::current()) {
  orchard_emu::Xchg x = detail::xchg(v, loc, "simd_ballot");
  ulong bits = 0;
  for (unsigned i = 0; i < x.width; ++i)
    if (x.get<bool>(i)) bits |= ulong(1) << i;
  return simd_vote{bits};
}

// ---- data movement ----
template <class T> T simd_broadcast(T v, ushort lane, const srcloc& loc = srcloc::current()) {
  return detail::lane_or_own<T>(detail::xchg(v, loc, "simd_broadcast"), lane);
}
template <class T> T simd_broadcast_first(T v, const srcloc& loc = srcloc::current()) {
  orchard_emu::Xchg x = detail::xchg(v, loc, "simd_broadcast_first");
  return x.get<T>(0);
}
template <class T> T simd_shuffle(T v, ushort lane, const srcloc& loc = srcloc::current()) {
  return detail::lane_or_own<T>(detail::xchg(v, loc, "simd_shuffle"), lane);
}
template <class T> T simd_shuffle_xor(T v, ushort mask, const srcloc& loc = srcloc::current()) {
  orchard_emu::Xchg x = detail::xchg(v, loc, "simd_shuffle_xor");
  return detail::lane_or_own<T>(x, x.lane ^ mask);
}
// Lanes whose source is outside the simdgroup keep their own value.
template <class T> T simd_shuffle_down(T v, ushort delta, const srcloc& loc = srcloc::current()) {
  orchard_emu::Xchg x = detail::xchg(v, loc, "simd_shuffle_down");
  return detail::lane_or_own<T>(x, x.lane + delta);
}
template <class T> T simd_shuffle_up(T v, ushort delta, const srcloc& loc = srcloc::current()) {
  orchard_emu::Xchg x = detail::xchg(v, loc, "simd_shuffle_up");
  return x.lane >= delta ? x.get<T>(x.lane - delta) : v;
}
template <class T> T simd_shuffle_rotate_down(T v, ushort delta, const srcloc& loc = srcloc::current()) {
  orchard_emu::Xchg x = detail::xchg(v, loc, "simd_shuffle_rotate_down");
  return x.get<T>((x.lane + delta) % x.width);
}
template <class T> T simd_shuffle_rotate_up(T v, ushort delta, const srcloc& loc = srcloc::current()) {
  orchard_emu::Xchg x = detail::xchg(v, loc, "simd_shuffle_rotate_up");
  return x.get<T>((x.lane + x.width - delta % x.width) % x.width);
}

// ---- prefix scans (lane 0's exclusive result is 0 / 1) ----
#define ORCHARD_SIMD_SCAN(name, init, combine, inclusive)            \
  template <class T> T name(T v, const srcloc& loc = srcloc::current()) { \
    orchard_emu::Xchg x = detail::xchg(v, loc, #name);                            \
    T a = T(init);                                                   \
    unsigned end = x.lane + (inclusive ? 1 : 0);                     \
    for (unsigned i = 0; i < end; ++i) {                             \
      T b = x.get<T>(i);                                             \
      a = T(combine);                                                \
    }                                                                \
    return a;                                                        \
  }
ORCHARD_SIMD_SCAN(simd_prefix_exclusive_sum, 0, a + b, false)
ORCHARD_SIMD_SCAN(simd_prefix_inclusive_sum, 0, a + b, true)
ORCHARD_SIMD_SCAN(simd_prefix_exclusive_product, 1, a * b, false)
ORCHARD_SIMD_SCAN(simd_prefix_inclusive_product, 1, a * b, true)
#undef ORCHARD_SIMD_SCAN

inline bool simd_is_first() { return orchard_emu::ctx().thread_index_in_simdgroup == 0; }

// ---- quadgroups: lanes 4q..4q+3 of a simdgroup (emulated through the simd
// exchange, so all 32 lanes must reach the call) ----
#define ORCHARD_QUAD_REDUCE(name, combine)                           \
  template <class T> T name(T v, const srcloc& loc = srcloc::current()) { \
    orchard_emu::Xchg x = detail::xchg(v, loc, #name);                            \
    unsigned q = x.lane & ~3u;                                       \
    T a = detail::lane_or_own<T>(x, q);                              \
    for (unsigned i = q + 1; i < q + 4 && i < x.width; ++i) {        \
      T b = x.get<T>(i);                                             \
      a = T(combine);                                                \
    }                                                                \
    return a;                                                        \
  }
ORCHARD_QUAD_REDUCE(quad_sum, a + b)
ORCHARD_QUAD_REDUCE(quad_max, metal::max(a, b))
ORCHARD_QUAD_REDUCE(quad_min, metal::min(a, b))
#undef ORCHARD_QUAD_REDUCE
template <class T> T quad_shuffle(T v, ushort qlane, const srcloc& loc = srcloc::current()) {
  orchard_emu::Xchg x = detail::xchg(v, loc, "quad_shuffle");
  return detail::lane_or_own<T>(x, (x.lane & ~3u) + (qlane & 3u));
}
template <class T> T quad_broadcast(T v, ushort qlane, const srcloc& loc = srcloc::current()) {
  orchard_emu::Xchg x = detail::xchg(v, loc, "quad_broadcast");
  return detail::lane_or_own<T>(x, (x.lane & ~3u) + (qlane & 3u));
}
template <class T> T quad_shuffle_xor(T v, ushort mask, const srcloc& loc = srcloc::current()) {
  orchard_emu::Xchg x = detail::xchg(v, loc, "quad_shuffle_xor");
  return detail::lane_or_own<T>(x, x.lane ^ (mask & 3u));
}
template <class T> T quad_shuffle_down(T v, ushort delta, const srcloc& loc = srcloc::current()) {
  orchard_emu::Xchg x = detail::xchg(v, loc, "quad_shuffle_down");
  unsigned q = x.lane & 3u;
  return q + delta < 4 ? detail::lane_or_own<T>(x, x.lane + delta) : v;
}
template <class T> T quad_shuffle_up(T v, ushort delta, const srcloc& loc = srcloc::current()) {
  orchard_emu::Xchg x = detail::xchg(v, loc, "quad_shuffle_up");
  unsigned q = x.lane & 3u;
  return q >= delta ? x.get<T>(x.lane - delta) : v;
}

}  // namespace metal
