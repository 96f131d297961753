// group.h — one emulated threadgroup: barrier and simd-exchange state, the
// divergence checks, and the 32 KiB threadgroup-memory arena.
//
// The same state machine serves both launcher modes. In threads mode every
// call runs under the group's mutex and waiters sleep on condition
// variables; in fibers mode all threads of the group share one OS thread
// and a waiter hands the CPU to the next runnable fiber (Scheduler).
//
// Divergence rules (checked on every arrival, so they fire immediately):
//  - all threads of a group reach the same threadgroup_barrier call site;
//  - all lanes of a simdgroup reach the same simd op / simdgroup_barrier site;
//  - a lane waiting at a simd op while a lane of its simdgroup waits at a
//    threadgroup_barrier, or a thread that returned while others wait (or
//    before they arrive), is divergence too.
//
// Deferred matrix products (fibers mode; docs/emu.md "Matrix products in
// fibers mode", orchard_emu/context.h): simdgroup_multiply(_accumulate) does
// not wait for the other lanes. Lane l deposits its operand elements into the
// record of its simdgroup's matrix op #n (n = the lane's count so far) and
// goes on with a pending result (a handle: op n, lane l); the last lane to
// deposit op n computes the product, with the same combine as the
// synchronous exchange. A lane waits only to read a pending value, or when
// kMmaWindow of its ops are in flight. Added divergence rules:
//  - every lane's op #n is at the same call site (and of the same kind);
//  - lanes reach an exchange, a threadgroup_barrier or return with the same
//    count of matrix ops (so every op is complete there);
//  - a lane never waits for an op that a lane which has not done it cannot
//    reach (that lane waits at an exchange or barrier, or returned).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <source_location>
#include <string>
#include <vector>

#include "orchard_emu/binding.h"

namespace orchard_emu {

enum class Mode { kFibers, kThreads };

inline constexpr std::size_t kTgLimit = 32768;  // bytes of threadgroup memory
inline constexpr unsigned kMaxThreads = 1024;   // threads per threadgroup
inline constexpr unsigned kSimdWidth = 32;

// A barrier / simd-op call site.
struct Site {
  const char* file = nullptr;
  unsigned line = 0, col = 0;
  const char* op = nullptr;
};

// Fibers mode: the set of runnable fibers (bit t of runnable: fiber t may
// run; the running fiber's bit is clear) and the switch to the next one.
// A release sets the released lanes' bits (one mask operation per
// simdgroup); block() runs the next runnable fiber after `tid` in index
// order (deterministic) and returns when tid's bit was set and it is picked.
class Scheduler {
 public:
  uint64_t runnable[kMaxThreads / 64] = {};
  void block(unsigned tid);  // fibers.cpp

 protected:
  ~Scheduler() = default;
};

// Thrown in waiting threads when the group is aborted (threads mode).
struct Aborted {};

class Group {
 public:
  explicit Group(Mode mode);
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  // Per dispatch: the kernel, the shape, and (fibers) the scheduler.
  void configure(const KernelEntry* k, metal::uint3 tpg, metal::uint3 groups, Scheduler* s);
  // Fibers mode, before a dispatch of n-thread groups (FiberPool::warm):
  // the deferred-op storage of each full simdgroup allocated and its pages
  // touched, so the first matrix ops do not page-fault in the timed run.
  void reserve(unsigned n);
  // Per threadgroup: resets the state and fills ctx[0..size()).
  void begin(metal::uint3 group_pos, ThreadCtx* ctx);
  unsigned size() const { return n_; }

  void arrive_tg(ThreadCtx& c, const Site& s);
  // Deferred matrix ops (fibers mode): the launcher's side of context.h's
  // mma_enter, mma_site, mma_bad_handle, mma_complete and mma_wait_result.
  void mma_enter(ThreadCtx& c, const char* op);
  void mma_site(ThreadCtx& c, const std::source_location& loc, const char* op, unsigned kind);
  [[noreturn]] void mma_bad_handle(ThreadCtx& c, uint32_t h, uint32_t use);
  void mma_complete(ThreadCtx& c, uint32_t n);
  void mma_wait_result(ThreadCtx& c, uint32_t j);
  // The lane has written its slot (ThreadCtx::slot); waits for its simdgroup
  // at site s, runs combine once, and returns every lane's slot.
  Xchg arrive_xchg(ThreadCtx& c, const Site& s, Combine combine);
  // combine (may be null) runs once, on `slots`, when the last lane arrives.
  void arrive_sg(ThreadCtx& c, const Site& s, Combine combine = nullptr, unsigned char* slots = nullptr);
  void* tg_alloc(const TgSite& site, std::size_t size, std::size_t align);
  void thread_exit(ThreadCtx& c);

  void abort();                  // threads mode: every waiter throws Aborted
  std::string state_summary();   // who waits where, who runs, who returned
  std::string where() const;     // "kernel 'k', threadgroup (x,y,z)"

  std::atomic<uint64_t> progress{0};  // bumped on releases, wake-ups and exits (watchdog)

 private:
  enum St : uint8_t { kRunning, kWaitTg, kWaitSg, kWaitMma, kDone };
  struct MmaStore;  // group.cpp
  // Per simdgroup, bit i = lane i: waiting at the simd op `site`, waiting at
  // the threadgroup barrier (tg_site_), returned. A lane in none is running.
  struct Simd {
    unsigned first = 0, size = 0;
    uint32_t full = 0;  // bits of the `size` lanes
    uint32_t wait = 0, tg = 0, done = 0;
    std::atomic<uint32_t> phase{0};  // bumped on release; threads mode waits on it (futex)
    Site site;
    // Matrix-op counts of the lanes waiting at `site`, at the barrier, and
    // of those that returned (each set by the first such lane, checked by
    // the others); fibers mode only.
    uint32_t site_ops = 0, tg_ops = 0, done_ops = 0;
    alignas(64) unsigned char slots[2][kSimdWidth][kSlotBytes];
    // Deferred matrix ops (fibers mode): the state the shim reads, lanes
    // waiting for op wait_op[lane] (wake_at: the smallest), the storage.
    MmaSimd mma;
    uint32_t mwait = 0, wake_at = 0;
    uint32_t wait_op[kSimdWidth] = {};
    std::unique_ptr<MmaStore> store;  // allocated by reserve() or at the simdgroup's first matrix op
  };
  struct TgAlloc {
    const TgSite* site;
    std::size_t off, size;
  };
  class Lock;

  // The simdgroups of n-thread groups: made anew only when n changes.
  void size_for(unsigned n);
  // sg's deferred-op storage, every record's count zero; touch_pages: all of
  // it written now (reserve), else paged in as records are used (mma_enter).
  void alloc_store(Simd& sg, bool touch_pages);
  void release_tg(unsigned me);
  void release_sg(Simd& sg, unsigned me);
  [[noreturn]] void diverge_sg(ThreadCtx& c, const Site& s);
  // Deferred matrix ops (fibers mode), group.cpp.
  void check_ops(ThreadCtx& c, Simd& sg, int what, const Site* s);
  [[noreturn]] void diverge_ops(ThreadCtx& c, Simd& sg, const std::string& head, uint32_t others, uint32_t their_ops);
  void mma_wait(ThreadCtx& c, Simd& sg, uint32_t op, uint32_t start);
  void mma_wake(Simd& sg, uint32_t n);
  std::string op_name(const Simd& sg, uint32_t n) const;  // "matrix op #n (file:l:c (op))"
  std::string mma_waiters(const Simd& sg, uint32_t lanes) const;
  void arrive_sg_fibers(ThreadCtx& c, Simd& sg, const Site& s, Combine combine, unsigned char* slots);
  St state(unsigned t) const;
  void wait(Lock& lk, unsigned t, std::atomic<uint32_t>& phase);
  [[noreturn]] void diverge(const std::string& what);
  // "lanes 0-15 wait at f.metal:3:9 (simd_sum)": the threads in state st (of
  // sg and in `only`, or of the group when sg is null), by site.
  std::string threads_where(St st, const Simd* sg, uint32_t only = ~0u) const;

  const Mode mode_;
  const KernelEntry* kernel_ = nullptr;
  Scheduler* sched_ = nullptr;
  metal::uint3 tpg_{1u}, groups_{1u}, pos_{0u};
  unsigned n_ = 0, nsg_ = 0;
  std::mutex mu_;
  std::atomic<bool> aborted_{false};
  std::unique_ptr<Simd[]> sgs_;
  unsigned tg_arrived_ = 0, done_ = 0;
  std::atomic<uint32_t> tg_phase_{0};
  Site tg_site_;
  // threadgroup memory
  alignas(64) unsigned char arena_[kTgLimit];
  TgAlloc tg_tab_[64];
  std::atomic<unsigned> tg_count_{0};
  std::size_t tg_used_ = 0;
};

// "attn.metal:42:5 (simd_sum)"
std::string describe(const Site& s);
// "0-15, 17, 20-21"
std::string ranges(const std::vector<unsigned>& ids);

}  // namespace orchard_emu
