// threads.cpp — threads mode: one OS thread per emulated thread of a
// threadgroup (reused across groups and dispatches), one threadgroup at a
// time. Slow on few cores but truly concurrent, which is what
// ThreadSanitizer needs to see a missing barrier. A watchdog turns a hang
// (no barrier release or thread exit for watchdog_seconds) into an error.
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "fiber.h"
#include "pool.h"

namespace orchard_emu {
namespace {

class ThreadPool final : public Pool {
 public:
  explicit ThreadPool(const LaunchOptions& o) : opts_(o) {}
  ~ThreadPool() override {  // never called: pools are process-wide and kept (launcher.h)
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_go_.notify_all();
    for (auto& t : threads_) pthread_join(t->id, nullptr);
  }
  bool poisoned() const override { return poisoned_; }

  void run(const KernelEntry& k, const Launch& l, metal::uint3 groups, metal::uint3 tpg) override {
    if (poisoned_) throw std::runtime_error("emu: an earlier dispatch hung and its threads still run the kernel (they may write to its buffers): restart the process");
    k_ = &k;
    l_ = &l;
    err_.clear();
    group_.configure(&k, tpg, groups, nullptr);
    const unsigned n = group_.size();
    ctx_.resize(std::max<std::size_t>(ctx_.size(), n));
    grow(n);
    const unsigned long long total = 1ull * groups.x * groups.y * groups.z;
    for (unsigned long long g = 0; g < total; ++g) {
      {
        std::lock_guard<std::mutex> lk(mu_);
        group_.begin(group_pos(g, groups), ctx_.data());
        active_ = n;
        remaining_ = n;
        started_.store(0, std::memory_order_relaxed);
        ++gen_;
      }
      cv_go_.notify_all();
      wait_group(k);
      std::lock_guard<std::mutex> lk(err_mu_);
      if (!err_.empty()) throw std::runtime_error(err_);
    }
  }

 private:
  struct Th {
    pthread_t id;
    ThreadPool* pool;
    unsigned index;
  };

  void grow(unsigned n) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
#ifdef ORCHARD_EMU_TSAN
    // Kernels run on this stack: stack_kb, above a guard stack-clash probes
    // (every 64 KiB on aarch64) cannot step over.
    pthread_attr_setstacksize(&attr, std::max<std::size_t>(opts_.stack_bytes, 128 << 10));
    pthread_attr_setguardsize(&attr, 64 << 10);
#else
    pthread_attr_setstacksize(&attr, 128 << 10);  // the worker loop only: kernels run on a ThreadStack
#endif
    while (threads_.size() < n) {
      auto t = std::make_unique<Th>(Th{pthread_t{}, this, unsigned(threads_.size())});
      int rc = pthread_create(&t->id, &attr, &ThreadPool::thread_main, t.get());
      if (rc != 0) {
        pthread_attr_destroy(&attr);
        throw std::runtime_error("emu: cannot start thread " + std::to_string(threads_.size()) +
                                 " for threads mode (" + std::to_string(n) + " needed)");
      }
      threads_.push_back(std::move(t));
    }
    pthread_attr_destroy(&attr);
  }

  void record(const std::string& msg) {
    std::lock_guard<std::mutex> lk(err_mu_);
    if (err_.empty()) err_ = msg;
  }

  void wait_group(const KernelEntry& k) {
    std::unique_lock<std::mutex> lk(mu_);
    auto last = std::chrono::steady_clock::now();
    uint64_t seen = group_.progress.load();
    bool fired = false;
    while (!cv_done_.wait_for(lk, std::chrono::milliseconds(100), [&] { return remaining_ == 0; })) {
      uint64_t p = group_.progress.load();
      auto now = std::chrono::steady_clock::now();
      if (p != seen) {
        seen = p;
        last = now;
        continue;
      }
      double idle = std::chrono::duration<double>(now - last).count();
      if (!fired && idle >= opts_.watchdog_seconds) {
        fired = true;
        lk.unlock();
        std::string where = group_.where(), state = group_.state_summary();
        record(where + ": no progress for " + std::to_string(int(opts_.watchdog_seconds)) + " s (" + state +
               "): a deadlock or an endless loop");
        group_.abort();
        lk.lock();
        last = now;
      } else if (fired && idle >= 2) {
        // Threads stuck outside a barrier cannot be stopped: give up on the pool.
        poisoned_ = true;
        std::lock_guard<std::mutex> g(err_mu_);
        throw std::runtime_error(err_ + "; threads still running, the emulator cannot continue");
      }
    }
    (void)k;
  }

  static void* thread_main(void* p) {
    Th* th = static_cast<Th*>(p);
    th->pool->worker(th->index);
    return nullptr;
  }

  // Runs the kernel for emulated thread c (on whichever stack is current).
  void run_kernel(ThreadCtx& c) {
    try {
      k_->run(*l_, c);
      group_.thread_exit(c);
    } catch (const Aborted&) {
    } catch (const std::exception& e) {
      record(e.what());
      group_.abort();
    } catch (...) {
      record(group_.where() + ": unknown exception");
      group_.abort();
    }
  }

#ifndef ORCHARD_EMU_TSAN
  // Outside TSan builds each OS thread runs the kernel as a fiber on a
  // ThreadStack of its own, so that a stack overflow (the landing below, on
  // that stack's top) abandons only the kernel and the thread goes on.
  struct OnStack {
    ThreadPool* pool = nullptr;
    ThreadCtx* c = nullptr;
    std::size_t bytes = 0;
    void* back = nullptr;  // the worker loop's context
    void* dead = nullptr;  // the finished fiber saves into this, never resumed
  };
  static void on_stack_main(void* p) {
    auto* s = static_cast<OnStack*>(p);
    s->pool->run_kernel(*s->c);
    orchard_fiber_switch(&s->dead, s->back);
    __builtin_trap();
  }
  [[noreturn]] static void overflowed(void* p, std::size_t) {
    auto* s = static_cast<OnStack*>(p);
    try {
      s->pool->record(overflow_message(s->pool->group_.where(), s->c->thread_index_in_threadgroup, s->bytes, "threads"));
    } catch (...) {
      s->pool->record("stack overflow (raise ORCHARD_EMU_STACK_KB)");
    }
    s->pool->group_.abort();
    orchard_fiber_switch(&s->dead, s->back);
    __builtin_trap();
  }
#endif

  void worker(unsigned i) {
    AltStack alt;  // the overflow handler needs a stack of its own
#ifdef ORCHARD_EMU_TSAN
    thread_guard_here();
#else
    OnStack on;
    on.pool = this;
    ThreadStack stack(opts_.stack_bytes, &ThreadPool::overflowed, &on);
    on.bytes = stack.bytes();
#endif
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_go_.wait(lk, [&] { return stop_ || gen_ != seen; });
        if (stop_) return;
        seen = gen_;
        if (i >= active_) continue;
      }
      start_together(uint32_t(seen));
      ThreadCtx& c = ctx_[i];
      thread_guard_kernel(k_->host_name);
      tls_ctx = &c;
#ifdef ORCHARD_EMU_TSAN
      run_kernel(c);
#else
      on.c = &c;
      orchard_fiber_switch(&on.back, fiber_init(stack.top(), &ThreadPool::on_stack_main, &on));
#endif
      tls_ctx = nullptr;
      std::lock_guard<std::mutex> lk(mu_);
      if (--remaining_ == 0) cv_done_.notify_all();
    }
  }

  // Every thread of the group waits here before running the kernel, so no
  // thread can finish before another starts: otherwise the pool's own
  // locking would order their kernel code and hide races from TSan.
  void start_together(uint32_t gen) {
    if (started_.fetch_add(1, std::memory_order_acq_rel) + 1 == active_) {
      go_.store(gen, std::memory_order_release);
      go_.notify_all();
      return;
    }
    for (uint32_t g = go_.load(std::memory_order_acquire); g != gen; g = go_.load(std::memory_order_acquire))
      go_.wait(g, std::memory_order_acquire);
  }

  LaunchOptions opts_;
  std::atomic<unsigned> started_{0};
  std::atomic<uint32_t> go_{0};
  Group group_{Mode::kThreads};
  std::vector<std::unique_ptr<Th>> threads_;
  std::vector<ThreadCtx> ctx_;
  std::mutex mu_;
  std::condition_variable cv_go_, cv_done_;
  uint64_t gen_ = 0;
  unsigned active_ = 0, remaining_ = 0;
  bool stop_ = false, poisoned_ = false;
  const KernelEntry* k_ = nullptr;
  const Launch* l_ = nullptr;
  std::mutex err_mu_;
  std::string err_;
};

}  // namespace

std::unique_ptr<Pool> make_thread_pool(const LaunchOptions& o) { return std::make_unique<ThreadPool>(o); }

}  // namespace orchard_emu
