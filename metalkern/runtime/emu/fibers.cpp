// fibers.cpp — fibers mode: W worker threads take threadgroups from a
// shared counter; each runs all threads of its group as fibers on its own
// OS thread, in a fixed order (deterministic). A fiber runs until it waits
// at a barrier / simd op, then hands over to the next runnable fiber: the
// first set bit of the runnable mask after its own index, wrapping around.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <limits>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "fiber.h"
#include "pool.h"

namespace orchard_emu {
namespace {

class FiberPool;

struct Worker final : Scheduler {
  struct Arg {
    Worker* w;
    unsigned tid;
  };
  FiberPool* pool = nullptr;
  const KernelEntry* k = nullptr;
  const Launch* l = nullptr;
  Group group{Mode::kFibers};
  FiberStacks stacks;
  std::vector<ThreadCtx> ctx;
  std::vector<void*> sp;
  std::vector<Arg> args;
  unsigned words = 0;  // 64-bit words of `runnable` in use
  unsigned last = 0;   // the fiber that ran last (the search for the next one starts after it)
  unsigned finished = 0;
  void* sched_sp = nullptr;
  void* dead_sp = nullptr;  // finished fibers save into this and are never resumed
  bool failed = false;
  std::string error;
  std::atomic<unsigned> cur{0};
  std::atomic<unsigned long long> cur_group{0};
  std::thread th;

  explicit Worker(std::size_t stack_bytes) : stacks(stack_bytes) { stacks.set_overflow(&Worker::overflowed, this); }

  // The first runnable fiber after `last` (cyclic), its bit cleared; -1 if none.
  int pick() {
    unsigned from = last + 1, w = from / 64;
    uint64_t bits = w < words ? runnable[w] & (~0ull << (from % 64)) : 0;
    for (unsigned i = 0; i <= words; ++i) {
      if (bits) {
        unsigned t = w * 64 + unsigned(__builtin_ctzll(bits));
        runnable[w] &= ~(1ull << (t % 64));
        return int(t);
      }
      w = w + 1 < words ? w + 1 : 0;
      bits = runnable[w];
    }
    return -1;
  }
  // Leaves the current fiber (stack pointer saved to *save) for the next
  // runnable one, or for the scheduler when none is left or a fiber failed.
  void next(void** save) {
    int t = failed ? -1 : pick();
    if (t < 0) {
      tls_ctx = nullptr;
      orchard_fiber_switch(save, sched_sp);
      return;
    }
    last = unsigned(t);
    cur.store(unsigned(t), std::memory_order_relaxed);
    tls_ctx = &ctx[t];
    orchard_fiber_switch(save, sp[t]);
  }

  static void fiber_main(void* p);
  [[noreturn]] static void overflowed(void* p, std::size_t fiber);
  void prepare(const KernelEntry& kern, const Launch& launch, metal::uint3 groups, metal::uint3 tpg);
  // Runs group g; returns an error message or "".
  std::string run_group(unsigned long long g, metal::uint3 groups);
};

void Worker::fiber_main(void* p) {
  Arg* a = static_cast<Arg*>(p);
  Worker* w = a->w;
  {
    std::string err;
    try {
      w->k->run(*w->l, w->ctx[a->tid]);
      w->group.thread_exit(w->ctx[a->tid]);
    } catch (const std::exception& e) {
      err = e.what();
    } catch (...) {
      err = "unknown exception";
    }
    if (!err.empty() && !w->failed) {
      w->failed = true;
      w->error = std::move(err);
    }
  }
  ++w->finished;
  w->next(&w->dead_sp);
  __builtin_trap();  // never resumed
}

// Fiber `fiber` touched its stack's guard page: the signal handler made this
// thread continue here, on the top of that fiber's stack (fiber.h). The
// fiber is dead, as after any kernel error: fail the group and go back to
// the scheduler, which turns it into the dispatch's exception.
void Worker::overflowed(void* p, std::size_t fiber) {
  Worker* w = static_cast<Worker*>(p);
  if (!w->failed) {
    w->failed = true;
    try {
      w->error = overflow_message(w->group.where(), unsigned(fiber), w->stacks.bytes(), "fibers");
    } catch (...) {
      w->error = "stack overflow (raise ORCHARD_EMU_STACK_KB)";
    }
  }
  w->next(&w->dead_sp);
  __builtin_trap();  // never resumed
}

void Worker::prepare(const KernelEntry& kern, const Launch& launch, metal::uint3 groups, metal::uint3 tpg) {
  k = &kern;
  l = &launch;
  group.configure(k, tpg, groups, this);
  unsigned n = group.size();
  stacks.ensure(n);
  stacks.set_kernel(kern.host_name);
  ctx.resize(n);
  sp.resize(n);
  words = (n + 63) / 64;
  args.resize(n);
  for (unsigned t = 0; t < n; ++t) args[t] = Arg{this, t};
}

std::string Worker::run_group(unsigned long long g, metal::uint3 groups) {
  cur_group.store(g, std::memory_order_relaxed);
  group.begin(group_pos(g, groups), ctx.data());
  unsigned n = group.size();
  finished = 0;
  failed = false;
  error.clear();
  for (unsigned w = 0; w < words; ++w) runnable[w] = 0;
  for (unsigned t = 0; t < n; ++t) {
    sp[t] = fiber_init(stacks.top(t), &Worker::fiber_main, &args[t]);
    runnable[t / 64] |= 1ull << (t % 64);
  }
  last = n - 1;  // start with fiber 0
  next(&sched_sp);  // runs fibers until none is runnable
  tls_ctx = nullptr;
  if (failed) return error;
  if (finished < n) return group.where() + ": deadlock: " + group.state_summary();
  return "";
}

class FiberPool final : public Pool {
 public:
  explicit FiberPool(const LaunchOptions& o) : opts_(o) {
    unsigned n = o.workers ? o.workers : std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>(o.stack_bytes));
    for (auto& w : workers_) {
      Worker* wp = w.get();
      wp->th = std::thread([this, wp] { loop(wp); });
    }
  }
  ~FiberPool() override {  // never called: pools are process-wide and kept (launcher.h)
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_go_.notify_all();
    for (auto& w : workers_) w->th.join();
  }
  bool poisoned() const override { return poisoned_; }

  // The stacks for n fibers of each worker a dispatch of `groups` groups
  // uses, mapped (one mprotect per guard page) and the top two pages of
  // each touched (the first frames' page faults), and the deferred-op
  // storage of its full simdgroups allocated and touched (Group::reserve),
  // here rather than in the timed dispatch. The workers are idle: the caller holds the run lock,
  // and run() hands them work under mu_ afterwards.
  void warm(unsigned long long groups, unsigned n) override {
    const std::size_t used = std::size_t(std::min<unsigned long long>(groups, workers_.size()));
    for (std::size_t i = 0; i < used; ++i) {
      Worker* w = workers_[i].get();
      w->stacks.ensure(n);
      w->group.reserve(n);
      for (unsigned t = 0; t < n; ++t) {
        volatile char* top = static_cast<volatile char*>(w->stacks.top(t));
        top[-1] = 0;
        top[-4097] = 0;
      }
    }
  }

  void run(const KernelEntry& k, const Launch& l, metal::uint3 groups, metal::uint3 tpg) override {
    if (poisoned_) throw std::runtime_error("emu: an earlier dispatch hung and its threads still run the kernel (they may write to its buffers): restart the process");
    {
      std::lock_guard<std::mutex> g(mu_);
      k_ = &k;
      l_ = &l;
      groups_ = groups;
      tpg_ = tpg;
      total_ = 1ull * groups.x * groups.y * groups.z;
      next_.store(0);
      failed_.store(false);
      err_group_ = std::numeric_limits<unsigned long long>::max();
      err_.clear();
      done_ = 0;
      ++gen_;
    }
    cv_go_.notify_all();
    std::unique_lock<std::mutex> lk(mu_);
    auto last = std::chrono::steady_clock::now();
    uint64_t seen = progress();
    while (!cv_done_.wait_for(lk, std::chrono::milliseconds(200), [&] { return done_ == workers_.size(); })) {
      uint64_t p = progress();
      auto now = std::chrono::steady_clock::now();
      if (p != seen) {
        seen = p;
        last = now;
        continue;
      }
      if (std::chrono::duration<double>(now - last).count() < opts_.watchdog_seconds) continue;
      poisoned_ = true;
      std::ostringstream o;
      o << "kernel '" << k.host_name << "': no progress for " << opts_.watchdog_seconds << " s:";
      for (auto& w : workers_)
        o << " threadgroup #" << w->cur_group.load() << " thread " << w->cur.load() << " is still running;";
      o << " an endless loop, or a spin-wait on memory another thread of the group writes (fibers run one "
           "thread at a time until it reaches a barrier, so such a wait never ends; ORCHARD_EMU_MODE=threads "
           "runs them concurrently)";
      throw std::runtime_error(o.str());
    }
    if (!err_.empty()) throw std::runtime_error(err_);
  }

 private:
  uint64_t progress() const {
    uint64_t s = 0;
    for (auto& w : workers_) s += w->group.progress.load(std::memory_order_relaxed);
    return s;
  }

  void record(unsigned long long g, std::string msg) {
    std::lock_guard<std::mutex> lk(err_mu_);
    if (g < err_group_) {
      err_group_ = g;
      err_ = std::move(msg);
    }
    failed_.store(true);
  }

  void loop(Worker* w) {
    AltStack alt;
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_go_.wait(lk, [&] { return stop_ || gen_ != seen; });
        if (stop_) return;
        seen = gen_;
      }
      std::string setup_err;
      try {
        w->prepare(*k_, *l_, groups_, tpg_);
      } catch (const std::exception& e) {
        setup_err = e.what();
      }
      if (!setup_err.empty()) record(0, setup_err);
      while (setup_err.empty() && !failed_.load(std::memory_order_relaxed)) {
        unsigned long long g = next_.fetch_add(1);
        if (g >= total_) break;
        std::string err = w->run_group(g, groups_);
        if (!err.empty()) record(g, std::move(err));
      }
      std::lock_guard<std::mutex> lk(mu_);
      if (++done_ == workers_.size()) cv_done_.notify_all();
    }
  }

  LaunchOptions opts_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::mutex mu_;
  std::condition_variable cv_go_, cv_done_;
  uint64_t gen_ = 0;
  std::size_t done_ = 0;
  bool stop_ = false, poisoned_ = false;
  // the current dispatch (written under mu_ before gen_ changes)
  const KernelEntry* k_ = nullptr;
  const Launch* l_ = nullptr;
  metal::uint3 groups_{1u}, tpg_{1u};
  unsigned long long total_ = 0;
  std::atomic<unsigned long long> next_{0};
  std::atomic<bool> failed_{false};
  std::mutex err_mu_;
  unsigned long long err_group_ = std::numeric_limits<unsigned long long>::max();
  std::string err_;
};

}  // namespace

void Scheduler::block(unsigned tid) {
  Worker* w = static_cast<Worker*>(this);
  w->next(&w->sp[tid]);
}

std::unique_ptr<Pool> make_fiber_pool(const LaunchOptions& o) { return std::make_unique<FiberPool>(o); }

}  // namespace orchard_emu
