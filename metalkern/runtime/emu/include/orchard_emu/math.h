// orchard_emu/math.h — metal:: math, common, integer, relational and
// geometric functions, metal::fast / metal::precise, numeric_limits, as_type.
//
// Every function works element-wise on vec<T,N>, broadcasts a scalar
// operand, and accepts mixed scalar types (float with half/int/double
// literal), so emu never rejects a call Metal accepts. half is computed in
// float and rounded back. fast:: maps to the exact libm function: emu
// numbers are "precise", compare against GPU output with tolerances.
#pragma once

#include <bit>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "orchard_emu/vec.h"

namespace metal {
namespace detail {

template <class A, class B> struct common2 {
  using type = std::conditional_t<
      std::is_same_v<A, B>, A,
      std::conditional_t<
          std::is_same_v<A, double> && is_fp_v<B>, B,
          std::conditional_t<
              std::is_same_v<B, double> && is_fp_v<A>, A,
              std::conditional_t<is_fp_v<A> && !is_fp_v<B>, A,
                                 std::conditional_t<is_fp_v<B> && !is_fp_v<A>, B,
                                                    std::conditional_t<std::is_same_v<A, half> ||
                                                                           std::is_same_v<B, half>,
                                                                       float, std::common_type_t<A, B>>>>>>>;
};
template <class A, class B> using common_t = typename common2<A, B>::type;

template <class T> concept Num = is_scalar_v<T> || is_vec_v<T>;

// Value used for computing: half and integers compute in float.
template <class T> constexpr auto calc(T x) {
  if constexpr (std::is_same_v<T, double>) return x;
  else return float(x);
}
template <class T> using fp_t = std::conditional_t<is_fp_v<T>, T, float>;

template <class T> constexpr auto at(const T& v, int i) {
  if constexpr (is_vec_v<T>) return v[i];
  else return v;
}
template <class... A> constexpr int vec_n() {
  int n = 1;
  ((n = is_vec_v<A> ? ncomp<A>::value : n), ...);
  return n;
}
template <class... A> constexpr bool same_n() {
  constexpr int n = vec_n<A...>();
  return ((!is_vec_v<A> || ncomp<A>::value == n) && ...);
}

template <class F, class A> auto map1(F f, const A& a) {
  if constexpr (is_vec_v<A>) {
    using R = decltype(f(a[0]));
    vec<R, ncomp<A>::value> r;
    for (int i = 0; i < ncomp<A>::value; ++i) r[i] = f(a[i]);
    return r;
  } else {
    return f(a);
  }
}
template <class F, class A, class B> auto zip2(F f, const A& a, const B& b) {
  static_assert(same_n<A, B>(), "metal: vector operands of different sizes");
  using E = common_t<elem_t<A>, elem_t<B>>;
  if constexpr (is_vec_v<A> || is_vec_v<B>) {
    constexpr int N = vec_n<A, B>();
    vec<decltype(f(E(), E())), N> r;
    for (int i = 0; i < N; ++i) r[i] = f(E(at(a, i)), E(at(b, i)));
    return r;
  } else {
    return f(E(a), E(b));
  }
}
template <class F, class A, class B, class C> auto zip3(F f, const A& a, const B& b, const C& c) {
  static_assert(same_n<A, B, C>(), "metal: vector operands of different sizes");
  using E = common_t<common_t<elem_t<A>, elem_t<B>>, elem_t<C>>;
  if constexpr (is_vec_v<A> || is_vec_v<B> || is_vec_v<C>) {
    constexpr int N = vec_n<A, B, C>();
    vec<decltype(f(E(), E(), E())), N> r;
    for (int i = 0; i < N; ++i) r[i] = f(E(at(a, i)), E(at(b, i)), E(at(c, i)));
    return r;
  } else {
    return f(E(a), E(b), E(c));
  }
}
}  // namespace detail

// ---- float functions of one argument (integers compute as float) ----
#define ORCHARD_UNARY(name, expr)                                     \
  template <detail::Num T> auto name(const T& v) {                    \
    return detail::map1(                                              \
        [](auto x) {                                                  \
          using R = detail::fp_t<decltype(x)>;                        \
          auto f = detail::calc(x);                                   \
          using F = decltype(f);                                      \
          (void)sizeof(F);                                            \
          return R(expr);                                             \
        },                                                            \
        v);                                                           \
  }
ORCHARD_UNARY(acos, std::acos(f))
ORCHARD_UNARY(asin, std::asin(f))
ORCHARD_UNARY(atan, std::atan(f))
ORCHARD_UNARY(ceil, std::ceil(f))
ORCHARD_UNARY(cos, std::cos(f))
ORCHARD_UNARY(cosh, std::cosh(f))
ORCHARD_UNARY(exp, std::exp(f))
ORCHARD_UNARY(exp2, std::exp2(f))
ORCHARD_UNARY(exp10, std::pow(F(10), f))
ORCHARD_UNARY(fabs, std::fabs(f))
ORCHARD_UNARY(floor, std::floor(f))
ORCHARD_UNARY(fract, std::fmin(f - std::floor(f), F(0x1.fffffep-1)))
ORCHARD_UNARY(log, std::log(f))
ORCHARD_UNARY(log10, std::log10(f))
ORCHARD_UNARY(log2, std::log2(f))
ORCHARD_UNARY(rint, std::nearbyint(f))
ORCHARD_UNARY(round, std::round(f))
ORCHARD_UNARY(rsqrt, F(1) / std::sqrt(f))
ORCHARD_UNARY(sin, std::sin(f))
ORCHARD_UNARY(sinh, std::sinh(f))
ORCHARD_UNARY(sqrt, std::sqrt(f))
ORCHARD_UNARY(tan, std::tan(f))
ORCHARD_UNARY(tanh, std::tanh(f))
ORCHARD_UNARY(trunc, std::trunc(f))
ORCHARD_UNARY(sign, (f > F(0) ? F(1) : (f < F(0) ? F(-1) : F(0))))
ORCHARD_UNARY(saturate, std::fmin(std::fmax(f, F(0)), F(1)))
#undef ORCHARD_UNARY

// ---- predicates ----
#define ORCHARD_PRED(name, expr) \
  template <detail::Num T> auto name(const T& v) { return detail::map1([](auto x) { return bool(expr); }, v); }
ORCHARD_PRED(isnan, std::isnan(detail::calc(x)))
ORCHARD_PRED(isinf, std::isinf(detail::calc(x)))
ORCHARD_PRED(isfinite, std::isfinite(detail::calc(x)))
ORCHARD_PRED(isnormal, std::isnormal(detail::calc(x)))
ORCHARD_PRED(signbit, std::signbit(detail::calc(x)))
#undef ORCHARD_PRED

// ---- abs and integer functions ----
template <detail::Num T> auto abs(const T& v) {
  return detail::map1(
      [](auto x) {
        using E = decltype(x);
        if constexpr (detail::is_fp_v<E>) return E(std::fabs(detail::calc(x)));
        else if constexpr (std::is_signed_v<E>) return E(x < 0 ? -x : x);
        else return x;
      },
      v);
}
template <detail::Num T> auto popcount(const T& v) {
  return detail::map1([](auto x) { return decltype(x)(std::popcount(std::make_unsigned_t<decltype(x)>(x))); }, v);
}
template <detail::Num T> auto clz(const T& v) {
  return detail::map1([](auto x) { return decltype(x)(std::countl_zero(std::make_unsigned_t<decltype(x)>(x))); }, v);
}
template <detail::Num T> auto ctz(const T& v) {
  return detail::map1([](auto x) { return decltype(x)(std::countr_zero(std::make_unsigned_t<decltype(x)>(x))); }, v);
}

// ---- two arguments ----
#define ORCHARD_BINARY(name, expr)                           \
  template <detail::Num A, detail::Num B>                    \
  auto name(const A& a, const B& b) {                        \
    return detail::zip2(                                     \
        [](auto x, auto y) {                                 \
          using E = decltype(x);                             \
          auto p = detail::calc(x);                          \
          auto q = detail::calc(y);                          \
          (void)p;                                           \
          (void)q;                                           \
          return expr;                                       \
        },                                                   \
        a, b);                                               \
  }
ORCHARD_BINARY(fmax, detail::fp_t<E>(std::fmax(p, q)))
ORCHARD_BINARY(fmin, detail::fp_t<E>(std::fmin(p, q)))
ORCHARD_BINARY(pow, detail::fp_t<E>(std::pow(p, q)))
ORCHARD_BINARY(powr, detail::fp_t<E>(std::pow(p, q)))
ORCHARD_BINARY(fmod, detail::fp_t<E>(std::fmod(p, q)))
ORCHARD_BINARY(atan2, detail::fp_t<E>(std::atan2(p, q)))
ORCHARD_BINARY(copysign, detail::fp_t<E>(std::copysign(p, q)))
ORCHARD_BINARY(fdim, detail::fp_t<E>(std::fdim(p, q)))
ORCHARD_BINARY(step, detail::fp_t<E>(q < p ? 0 : 1))  // step(edge, x)
ORCHARD_BINARY(divide, detail::fp_t<E>(p / q))
ORCHARD_BINARY(absdiff, E(x > y ? x - y : y - x))
#undef ORCHARD_BINARY

// max/min: NaN-ignoring (fmax) for floating point, plain compare for integers.
template <detail::Num A, detail::Num B> auto max(const A& a, const B& b) {
  return detail::zip2(
      [](auto x, auto y) {
        using E = decltype(x);
        if constexpr (detail::is_fp_v<E>) return E(std::fmax(detail::calc(x), detail::calc(y)));
        else return x > y ? x : y;
      },
      a, b);
}
template <detail::Num A, detail::Num B> auto min(const A& a, const B& b) {
  return detail::zip2(
      [](auto x, auto y) {
        using E = decltype(x);
        if constexpr (detail::is_fp_v<E>) return E(std::fmin(detail::calc(x), detail::calc(y)));
        else return x < y ? x : y;
      },
      a, b);
}

// ---- three arguments ----
template <detail::Num A, detail::Num B, detail::Num C> auto fma(const A& a, const B& b, const C& c) {
  return detail::zip3(
      [](auto x, auto y, auto z) {
        using E = decltype(x);
        return detail::fp_t<E>(std::fma(detail::calc(x), detail::calc(y), detail::calc(z)));
      },
      a, b, c);
}
template <detail::Num A, detail::Num B, detail::Num C> auto clamp(const A& a, const B& lo, const C& hi) {
  return detail::zip3(
      [](auto x, auto l, auto h) {
        using E = decltype(x);
        if constexpr (detail::is_fp_v<E>)
          return E(std::fmin(std::fmax(detail::calc(x), detail::calc(l)), detail::calc(h)));
        else
          return x < l ? l : (x > h ? h : x);
      },
      a, lo, hi);
}
template <detail::Num A, detail::Num B, detail::Num C> auto mix(const A& a, const B& b, const C& t) {
  return detail::zip3(
      [](auto x, auto y, auto s) {
        auto p = detail::calc(x);
        return detail::fp_t<decltype(x)>(p + (detail::calc(y) - p) * detail::calc(s));
      },
      a, b, t);
}
template <detail::Num A, detail::Num B, detail::Num C> auto smoothstep(const A& e0, const B& e1, const C& x) {
  return detail::zip3(
      [](auto lo, auto hi, auto v) {
        auto t = std::fmin(std::fmax((detail::calc(v) - detail::calc(lo)) / (detail::calc(hi) - detail::calc(lo)),
                                     decltype(detail::calc(v))(0)),
                           decltype(detail::calc(v))(1));
        return detail::fp_t<decltype(v)>(t * t * (3 - 2 * t));
      },
      e0, e1, x);
}
// select(a, b, c): c ? b : a, element-wise when c is a bool vector.
template <detail::Num A, detail::Num B, detail::Num C> auto select(const A& a, const B& b, const C& c) {
  return detail::zip3([](auto x, auto y, auto s) { return s ? y : x; }, a, b, c);
}

// ---- relational ----
template <class T> bool all(const T& v) {
  if constexpr (detail::is_vec_v<T>) {
    for (int i = 0; i < detail::ncomp<T>::value; ++i)
      if (!v[i]) return false;
    return true;
  } else {
    return bool(v);
  }
}
template <class T> bool any(const T& v) {
  if constexpr (detail::is_vec_v<T>) {
    for (int i = 0; i < detail::ncomp<T>::value; ++i)
      if (v[i]) return true;
    return false;
  } else {
    return bool(v);
  }
}

// ---- geometric ----
template <class T, int N> T dot(const vec<T, N>& a, const vec<T, N>& b) {
  auto s = detail::calc(T(0));
  for (int i = 0; i < N; ++i) s += detail::calc(a[i]) * detail::calc(b[i]);
  return T(s);
}
template <class T, int N> T length_squared(const vec<T, N>& a) { return dot(a, a); }
template <class T, int N> T length(const vec<T, N>& a) { return T(std::sqrt(detail::calc(dot(a, a)))); }
template <class T, int N> T distance(const vec<T, N>& a, const vec<T, N>& b) { return length(a - b); }
template <class T, int N> vec<T, N> normalize(const vec<T, N>& a) { return a * vec<T, N>(T(1) / length(a)); }
template <class T> vec<T, 3> cross(const vec<T, 3>& a, const vec<T, 3>& b) {
  return vec<T, 3>(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x);
}

// ---- fast:: and precise:: (both exact here) ----
#define ORCHARD_MATH_NAMES                                                                          \
  using metal::acos; using metal::asin; using metal::atan; using metal::atan2; using metal::ceil; \
  using metal::cos; using metal::cosh; using metal::divide; using metal::exp; using metal::exp10; \
  using metal::exp2; using metal::fabs; using metal::floor; using metal::fmax; using metal::fmin; \
  using metal::fract; using metal::log; using metal::log10; using metal::log2; using metal::max; \
  using metal::min; using metal::pow; using metal::powr; using metal::rint; using metal::round;   \
  using metal::rsqrt; using metal::sin; using metal::sinh; using metal::sqrt; using metal::tan;    \
  using metal::tanh; using metal::trunc; using metal::clamp; using metal::fma; using metal::abs;   \
  using metal::normalize; using metal::length; using metal::distance;
namespace fast {
ORCHARD_MATH_NAMES
}
namespace precise {
ORCHARD_MATH_NAMES
}
#undef ORCHARD_MATH_NAMES

// ---- numeric_limits (std's, plus half) and as_type ----
template <class T> struct numeric_limits : std::numeric_limits<T> {};
template <> struct numeric_limits<half> {
  static constexpr bool is_specialized = true;
  static constexpr bool is_signed = true;
  static constexpr bool has_infinity = true;
  static constexpr bool has_quiet_NaN = true;
  static constexpr int digits = 11;
  static half min() { return half(0x1p-14f); }
  static half max() { return half(65504.0f); }
  static half lowest() { return half(-65504.0f); }
  static half epsilon() { return half(0x1p-10f); }
  static half denorm_min() { return half(0x1p-24f); }
  static half infinity() { return half(std::numeric_limits<float>::infinity()); }
  static half quiet_NaN() { return half(std::numeric_limits<float>::quiet_NaN()); }
};

template <class To, class From> To as_type(const From& v) {
  static_assert(sizeof(To) == sizeof(From), "as_type: the two types must have the same size");
  To r;
  std::memcpy(&r, &v, sizeof(To));
  return r;
}

}  // namespace metal

// MSL constants.
#define M_E_F 2.71828182845904523536f
#define M_LOG2E_F 1.44269504088896340736f
#define M_LOG10E_F 0.434294481903251827651f
#define M_LN2_F 0.693147180559945309417f
#define M_LN10_F 2.30258509299404568402f
#define M_PI_F 3.14159265358979323846f
#define M_PI_2_F 1.57079632679489661923f
#define M_PI_4_F 0.785398163397448309616f
#define M_1_PI_F 0.318309886183790671538f
#define M_2_PI_F 0.636619772367581343076f
#define M_2_SQRTPI_F 1.12837916709551257390f
#define M_SQRT2_F 1.41421356237309504880f
#define M_SQRT1_2_F 0.707106781186547524401f
#define M_LOG2E_H ((half)M_LOG2E_F)
#define M_LN2_H ((half)M_LN2_F)
#define M_PI_H ((half)M_PI_F)
#define HALF_MAX ((half)65504.0f)
#define HALF_MIN ((half)0x1p-14f)
#define HALF_EPSILON ((half)0x1p-10f)
#ifndef MAXFLOAT
#define MAXFLOAT FLT_MAX
#endif
