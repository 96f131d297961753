// orchard_emu/vec.h — MSL scalar and vector types for the emu shim.
//
// `half` is a real 16-bit IEEE type (conversions round to nearest even):
// _Float16 where the compiler has it in C++ (x86-64 g++ >= 12, clang,
// g++ >= 13), __fp16 otherwise (aarch64 g++ 12; arithmetic then runs in
// float). vec<T,N> mirrors MSL's vector model: .x/.y/.z/.w and [i],
// element-wise operators, scalar broadcast, explicit conversion between
// element types, 3-vectors padded to 4 elements like MSL's float3.
// Swizzles (.xy) do not exist here: write float2(v.x, v.y).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

typedef unsigned int uint;
typedef unsigned short ushort;
typedef unsigned char uchar;
typedef unsigned long ulong;
#if defined(__clang__) || defined(__x86_64__) || (defined(__GNUC__) && __GNUC__ >= 13)
typedef _Float16 half;
#else
typedef __fp16 half;
#endif

namespace metal {

template <class T, int N> struct vec;

namespace detail {
template <class T> inline constexpr bool is_scalar_v = std::is_arithmetic_v<T> || std::is_same_v<T, half>;
template <class T> inline constexpr bool is_fp_v =
    std::is_same_v<T, float> || std::is_same_v<T, half> || std::is_same_v<T, double>;
template <class T> inline constexpr bool is_vec_v = false;
template <class T, int N> inline constexpr bool is_vec_v<vec<T, N>> = true;
template <class T> struct ncomp { static constexpr int value = is_scalar_v<T> ? 1 : 0; };
template <class T, int N> struct ncomp<vec<T, N>> { static constexpr int value = N; };
template <class T> struct elem { using type = T; };
template <class T, int N> struct elem<vec<T, N>> { using type = T; };
template <class T> using elem_t = typename elem<T>::type;
template <class T> inline constexpr bool is_int_v = std::is_integral_v<T> && !std::is_same_v<T, bool>;
template <class T> inline constexpr bool is_arith_v = is_scalar_v<T> && !std::is_same_v<T, bool>;

// Writes the components of `a` into v starting at index i (flattening ctor).
template <class V, class A> constexpr void put(V& v, int& i, const A& a) {
  using T = elem_t<V>;
  if constexpr (is_vec_v<A>) {
    for (int k = 0; k < ncomp<A>::value; ++k) v[i++] = T(a[k]);
  } else {
    v[i++] = T(a);
  }
}
}  // namespace detail

// Operators shared by every vec<T,N>; hidden friends found through ADL, so a
// scalar operand converts through vec's broadcast constructor.
template <class T, int N> struct vec_ops {
  using V = vec<T, N>;
  using B = vec<bool, N>;

#define ORCHARD_VEC_BINOP(op, cond)                                         \
  friend constexpr V operator op(const V& a, const V& b) requires(cond) {  \
    V r;                                                                    \
    for (int i = 0; i < N; ++i) r[i] = T(a[i] op b[i]);                     \
    return r;                                                               \
  }                                                                         \
  friend constexpr V& operator op##=(V & a, const V& b) requires(cond) {   \
    for (int i = 0; i < N; ++i) a[i] = T(a[i] op b[i]);                     \
    return a;                                                               \
  }
  ORCHARD_VEC_BINOP(+, detail::is_arith_v<T>)
  ORCHARD_VEC_BINOP(-, detail::is_arith_v<T>)
  ORCHARD_VEC_BINOP(*, detail::is_arith_v<T>)
  ORCHARD_VEC_BINOP(/, detail::is_arith_v<T>)
  ORCHARD_VEC_BINOP(%, detail::is_int_v<T>)
  ORCHARD_VEC_BINOP(&, std::is_integral_v<T>)
  ORCHARD_VEC_BINOP(|, std::is_integral_v<T>)
  ORCHARD_VEC_BINOP(^, std::is_integral_v<T>)
  ORCHARD_VEC_BINOP(<<, detail::is_int_v<T>)
  ORCHARD_VEC_BINOP(>>, detail::is_int_v<T>)
#undef ORCHARD_VEC_BINOP

#define ORCHARD_VEC_CMP(op)                                \
  friend constexpr B operator op(const V& a, const V& b) { \
    B r;                                                   \
    for (int i = 0; i < N; ++i) r[i] = a[i] op b[i];       \
    return r;                                              \
  }
  ORCHARD_VEC_CMP(<)
  ORCHARD_VEC_CMP(>)
  ORCHARD_VEC_CMP(<=)
  ORCHARD_VEC_CMP(>=)
  ORCHARD_VEC_CMP(==)
  ORCHARD_VEC_CMP(!=)
  ORCHARD_VEC_CMP(&&)
  ORCHARD_VEC_CMP(||)
#undef ORCHARD_VEC_CMP

  friend constexpr V operator-(const V& a) requires(detail::is_arith_v<T>) {
    V r;
    for (int i = 0; i < N; ++i) r[i] = T(-a[i]);
    return r;
  }
  friend constexpr V operator+(const V& a) { return a; }
  friend constexpr V operator~(const V& a) requires(detail::is_int_v<T>) {
    V r;
    for (int i = 0; i < N; ++i) r[i] = T(~a[i]);
    return r;
  }
  friend constexpr B operator!(const V& a) {
    B r;
    for (int i = 0; i < N; ++i) r[i] = !a[i];
    return r;
  }
};

// Constructors shared by the three specialisations (the macro keeps each
// one a plain aggregate-like struct with named members).
#define ORCHARD_VEC_CTORS(N)                                                                     \
  vec() = default;                                                                               \
  template <class S>                                                                             \
    requires detail::is_scalar_v<S>                                                              \
  constexpr vec(S s) { /* broadcast */                                                         \
    for (int i = 0; i < N; ++i) (*this)[i] = T(s);                                               \
  }                                                                                              \
  template <class... A>                                                                          \
    requires(sizeof...(A) >= 2 && ((detail::ncomp<A>::value > 0) && ...) &&                      \
             (detail::ncomp<A>::value + ...) == N)                                               \
  constexpr vec(const A&... a) {                                                                 \
    int i = 0;                                                                                   \
    (detail::put(*this, i, a), ...);                                                             \
  }                                                                                              \
  template <class U>                                                                             \
    requires(!std::is_same_v<U, T>)                                                              \
  explicit constexpr vec(const vec<U, N>& o) {                                                   \
    for (int i = 0; i < N; ++i) (*this)[i] = T(o[i]);                                            \
  }

template <class T> struct alignas(2 * sizeof(T)) vec<T, 2> : vec_ops<T, 2> {
  T x, y;
  ORCHARD_VEC_CTORS(2)
  constexpr T& operator[](int i) { return i == 0 ? x : y; }
  constexpr const T& operator[](int i) const { return i == 0 ? x : y; }
};

template <class T> struct alignas(4 * sizeof(T)) vec<T, 3> : vec_ops<T, 3> {
  T x, y, z;
  ORCHARD_VEC_CTORS(3)
  constexpr T& operator[](int i) { return i == 0 ? x : (i == 1 ? y : z); }
  constexpr const T& operator[](int i) const { return i == 0 ? x : (i == 1 ? y : z); }
};

template <class T> struct alignas(4 * sizeof(T)) vec<T, 4> : vec_ops<T, 4> {
  T x, y, z, w;
  ORCHARD_VEC_CTORS(4)
  constexpr T& operator[](int i) { return i == 0 ? x : (i == 1 ? y : (i == 2 ? z : w)); }
  constexpr const T& operator[](int i) const { return i == 0 ? x : (i == 1 ? y : (i == 2 ? z : w)); }
};
#undef ORCHARD_VEC_CTORS

// packed_<T>N: the same components without vec's padding/alignment; they
// convert to and from vec<T,N> for arithmetic.
template <class T, int N> struct packed_vec {
  T v[N];
  packed_vec() = default;
  constexpr packed_vec(const vec<T, N>& o) {
    for (int i = 0; i < N; ++i) v[i] = o[i];
  }
  constexpr operator vec<T, N>() const {
    vec<T, N> r;
    for (int i = 0; i < N; ++i) r[i] = v[i];
    return r;
  }
  constexpr T& operator[](int i) { return v[i]; }
  constexpr const T& operator[](int i) const { return v[i]; }
};

#define ORCHARD_VEC_NAMES(T, name)    \
  using name##2 = vec<T, 2>;          \
  using name##3 = vec<T, 3>;          \
  using name##4 = vec<T, 4>;          \
  using packed_##name##2 = packed_vec<T, 2>; \
  using packed_##name##3 = packed_vec<T, 3>; \
  using packed_##name##4 = packed_vec<T, 4>;
ORCHARD_VEC_NAMES(float, float)
ORCHARD_VEC_NAMES(half, half)
ORCHARD_VEC_NAMES(int, int)
ORCHARD_VEC_NAMES(uint, uint)
ORCHARD_VEC_NAMES(short, short)
ORCHARD_VEC_NAMES(ushort, ushort)
ORCHARD_VEC_NAMES(char, char)
ORCHARD_VEC_NAMES(uchar, uchar)
ORCHARD_VEC_NAMES(long, long)
ORCHARD_VEC_NAMES(ulong, ulong)
ORCHARD_VEC_NAMES(bool, bool)
#undef ORCHARD_VEC_NAMES

}  // namespace metal

// MSL's vector type names are usable without the metal:: prefix.
#define ORCHARD_VEC_GLOBAL(name) \
  using metal::name##2;          \
  using metal::name##3;          \
  using metal::name##4;
ORCHARD_VEC_GLOBAL(float)
ORCHARD_VEC_GLOBAL(half)
ORCHARD_VEC_GLOBAL(int)
ORCHARD_VEC_GLOBAL(uint)
ORCHARD_VEC_GLOBAL(short)
ORCHARD_VEC_GLOBAL(ushort)
ORCHARD_VEC_GLOBAL(char)
ORCHARD_VEC_GLOBAL(uchar)
ORCHARD_VEC_GLOBAL(long)
ORCHARD_VEC_GLOBAL(ulong)
ORCHARD_VEC_GLOBAL(bool)
#undef ORCHARD_VEC_GLOBAL
