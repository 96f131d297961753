// orchard_emu/prelude.h — included first by every generated *.emu.cpp.
//
// Order matters: every standard header is included BEFORE the address-space
// macros (`thread` would break std::thread, `device`/`constant` other
// headers), then the shim, then the macros. The generated file wraps the
// .metal source in an anonymous namespace that starts with
// ORCHARD_EMU_USING, so metal:: functions hide the C library's ::abs,
// ::exp2 ... and program-scope `constant` globals of different .metal files
// never collide at link time. orchard_emu/epilogue.h undefines the macros.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <source_location>
#include <stdint.h>
#include <string>
#include <type_traits>
#include <utility>

#include "orchard_emu/vec.h"
#include "orchard_emu/context.h"
#include "orchard_emu/math.h"
#include "orchard_emu/simd.h"
#include "orchard_emu/matrix.h"
// The counting build compiles units of emugen.GenerateCounting (which define
// ORCHARD_EMU_COUNTING first) with -DORCHARD_EMU_COUNTERS=1; any other mix
// would count nothing, or not compile.
#if defined(ORCHARD_EMU_COUNTERS) != defined(ORCHARD_EMU_COUNTING)
#error "the counting emu build (-DORCHARD_EMU_COUNTERS=1, orchard-runner-emu-counters) needs units from emugen.GenerateCounting, and they need it"
#endif
#ifdef ORCHARD_EMU_COUNTERS
#include "orchard_emu/counters.h"
#endif
#include "orchard_emu/binding.h"

// The shim marks calls Metal has no overload for (simdgroup matrix element
// mixes) [[deprecated("why")]]: as errors, they point at the kernel's line.
#pragma GCC diagnostic error "-Wdeprecated-declarations"

// Kernels may test for the emulator; __METAL_VERSION__ stays undefined.
#define ORCHARD_EMU 1

// Address spaces and the kernel keyword vanish; `threadgroup` is rewritten
// by the pre-pass (storage -> group arena, pointer/reference -> erased).
#define kernel
#define device
#define constant
#define thread

#define ORCHARD_EMU_USING                                                                          \
  using namespace metal;                                                                           \
  using metal::abs; using metal::acos; using metal::asin; using metal::atan; using metal::atan2;   \
  using metal::ceil; using metal::copysign; using metal::cos; using metal::cosh; using metal::exp;  \
  using metal::exp10; using metal::exp2; using metal::fabs; using metal::fdim; using metal::floor; \
  using metal::fma; using metal::fmax; using metal::fmin; using metal::fmod; using metal::isfinite; \
  using metal::isinf; using metal::isnan; using metal::isnormal; using metal::log; using metal::log10; \
  using metal::log2; using metal::pow; using metal::rint; using metal::round; using metal::signbit;  \
  using metal::sin; using metal::sinh; using metal::sqrt; using metal::tan; using metal::tanh;      \
  using metal::trunc; using metal::max; using metal::min; using metal::clamp; using metal::select;  \
  using metal::as_type; using metal::numeric_limits;
