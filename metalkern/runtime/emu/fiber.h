// fiber.h — minimal user-space context switch (x86-64 and aarch64) and the
// mmap'd fiber stacks with guard pages used by the fibers launcher.
#pragma once

#include <cstddef>
#include <string>

extern "C" {
// Saves the callee-saved registers on the current stack, stores the stack
// pointer in *save, and resumes the context whose stack pointer is `to`.
__attribute__((visibility("hidden"))) void orchard_fiber_switch(void** save, void* to);
}

namespace orchard_emu {

// Prepares a fresh stack so that switching to the returned stack pointer
// calls fn(arg). fn must never return (it switches away at its end).
void* fiber_init(void* stack_top, void (*fn)(void*), void* arg);

// Called (on the overflowed fiber's stack, as ordinary code, after the
// signal handler returned) when fiber `fiber` of a FiberStacks touched its
// guard page. Must never return: it switches to the scheduler.
using OverflowFn = void (*)(void* owner, std::size_t fiber);

// `count` stacks of `bytes` each, every one below a PROT_NONE guard page.
// A fault in a guard page calls the set_overflow function (where the
// platform's signal context is known: Linux and macOS on x86-64 and
// aarch64); else it is reported as a stack overflow of the set_kernel
// kernel and the process ends with status 70.
class FiberStacks {
 public:
  explicit FiberStacks(std::size_t bytes);
  ~FiberStacks();
  FiberStacks(const FiberStacks&) = delete;
  FiberStacks& operator=(const FiberStacks&) = delete;
  void ensure(std::size_t count);  // (re)maps when more stacks are needed
  void* top(std::size_t i) const;  // 16-byte aligned top of stack i
  void set_kernel(const char* name);
  void set_overflow(OverflowFn fn, void* owner);
  std::size_t bytes() const { return bytes_; }

 private:
  void unmap();
  std::size_t bytes_, guard_, stride_ = 0, count_ = 0;
  char* base_ = nullptr;
  int slot_ = -1;  // index in the overflow handler's region table
};

// fork(): the atfork handlers hold the region table's lock across fork; in
// the child every pool is abandoned (its threads do not exist there), and
// so are their regions.
void fiber_regions_lock();
void fiber_regions_unlock();
void fiber_regions_forget();

// Threads mode: the calling OS thread runs its kernels on this stack (a
// fiber of its own, above a 64 KiB guard): an overflow calls fn(owner, 0) on
// its top, as for FiberStacks, so it becomes a dispatch error. Made and
// destroyed on the thread that uses it.
class ThreadStack {
 public:
  ThreadStack(std::size_t bytes, OverflowFn fn, void* owner);
  ~ThreadStack();
  ThreadStack(const ThreadStack&) = delete;
  ThreadStack& operator=(const ThreadStack&) = delete;
  void* top() const { return base_ + guard_ + bytes_; }
  std::size_t bytes() const { return bytes_; }

 private:
  char* base_ = nullptr;
  std::size_t bytes_ = 0, guard_ = 0;
};

// The ThreadSanitizer build cannot follow a switch to another stack, so
// there kernels run on the pthread's own stack: this records its guard
// (Linux; elsewhere a no-op), and an overflow is reported with the kernel's
// name (thread_guard_kernel) and the knob before the process ends (70).
void thread_guard_here();
void thread_guard_kernel(const char* name);

// "kernel 'k', threadgroup (x,y,z): stack overflow in thread t: ..."
std::string overflow_message(const std::string& where, unsigned thread, std::size_t bytes, const char* mode);

// Per worker thread: an alternate signal stack so a stack overflow on a
// fiber can still be reported. Installs the SIGSEGV/SIGBUS handler once.
class AltStack {
 public:
  AltStack();
  ~AltStack();

 private:
  void* mem_ = nullptr;
};

}  // namespace orchard_emu
