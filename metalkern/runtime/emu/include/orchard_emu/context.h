// orchard_emu/context.h — what an emulated GPU thread knows about itself,
// and the few launcher entry points the shim calls (barriers, simd exchange,
// threadgroup memory). Implemented in emu/launcher.cpp and emu/group.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <source_location>
#include <stdexcept>
#include <string>

#include "orchard_emu/vec.h"

namespace orchard_emu {

struct MmaSimd;  // below

// Per emulated thread: the MSL builtins plus the launcher's bookkeeping.
struct ThreadCtx {
  metal::uint3 thread_position_in_grid;
  metal::uint3 threadgroup_position_in_grid;
  metal::uint3 thread_position_in_threadgroup;
  metal::uint3 threads_per_threadgroup;
  metal::uint3 threadgroups_per_grid;
  metal::uint3 threads_per_grid;
  uint thread_index_in_threadgroup;
  uint simdgroup_index_in_threadgroup;
  uint thread_index_in_simdgroup;
  uint simdgroups_per_threadgroup;
  uint threads_per_simdgroup;
  void* group;      // the orchard_emu::Group running this thread
  unsigned xchg;    // simd exchanges done so far (selects the exchange buffer)
  unsigned char* slot[2];  // this lane's exchange slot in each of the two buffers
  // Fibers mode: its simdgroup's deferred matrix ops (null in threads mode:
  // products are exchanges), and the row-major index of its first element.
  MmaSimd* mma;
  unsigned mma_at;
};

// The emulated thread running on this OS thread (fibers switch it).
extern thread_local constinit ThreadCtx* tls_ctx;

// Thrown (inside the emulated thread) for a kernel error the launcher
// reports: divergent barrier, threadgroup memory over the limit, ...
struct KernelError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One `threadgroup T name[...]` declaration site (the pre-pass emits one
// static constexpr TgSite per declaration).
struct TgSite {
  const char* name;
  const char* file;
  int line;
};

// Result of a simd exchange: every lane's 32-byte slot.
inline constexpr std::size_t kSlotBytes = 32;
struct Xchg {
  const unsigned char* base;  // slot of lane i at base + i * kSlotBytes
  unsigned lane;              // the calling lane
  unsigned width;             // lanes in this simdgroup (32 unless the group is smaller)
  template <class T> T get(unsigned i) const {
    T v;
    __builtin_memcpy(&v, base + i * kSlotBytes, sizeof(T));
    return v;
  }
};

// Runs once per exchange, after every lane of the simdgroup has written its
// slot and before any lane reads: slots = width * kSlotBytes bytes, and it
// may rewrite them (e.g. each lane's result of a simdgroup matrix product,
// computed once instead of once per lane). In threads mode it runs under the
// group's lock, by the last lane to arrive.
using Combine = void (*)(unsigned char* slots, unsigned width);

void barrier_tg(const std::source_location& loc);
void barrier_sg(const std::source_location& loc, const char* op);
// The lane has written its value to c.slot[c.xchg & 1]: waits for the other
// lanes of its simdgroup at the same call site and returns every slot.
Xchg exchange_arrive(ThreadCtx& c, const std::source_location& loc, const char* op, Combine combine);
// simdgroup_multiply(_accumulate) in float: slot of lane l = its elements of
// A, B, C (6 floats); on return bytes 24..31 of the slot hold its 2 elements
// of D = A * B + C (same per-element operation order as a per-lane loop).
void mma_combine_f32(unsigned char* slots, unsigned width);
// The same product for half A and B: slot of lane l = its elements of A and
// B as raw binary16 (2 + 2 halves, bytes 0..7) and of C as floats (bytes
// 8..15); A and B are widened once per element (half_bits_to_float), then
// multiplied exactly as by mma_combine_f32; D at bytes 24..31 as floats.
void mma_combine_f16(unsigned char* slots, unsigned width);

// binary16 bits -> float, exact (every half is a float): normal numbers
// rebias the exponent, subnormals are m * 2^-24 (computed as a difference of
// two normal floats, so no subnormal float arithmetic), infinities stay
// infinite and NaNs keep their payload with the quiet bit set (as the
// compiler's conversion, libgcc's __extendhfsf2 or F16C, does). Branch-free
// plain integer code: loops over it vectorise, and it needs no -mf16c.
inline float half_bits_to_float(std::uint16_t h) {
  const std::uint32_t em = std::uint32_t(h & 0x7fffu) << 13;  // exponent and mantissa, float positions
  const std::uint32_t exp = em & 0x0f800000u;                 // the half's exponent field
  const std::uint32_t normal = em + 0x38000000u;              // exponent + (127 - 15)
  const std::uint32_t special = (normal + 0x38000000u) | (em & 0x007fe000u ? 0x00400000u : 0u);  // -> 255
  float sub;
  const std::uint32_t one = em + 0x38800000u;  // 2^-14 * (1 + m / 1024)
  __builtin_memcpy(&sub, &one, 4);
  sub -= 0x1p-14f;  // = m * 2^-24, exact
  std::uint32_t subbits;
  __builtin_memcpy(&subbits, &sub, 4);
  std::uint32_t r = exp == 0x0f800000u ? special : exp == 0 ? subbits : normal;
  r |= std::uint32_t(h & 0x8000u) << 16;
  float f;
  __builtin_memcpy(&f, &r, 4);
  return f;
}
// Deferred matrix products (fibers mode; docs/emu.md "Matrix products in
// fibers mode"). A lane's simdgroup_multiply(_accumulate) does not wait for
// the other lanes: it deposits its operand elements into the record of its
// simdgroup's matrix op #n (n = its own count of matrix ops), inline in the
// shim (orchard_emu/matrix.h), and keeps a handle to its pending result,
// (n + 1) << 5 | lane. The last lane to deposit op n computes the product
// (mma_complete: the synchronous exchange's arithmetic, emu/mma.h). Reading a
// pending result waits until its op is computed (mma_wait_result).
inline constexpr unsigned kMmaWindow = 64;     // records per simdgroup: ops in flight
inline constexpr unsigned kMmaResults = 1024;  // results kept per simdgroup
// A lane may use (read, or pass as C) the result of its op j while j is
// among its last kMmaResults - 1 ops; later it may have been overwritten,
// and the launcher reports it (mma_bad_handle).
inline constexpr std::uint32_t kMaxMmaOps = (1u << 27) - 2;  // per simdgroup and threadgroup (handle bits)
enum MmaKind : unsigned { kMmaHalfAB = 1, kMmaHalfC = 2 };

// One matrix op in flight: the operands gathered row-major as the lanes
// deposit them (lane l's elements at mma_at and mma_at + 1).
struct MmaRec {
  alignas(64) unsigned char ab[512];  // A at 0, B at 256 (float); half A, B at 0 and 128 (binary16)
  float c[64];
  std::source_location loc;  // the call site (the first lane to deposit)
  const char* op;
  unsigned char kind;        // MmaKind bits
  unsigned char arrived;     // lanes that deposited (0: the record is free)
  std::uint32_t cj[32];      // lane l's C: the result of op cj[l] - 1, or its elements in c when 0
};
static_assert(sizeof(MmaRec) <= 1024);
// Records 17 cache lines apart (not a power of two): the same field of the
// kMmaWindow records falls in 64 different L1 sets, not 4 (with a 1024-byte
// stride a lane's deposits into its ops in flight evicted one another).
inline constexpr std::size_t kMmaSlotBytes = 17 * 64;
struct alignas(64) MmaSlot : MmaRec {
  unsigned char pad_[kMmaSlotBytes - sizeof(MmaRec)];
};
static_assert(sizeof(MmaSlot) == kMmaSlotBytes);

// The deferred-op state of one simdgroup, shared by its lanes.
struct MmaSimd {
  std::uint32_t ops[32] = {};   // matrix ops each lane has deposited
  std::uint32_t completed = 0;  // ops 0..completed-1 are computed
  std::uint32_t limit = 0;      // a lane deposits op n < limit inline; otherwise mma_enter first
  MmaSlot* rec = nullptr;       // kMmaWindow records: op n in rec[n % kMmaWindow]
  float (*res)[64] = nullptr;   // kMmaResults results: op j's D (row-major) in res[j % kMmaResults]
};

// Out-of-line parts of a deposit and a read (emu/group.cpp), for lane c:
// before op n = c.mma->ops[lane] when n >= limit (first op: allocation and
// the 32-lane rule; flow control: waits for op n - kMmaWindow; the handle
// limit); a lane's op #n at another call site or with other operand types
// than the other lanes' (divergence unless only the function differs); a
// bad or stale handle (always an error); the last deposit of op n; waiting
// for op j.
void mma_enter(ThreadCtx& c, const char* op);
void mma_site(ThreadCtx& c, const std::source_location& loc, const char* op, unsigned kind);
[[noreturn]] void mma_bad_handle(ThreadCtx& c, std::uint32_t handle, std::uint32_t use);
void mma_complete(ThreadCtx& c, std::uint32_t n);
void mma_wait_result(ThreadCtx& c, std::uint32_t j);

// The deposit (fibers mode): lane c's elements of its next matrix op: A and
// B (2 floats each, or 2 raw halves each for kMmaHalfAB), C (2 floats; not
// read when ch names a pending result; kMmaHalfC: C is a half matrix).
// Returns the handle of the lane's pending result. A lane's ops at one call
// site in one function (the same source_location bytes) have the same
// operand types, so only a differing site needs the kind compared.
[[gnu::always_inline]] inline std::uint32_t mma_defer(ThreadCtx& c, const void* a, const void* b, const float* cv,
                                                      std::uint32_t ch, const std::source_location& loc,
                                                      const char* op, unsigned kind) {
  MmaSimd& m = *c.mma;
  const unsigned lane = c.thread_index_in_simdgroup;
  const std::uint32_t n = m.ops[lane];
  if (n >= m.limit) [[unlikely]] mma_enter(c, op);
  MmaRec& r = m.rec[n % kMmaWindow];
  if (r.arrived == 0) {
    r.loc = loc;
    r.op = op;
    r.kind = (unsigned char)kind;
  } else if (__builtin_memcmp(&r.loc, &loc, sizeof loc) != 0) [[unlikely]] {
    mma_site(c, loc, op, kind);
  }
  const unsigned at = c.mma_at;
  if (kind & kMmaHalfAB) {
    __builtin_memcpy(r.ab + 2 * at, a, 4);
    __builtin_memcpy(r.ab + 128 + 2 * at, b, 4);
  } else {
    __builtin_memcpy(r.ab + 4 * at, a, 8);
    __builtin_memcpy(r.ab + 256 + 4 * at, b, 8);
  }
  if (ch) {
    // ch = (j + 1) << 5 | lane for one of the lane's last kMmaResults - 1
    // ops j (then its result is still kept when this op is computed): d is
    // (n - j - 1) << 5 exactly then; another lane's handle leaves low bits,
    // which the rotation turns into a huge value
    const std::uint32_t d = (n << 5 | lane) - ch;
    if ((d >> 5 | d << 27) >= kMmaResults - 1) [[unlikely]] mma_bad_handle(c, ch, n);
    r.cj[lane] = ch >> 5;
  } else {
    r.cj[lane] = 0;
    __builtin_memcpy(&r.c[at], cv, 8);
  }
  m.ops[lane] = n + 1;
  if (++r.arrived == 32) mma_complete(c, n);
  return (n + 1) << 5 | lane;
}

// The two floats of lane c's element of its pending result h.
[[gnu::always_inline]] inline const float* mma_read(ThreadCtx& c, std::uint32_t h) {
  const unsigned lane = c.thread_index_in_simdgroup;
  const std::uint32_t j = (h >> 5) - 1;
  if (!c.mma) [[unlikely]] mma_bad_handle(c, h, ~0u);
  MmaSimd& m = *c.mma;
  const std::uint32_t d = (m.ops[lane] << 5 | lane) - h;  // as in mma_defer: (ops - j - 1) << 5
  if ((d >> 5 | d << 27) >= kMmaResults - 1) [[unlikely]] mma_bad_handle(c, h, ~0u);
  if (j >= m.completed) [[unlikely]] mma_wait_result(c, j);
  return &m.res[j % kMmaResults][c.mma_at];
}

void* tg_alloc(const TgSite& site, std::size_t size, std::size_t align);
[[noreturn]] void fail(const std::string& msg);  // throws KernelError naming the kernel

#ifdef ORCHARD_EMU_COUNTERS
// The counting build (orchard_emu/counters.h, counters_api.h): one block per
// OS thread that runs emulated threads, summed between dispatches.
struct WorkBlock {
  std::uint64_t mma = 0;         // simdgroup multiplies, once per simdgroup (lane 0)
  std::uint64_t tg_traffic = 0;  // bytes read and written in threadgroup memory
  std::uint64_t device = 0;      // bytes read and written through device pointers
  // Thread 0 of the threadgroup this OS thread last ran: its barriers and
  // declared threadgroup bytes so far (folded into the maxima at the next group).
  bool have_group = false;
  metal::uint3 group{0u};
  std::uint64_t group_barriers = 0, group_tg_bytes = 0;
  const TgSite* group_sites[64] = {};
  unsigned group_nsites = 0;
  std::uint64_t max_barriers = 0, max_tg_bytes = 0;
  WorkBlock* next = nullptr;
};
extern thread_local constinit WorkBlock* tls_work;
WorkBlock* work_block_register();  // emu/counters.cpp
inline WorkBlock& work() {
  WorkBlock* w = tls_work;
  return w ? *w : *work_block_register();
}
enum Space : int { kDeviceSpace, kThreadgroupSpace };
template <class T, Space S> struct CountedPtr;  // orchard_emu/counters.h
void count_barrier();                                       // thread 0 of a group
void count_tg_decl(const TgSite& site, std::size_t bytes);  // thread 0 of a group
#endif

inline ThreadCtx& ctx() {
  if (!tls_ctx) fail("an MSL builtin or barrier was called outside a kernel dispatch");
  return *tls_ctx;
}

// One simd exchange: the copy into the lane's slot is inlined here (n is a
// constant at every call site), then one call into the launcher.
inline Xchg exchange(const void* mine, std::size_t n, const std::source_location& loc, const char* op,
                     Combine combine = nullptr) {
  ThreadCtx& c = ctx();
  __builtin_memcpy(c.slot[c.xchg & 1u], mine, n);
  return exchange_arrive(c, loc, op, combine);
}

// Storage for `threadgroup T name[...]`: a slice of the group's 32 KiB arena.
template <class T> T& tg_var(const TgSite& site) {
  static_assert(std::is_trivially_default_constructible_v<std::remove_all_extents_t<T>> &&
                    std::is_trivially_destructible_v<std::remove_all_extents_t<T>>,
                "threadgroup variables need a trivially constructible type (no initialisers)");
  return *static_cast<T*>(tg_alloc(site, sizeof(T), alignof(T)));
}

}  // namespace orchard_emu
