// orchard_emu/counters.h — the counting build's pointer types (included by
// prelude.h only with ORCHARD_EMU_COUNTERS, for units emugen.GenerateCounting
// wrote). The pre-pass of that build rewrites
//   [const] device T*       ->  ::orchard_emu::DevPtr<[const] T>
//   [const] threadgroup T*  ->  ::orchard_emu::TgPtr<[const] T>
//   threadgroup T name[N];  ->  ::orchard_emu::TgPtr<T> name = tg_counted<T[N]>(site);
// Each subscript or dereference through one of them adds sizeof(T) to the
// emulated thread's device or threadgroup byte count (a compound assignment
// p[i] += x counts once), simdgroup_load/store add the calling lane's two
// elements. The counts live in a per-OS-thread block (WorkBlock, context.h),
// summed by take_work_counters() between dispatches: no atomics, exact and
// the same whatever the schedule.
#pragma once

#include <cstddef>
#include <type_traits>

#include "orchard_emu/context.h"
#include "orchard_emu/matrix.h"

namespace orchard_emu {

template <Space S> inline void count_bytes(std::size_t n) {
  WorkBlock& w = work();
  if constexpr (S == kDeviceSpace) {
    w.device += n;
  } else {
    w.tg_traffic += n;
  }
}

// A pointer into device or threadgroup memory that counts what it reads and writes.
template <class T, Space S> struct CountedPtr {
  T* p = nullptr;

  CountedPtr() = default;
  CountedPtr(T* q) : p(q) {}  // NOLINT: from arrays, arena storage, nullptr
  CountedPtr(std::nullptr_t) : p(nullptr) {}
  // T* -> const T* (as a plain pointer converts).
  template <class U>
    requires(!std::is_same_v<U, T> && std::is_convertible_v<U*, T*>)
  CountedPtr(CountedPtr<U, S> o) : p(o.p) {}
  // Casts between element types ((const device float4*)p): explicit, as in C++.
  template <class U>
    requires(!std::is_convertible_v<U*, T*>)
  explicit CountedPtr(CountedPtr<U, S> o) : p(reinterpret_cast<T*>(o.p)) {}

  template <class I>
    requires std::is_integral_v<I>
  T& operator[](I i) const {
    count_bytes<S>(sizeof(T));
    return p[i];
  }
  T& operator*() const {
    count_bytes<S>(sizeof(T));
    return *p;
  }
  template <class I>
    requires std::is_integral_v<I>
  CountedPtr operator+(I n) const { return CountedPtr(p + n); }
  template <class I>
    requires std::is_integral_v<I>
  friend CountedPtr operator+(I n, CountedPtr q) { return CountedPtr(q.p + n); }
  template <class I>
    requires std::is_integral_v<I>
  CountedPtr operator-(I n) const { return CountedPtr(p - n); }
  std::ptrdiff_t operator-(CountedPtr o) const { return p - o.p; }
  template <class I>
    requires std::is_integral_v<I>
  CountedPtr& operator+=(I n) { p += n; return *this; }
  template <class I>
    requires std::is_integral_v<I>
  CountedPtr& operator-=(I n) { p -= n; return *this; }
  CountedPtr& operator++() { ++p; return *this; }
  CountedPtr& operator--() { --p; return *this; }
  CountedPtr operator++(int) { CountedPtr o = *this; ++p; return o; }
  CountedPtr operator--(int) { CountedPtr o = *this; --p; return o; }
  explicit operator bool() const { return p != nullptr; }
  friend bool operator==(CountedPtr a, CountedPtr b) { return a.p == b.p; }
  friend auto operator<=>(CountedPtr a, CountedPtr b) { return a.p <=> b.p; }
};

template <class T> using DevPtr = CountedPtr<T, kDeviceSpace>;
template <class T> using TgPtr = CountedPtr<T, kThreadgroupSpace>;

// `threadgroup T name[N];` in the counting build: the arena slice as a counting pointer.
template <class A> TgPtr<std::remove_extent_t<A>> tg_counted(const TgSite& site) {
  static_assert(std::rank_v<A> == 1, "the counting build takes one-dimensional threadgroup arrays");
  count_tg_decl(site, sizeof(A));
  return TgPtr<std::remove_extent_t<A>>(tg_var<A>(site));
}

}  // namespace orchard_emu

namespace metal {

// simdgroup_load/store through a counting pointer: the lane's two elements.
template <class T, class U, orchard_emu::Space S, class I = ulong>
void simdgroup_load(simdgroup_matrix<T, 8, 8>& d, orchard_emu::CountedPtr<U, S> src, ulong elements_per_row = 8,
                    vec<I, 2> matrix_origin = vec<I, 2>(0), bool transpose_matrix = false) {
  orchard_emu::count_bytes<S>(2 * sizeof(U));
  simdgroup_load(d, static_cast<const U*>(src.p), elements_per_row, matrix_origin, transpose_matrix);
}

template <class T, class U, orchard_emu::Space S, class I = ulong>
void simdgroup_store(const simdgroup_matrix<T, 8, 8>& m, orchard_emu::CountedPtr<U, S> dst, ulong elements_per_row = 8,
                     vec<I, 2> matrix_origin = vec<I, 2>(0), bool transpose_matrix = false) {
  orchard_emu::count_bytes<S>(2 * sizeof(U));
  simdgroup_store(m, dst.p, elements_per_row, matrix_origin, transpose_matrix);
}

}  // namespace metal
