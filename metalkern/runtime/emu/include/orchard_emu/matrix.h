// orchard_emu/matrix.h — simdgroup_matrix<T,8,8> with Apple's lane layout.
//
// Each lane holds 2 elements (thread_elements()): lane l owns row
//   r = (l / 4 & 4) + (l / 2) % 4   and columns   c = (l / 4 & 2) * 2 + (l % 2) * 2, c + 1
// (the layout MLX's steel kernels and metal-flash-attention rely on).
// simdgroup_load / simdgroup_store touch only the calling lane's elements;
// multiply(_accumulate) involves all 32 lanes (same call site) and its
// product is computed once, by the launcher (mma_combine_f32, and
// mma_combine_f16 for half operands, widened there once per element).
// Threads mode: a simd exchange (every lane waits for the product). Fibers
// mode: deferred (context.h mma_defer): the lane deposits its elements and
// holds a pending result (`pend`, a handle) that is read, waiting if the
// product is not computed yet, by thread_elements(), simdgroup_store and use
// as an A or B operand; as a C operand it is passed on as a handle. Copies
// copy the handle (the result does not change once computed).
// Loads with transpose read M(r, c) = src[(origin.x + c) * elements_per_row +
// origin.y + r]: matrix_origin is given in the loaded matrix's coordinates.
#pragma once

#include "orchard_emu/simd.h"

namespace metal {
namespace detail {
// (row, col) of element j of lane l, and the inverse map.
constexpr int sg_row(unsigned l) { return int((l / 4) & 4) + int((l / 2) % 4); }
constexpr int sg_col(unsigned l) { return int((l / 4) & 2) * 2 + int(l % 2) * 2; }
struct SgIndex {
  unsigned char lane[64];
  unsigned char elem[64];
};
constexpr SgIndex make_sg_index() {
  SgIndex ix{};
  for (unsigned l = 0; l < 32; ++l)
    for (int j = 0; j < 2; ++j) {
      int at = sg_row(l) * 8 + sg_col(l) + j;
      ix.lane[at] = (unsigned char)l;
      ix.elem[at] = (unsigned char)j;
    }
  return ix;
}
inline constexpr SgIndex kSgIndex = make_sg_index();
}  // namespace detail

template <class T, int Cols, int Rows> struct simdgroup_matrix {
  static_assert(Cols == 8 && Rows == 8, "emu supports 8x8 simdgroup matrices only");
  mutable vec<T, 2> e;             // this lane's two elements (when pend == 0)
  mutable std::uint32_t pend = 0;  // fibers mode: handle of the pending product, 0 when e holds the value

  simdgroup_matrix() = default;
  // A diagonal matrix with `d` on the diagonal (MSL's scalar constructor).
  explicit simdgroup_matrix(T d) {
    unsigned l = orchard_emu::ctx().thread_index_in_simdgroup;
    int r = detail::sg_row(l), c = detail::sg_col(l);
    e = vec<T, 2>(r == c ? d : T(0), r == c + 1 ? d : T(0));
  }
  [[gnu::always_inline]] vec<T, 2>& thread_elements() {
    resolve();
    return e;
  }
  [[gnu::always_inline]] const vec<T, 2>& thread_elements() const {
    resolve();
    return e;
  }
  // Turns a pending product into this lane's value (same conversion as the
  // synchronous path: the float result to T).
  [[gnu::always_inline]] void resolve() const {
    if (pend) [[unlikely]] {
      const float* r = orchard_emu::mma_read(orchard_emu::ctx(), pend);
      e = vec<T, 2>(T(r[0]), T(r[1]));
      pend = 0;
    }
  }
};
using simdgroup_float8x8 = simdgroup_matrix<float, 8, 8>;
using simdgroup_half8x8 = simdgroup_matrix<half, 8, 8>;

template <class T, int Cols, int Rows> simdgroup_matrix<T, Cols, Rows> make_filled_simdgroup_matrix(T v) {
  simdgroup_matrix<T, Cols, Rows> m;
  m.e = vec<T, 2>(v, v);
  return m;
}

// Element mixes Metal does not offer resolve to a [[deprecated]] overload:
// prelude.h makes -Wdeprecated-declarations an error, so g++ reports the
// reason at the kernel's .metal line; the static_assert backs it up.
#define ORCHARD_LOAD_MSG                                                                             \
  "simdgroup_load: the pointer's element type differs from the matrix's; Metal has only "          \
  "simdgroup_load(simdgroup_matrix<T>&, const T*): load from memory of the matrix's type"
#define ORCHARD_STORE_MSG                                                                            \
  "simdgroup_store: the pointer's element type differs from the matrix's; Metal has only "         \
  "simdgroup_store(simdgroup_matrix<T>, T*): store to memory of the matrix's type"

template <class T, class U, class I = ulong>
  requires(!std::is_same_v<std::remove_cv_t<U>, T>)
[[deprecated(ORCHARD_LOAD_MSG)]] void simdgroup_load(simdgroup_matrix<T, 8, 8>&, const U*, ulong = 8,
                                                     vec<I, 2> = vec<I, 2>(0), bool = false) {
  static_assert(std::is_same_v<std::remove_cv_t<U>, T>, ORCHARD_LOAD_MSG);
}

template <class T, class U, class I = ulong>
  requires std::is_same_v<std::remove_cv_t<U>, T>
[[gnu::always_inline]] inline void simdgroup_load(simdgroup_matrix<T, 8, 8>& d, const U* src, ulong elements_per_row = 8,
                    vec<I, 2> matrix_origin = vec<I, 2>(0), bool transpose_matrix = false) {
  const unsigned at = orchard_emu::ctx().mma_at;  // sg_row(lane) * 8 + sg_col(lane)
  ulong r = ulong(matrix_origin.y) + ulong(at >> 3);
  ulong c = ulong(matrix_origin.x) + ulong(at & 7u);
  d.pend = 0;  // a pending product in d is overwritten, not read
  if (transpose_matrix) {
    d.e = vec<T, 2>(T(src[c * elements_per_row + r]), T(src[(c + 1) * elements_per_row + r]));
  } else {
    d.e = vec<T, 2>(T(src[r * elements_per_row + c]), T(src[r * elements_per_row + c + 1]));
  }
}

template <class T, class U, class I = ulong>
  requires(!std::is_same_v<U, T>)
[[deprecated(ORCHARD_STORE_MSG)]] void simdgroup_store(const simdgroup_matrix<T, 8, 8>&, U*, ulong = 8,
                                                       vec<I, 2> = vec<I, 2>(0), bool = false) {
  static_assert(std::is_same_v<U, T>, ORCHARD_STORE_MSG);
}

template <class T, class U, class I = ulong>
  requires std::is_same_v<U, T>
[[gnu::always_inline]] inline void simdgroup_store(const simdgroup_matrix<T, 8, 8>& m, U* dst, ulong elements_per_row = 8,
                     vec<I, 2> matrix_origin = vec<I, 2>(0), bool transpose_matrix = false) {
  m.resolve();
  const unsigned at = orchard_emu::ctx().mma_at;  // sg_row(lane) * 8 + sg_col(lane)
  ulong r = ulong(matrix_origin.y) + ulong(at >> 3);
  ulong c = ulong(matrix_origin.x) + ulong(at & 7u);
  if (transpose_matrix) {
    dst[c * elements_per_row + r] = U(m.e.x);
    dst[(c + 1) * elements_per_row + r] = U(m.e.y);
  } else {
    dst[r * elements_per_row + c] = U(m.e.x);
    dst[r * elements_per_row + c + 1] = U(m.e.y);
  }
}

namespace detail {
// The element mixes Metal's simdgroup_multiply(_accumulate) offers: all
// float, all half, or half A and B with float C and D (as MLX's steel
// kernels use). bfloat is not emulated.
template <class D, class A, class B, class C> constexpr bool mma_mix_ok() {
  if (!std::is_same_v<D, C> || !std::is_same_v<A, B>) return false;
  if (std::is_same_v<A, D>) return std::is_same_v<D, float> || std::is_same_v<D, half>;
  return std::is_same_v<A, half> && std::is_same_v<D, float>;
}
#define ORCHARD_MMA_MSG(op)                                                                          \
  op ": Metal offers this only for all-float, all-half, or half A and B with float C and D "       \
     "matrices (the destination's type is the accumulator's)"

// d = a * b (+ c): one exchange of every lane's elements; the last lane to
// arrive computes the whole 8x8 product once (float accumulation) and each
// lane reads back its two elements. Float operands go as floats
// (orchard_emu::mma_combine_f32); half operands go as raw halves and are
// widened there, once per element (mma_combine_f16), C always as floats.
template <class C> float acc_float(const simdgroup_matrix<C, 8, 8>* c, int j) {
  if (!c) return 0.0f;
  if constexpr (std::is_same_v<C, half>) {
    std::uint16_t h;
    __builtin_memcpy(&h, &c->e[j], 2);
    return orchard_emu::half_bits_to_float(h);
  } else {
    return float(c->e[j]);
  }
}
template <class D, class A, class B, class C>
[[gnu::always_inline]] inline void sg_mma(simdgroup_matrix<D, 8, 8>& d, const simdgroup_matrix<A, 8, 8>& a, const simdgroup_matrix<B, 8, 8>& b,
            const simdgroup_matrix<C, 8, 8>* c, const srcloc& loc, const char* op) {
  constexpr bool kHalf = std::is_same_v<A, half>;
  static_assert(kHalf == std::is_same_v<B, half>);
  orchard_emu::ThreadCtx& cx = orchard_emu::ctx();
  a.resolve();
  b.resolve();
  // Fibers mode: a pending C goes as its handle (the launcher resolves it;
  // in threads mode nothing is pending).
  const std::uint32_t ch = c ? c->pend : 0;
  if (ch && !cx.mma) c->resolve();  // reports the stray handle
  const simdgroup_matrix<C, 8, 8>* cv = ch ? nullptr : c;
  if (cx.mma) {
    // C's two floats: in place for a float C, converted for a half one, zeros without C
    alignas(8) float cf[2] = {0.0f, 0.0f};
    const float* cp = cf;
    if constexpr (std::is_same_v<C, float>) {
      if (cv) cp = &cv->e.x;
    } else {
      cf[0] = acc_float(cv, 0);
      cf[1] = acc_float(cv, 1);
    }
    d.pend = orchard_emu::mma_defer(cx, &a.e, &b.e, cp, ch, loc, op,
                                    (kHalf ? orchard_emu::kMmaHalfAB : 0u) |
                                        (std::is_same_v<C, half> ? orchard_emu::kMmaHalfC : 0u));
  } else {
    alignas(8) unsigned char mine[24];
    if constexpr (kHalf) {
      struct {
        half ab[4];
        float c[2];
      } v = {{a.e.x, a.e.y, b.e.x, b.e.y}, {acc_float(cv, 0), acc_float(cv, 1)}};
      static_assert(sizeof v == 16);
      __builtin_memcpy(mine, &v, sizeof v);
    } else {
      float v[6] = {float(a.e.x), float(a.e.y), float(b.e.x), float(b.e.y), acc_float(cv, 0), acc_float(cv, 1)};
      __builtin_memcpy(mine, v, sizeof v);
    }
    orchard_emu::Xchg x = orchard_emu::exchange(mine, kHalf ? 16 : 24, loc, op,
                                                kHalf ? &orchard_emu::mma_combine_f16 : &orchard_emu::mma_combine_f32);
    if (x.width != 32) orchard_emu::fail(std::string(op) + " in a simdgroup with fewer than 32 threads");
    float out[2];
    __builtin_memcpy(out, x.base + x.lane * orchard_emu::kSlotBytes + 6 * sizeof(float), sizeof out);
    d.e = vec<D, 2>(D(out[0]), D(out[1]));
    d.pend = 0;
  }
#ifdef ORCHARD_EMU_COUNTERS
  if (cx.thread_index_in_simdgroup == 0) ++orchard_emu::work().mma;  // one 8x8x8 product per simdgroup
#endif
}
}  // namespace detail

template <class D, class A, class B, class C>
  requires(!detail::mma_mix_ok<D, A, B, C>())
[[deprecated(ORCHARD_MMA_MSG("simdgroup_multiply_accumulate"))]] void simdgroup_multiply_accumulate(
    simdgroup_matrix<D, 8, 8>&, const simdgroup_matrix<A, 8, 8>&, const simdgroup_matrix<B, 8, 8>&,
    const simdgroup_matrix<C, 8, 8>&, const srcloc& = srcloc::current()) {
  static_assert(detail::mma_mix_ok<D, A, B, C>(), ORCHARD_MMA_MSG("simdgroup_multiply_accumulate"));
}
template <class D, class A, class B, class C>
  requires(detail::mma_mix_ok<D, A, B, C>())
[[gnu::always_inline]] inline void simdgroup_multiply_accumulate(simdgroup_matrix<D, 8, 8>& d, const simdgroup_matrix<A, 8, 8>& a,
                                   const simdgroup_matrix<B, 8, 8>& b, const simdgroup_matrix<C, 8, 8>& c,
                                   const srcloc& loc = srcloc::current()) {
  detail::sg_mma(d, a, b, &c, loc, "simdgroup_multiply_accumulate");
}
template <class D, class A, class B>
  requires(!detail::mma_mix_ok<D, A, B, D>())
[[deprecated(ORCHARD_MMA_MSG("simdgroup_multiply"))]] void simdgroup_multiply(
    simdgroup_matrix<D, 8, 8>&, const simdgroup_matrix<A, 8, 8>&, const simdgroup_matrix<B, 8, 8>&,
    const srcloc& = srcloc::current()) {
  static_assert(detail::mma_mix_ok<D, A, B, D>(), ORCHARD_MMA_MSG("simdgroup_multiply"));
}
template <class D, class A, class B>
  requires(detail::mma_mix_ok<D, A, B, D>())
[[gnu::always_inline]] inline void simdgroup_multiply(simdgroup_matrix<D, 8, 8>& d, const simdgroup_matrix<A, 8, 8>& a,
                        const simdgroup_matrix<B, 8, 8>& b, const srcloc& loc = srcloc::current()) {
  detail::sg_mma(d, a, b, static_cast<const simdgroup_matrix<float, 8, 8>*>(nullptr), loc,
                 "simdgroup_multiply");
}

#undef ORCHARD_LOAD_MSG
#undef ORCHARD_STORE_MSG
#undef ORCHARD_MMA_MSG

}  // namespace metal
