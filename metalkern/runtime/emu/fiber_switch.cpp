// fiber_switch.cpp — context switch in assembly (x86-64 SysV and AArch64
// AAPCS64), fiber stacks with guard pages, and the stack-overflow report.
#include "fiber.h"

#include <pthread.h>
#include <signal.h>
#include <ucontext.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>

#if defined(__APPLE__)
#define ORCHARD_SYM(x) "_" #x
// .private_extern / .hidden: global inside the image, never exported from a
// shared library (torch's op library must not export the context switch).
#define ORCHARD_FN_BEGIN(x) ".globl " ORCHARD_SYM(x) "\n.private_extern " ORCHARD_SYM(x) "\n.p2align 4\n" ORCHARD_SYM(x) ":\n"
#define ORCHARD_FN_END(x) ""
#else
#define ORCHARD_SYM(x) #x
#define ORCHARD_FN_BEGIN(x) ".globl " #x "\n.hidden " #x "\n.type " #x ",%function\n.p2align 4\n" #x ":\n"
#define ORCHARD_FN_END(x) ".size " #x ", .-" #x "\n"
#endif

extern "C" __attribute__((visibility("hidden"))) void orchard_fiber_start();

#if defined(__x86_64__)
// Frame saved by orchard_fiber_switch, from the saved stack pointer up:
// r15 r14 r13 r12 rbx rbp <return address>. A new fiber "returns" into
// orchard_fiber_start with r12 = arg, r13 = fn.
asm(".text\n" ORCHARD_FN_BEGIN(orchard_fiber_switch)
    "  pushq %rbp\n"
    "  pushq %rbx\n"
    "  pushq %r12\n"
    "  pushq %r13\n"
    "  pushq %r14\n"
    "  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n"
    "  popq %r14\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    "  popq %rbp\n"
    "  ret\n" ORCHARD_FN_END(orchard_fiber_switch)
    ORCHARD_FN_BEGIN(orchard_fiber_start)
    "  .cfi_startproc\n"
    "  .cfi_undefined rip\n"
    "  movq %r12, %rdi\n"
    "  callq *%r13\n"
    "  ud2\n"
    "  .cfi_endproc\n" ORCHARD_FN_END(orchard_fiber_start));
#elif defined(__aarch64__)
// Frame (160 bytes): x19..x28, x29 (fp), x30 (lr), d8..d15. A new fiber
// "returns" (ret to x30) into orchard_fiber_start with x19 = arg, x20 = fn.
asm(".text\n" ORCHARD_FN_BEGIN(orchard_fiber_switch)
    "  sub sp, sp, #160\n"
    "  stp x19, x20, [sp, #0]\n"
    "  stp x21, x22, [sp, #16]\n"
    "  stp x23, x24, [sp, #32]\n"
    "  stp x25, x26, [sp, #48]\n"
    "  stp x27, x28, [sp, #64]\n"
    "  stp x29, x30, [sp, #80]\n"
    "  stp d8, d9, [sp, #96]\n"
    "  stp d10, d11, [sp, #112]\n"
    "  stp d12, d13, [sp, #128]\n"
    "  stp d14, d15, [sp, #144]\n"
    "  mov x9, sp\n"
    "  str x9, [x0]\n"
    "  mov sp, x1\n"
    "  ldp x19, x20, [sp, #0]\n"
    "  ldp x21, x22, [sp, #16]\n"
    "  ldp x23, x24, [sp, #32]\n"
    "  ldp x25, x26, [sp, #48]\n"
    "  ldp x27, x28, [sp, #64]\n"
    "  ldp x29, x30, [sp, #80]\n"
    "  ldp d8, d9, [sp, #96]\n"
    "  ldp d10, d11, [sp, #112]\n"
    "  ldp d12, d13, [sp, #128]\n"
    "  ldp d14, d15, [sp, #144]\n"
    "  add sp, sp, #160\n"
    "  ret\n" ORCHARD_FN_END(orchard_fiber_switch)
    ORCHARD_FN_BEGIN(orchard_fiber_start)
    "  .cfi_startproc\n"
    "  .cfi_undefined x30\n"
    "  mov x0, x19\n"
    "  blr x20\n"
    "  brk #0\n"
    "  .cfi_endproc\n" ORCHARD_FN_END(orchard_fiber_start));
#else
#error "orchard emu fibers: only x86-64 and aarch64 have a context switch; build with threads mode"
#endif

namespace orchard_emu {

void* fiber_init(void* stack_top, void (*fn)(void*), void* arg) {
  auto top = reinterpret_cast<std::uintptr_t>(stack_top) & ~std::uintptr_t(15);
#if defined(__x86_64__)
  // After the 6 pops and ret, rsp = sp + 56 must be 16-byte aligned for the call.
  auto* sp = reinterpret_cast<std::uintptr_t*>(top - 72);
  std::memset(sp, 0, 72);
  sp[2] = reinterpret_cast<std::uintptr_t>(fn);   // r13
  sp[3] = reinterpret_cast<std::uintptr_t>(arg);  // r12
  sp[6] = reinterpret_cast<std::uintptr_t>(&orchard_fiber_start);
#else
  auto* sp = reinterpret_cast<std::uintptr_t*>(top - 160);
  std::memset(sp, 0, 160);
  sp[0] = reinterpret_cast<std::uintptr_t>(arg);  // x19
  sp[1] = reinterpret_cast<std::uintptr_t>(fn);   // x20
  sp[11] = reinterpret_cast<std::uintptr_t>(&orchard_fiber_start);  // x30
#endif
  return sp;
}

namespace {

// Regions the signal handler checks; written before use, read in the handler.
struct Region {
  std::atomic<std::uintptr_t> lo{0}, hi{0};
  std::atomic<std::size_t> stride{1}, guard{0}, bytes{0};
  std::atomic<const char*> kernel{nullptr};
  std::atomic<OverflowFn> on_overflow{nullptr};
  std::atomic<void*> owner{nullptr};
};
constexpr int kRegions = 256;
Region g_regions[kRegions];
std::mutex g_regions_mu;
struct sigaction g_prev_segv, g_prev_bus;

// Threads mode: this thread's guard range, set at its start, read by the
// handler on the same thread (its TLS block exists by then, so the read
// allocates nothing; not initial-exec, which a dlopen'ed library may lack
// room for).
struct ThreadGuard {
  std::uintptr_t lo = 0, hi = 0;  // the guard
  std::uintptr_t top = 0;         // ThreadStack: the top of the stack above it
  std::size_t bytes = 0;
  const char* kernel = nullptr;
  OverflowFn on_overflow = nullptr;
  void* owner = nullptr;
};
thread_local constinit ThreadGuard t_guard;

void say(const char* s) {
  ssize_t r = ::write(2, s, std::strlen(s));
  (void)r;
}

// Makes the faulting thread, once the handler returns, call fn(owner, fiber)
// on the top of the overflowed fiber's own stack (that fiber is dead: it is
// never resumed). sigreturn restores the signal mask and leaves the
// alternate stack as the kernel does for any handler, so nothing is left
// half-done; the handler itself only writes registers (async-signal-safe).
// False where this platform's ucontext is not known here.
bool redirect(void* ucv, std::uintptr_t top, OverflowFn fn, void* owner, std::size_t fiber) {
  auto* uc = static_cast<ucontext_t*>(ucv);
  std::uintptr_t sp = top & ~std::uintptr_t(15);
#if defined(__linux__) && defined(__x86_64__)
  sp -= 8;  // as after a call: (rsp + 8) % 16 == 0 at function entry
  *reinterpret_cast<std::uintptr_t*>(sp) = 0;  // no return address
  uc->uc_mcontext.gregs[REG_RSP] = greg_t(sp);
  uc->uc_mcontext.gregs[REG_RIP] = greg_t(reinterpret_cast<std::uintptr_t>(fn));
  uc->uc_mcontext.gregs[REG_RDI] = greg_t(reinterpret_cast<std::uintptr_t>(owner));
  uc->uc_mcontext.gregs[REG_RSI] = greg_t(fiber);
  uc->uc_mcontext.gregs[REG_RBP] = 0;
  return true;
#elif defined(__linux__) && defined(__aarch64__)
  uc->uc_mcontext.sp = sp;
  uc->uc_mcontext.pc = reinterpret_cast<std::uintptr_t>(fn);
  uc->uc_mcontext.regs[0] = reinterpret_cast<std::uintptr_t>(owner);
  uc->uc_mcontext.regs[1] = fiber;
  uc->uc_mcontext.regs[29] = 0;  // fp
  uc->uc_mcontext.regs[30] = 0;  // lr: no return
  return true;
#elif defined(__APPLE__) && defined(__x86_64__)
  // Only a Mac can prove this (docs/runtime.md): <mach/i386/_structs.h>.
  sp -= 8;
  *reinterpret_cast<std::uintptr_t*>(sp) = 0;
  uc->uc_mcontext->__ss.__rsp = sp;
  uc->uc_mcontext->__ss.__rip = reinterpret_cast<std::uintptr_t>(fn);
  uc->uc_mcontext->__ss.__rdi = reinterpret_cast<std::uintptr_t>(owner);
  uc->uc_mcontext->__ss.__rsi = fiber;
  uc->uc_mcontext->__ss.__rbp = 0;
  return true;
#elif defined(__APPLE__) && defined(__aarch64__)
  // Only a Mac can prove this (docs/runtime.md): <mach/arm/_structs.h>, whose
  // accessors sign pc/sp where pointer authentication is on (arm64e).
  __darwin_arm_thread_state64_set_sp(uc->uc_mcontext->__ss, sp);
  __darwin_arm_thread_state64_set_pc_fptr(uc->uc_mcontext->__ss, reinterpret_cast<void*>(fn));
  uc->uc_mcontext->__ss.__x[0] = reinterpret_cast<std::uintptr_t>(owner);
  uc->uc_mcontext->__ss.__x[1] = fiber;
  return true;
#else
  (void)uc, (void)sp, (void)fn, (void)owner, (void)fiber;
  return false;
#endif
}

void on_fault(int sig, siginfo_t* si, void* uc) {
  auto a = reinterpret_cast<std::uintptr_t>(si->si_addr);
  for (auto& r : g_regions) {
    std::uintptr_t lo = r.lo.load(std::memory_order_relaxed), hi = r.hi.load(std::memory_order_relaxed);
    if (a < lo || a >= hi || (a - lo) % r.stride.load() >= r.guard.load()) continue;
    // The guard page of stack i lies at the bottom of its slot; the fault
    // is an overflow of fiber i. Its stack's top (see FiberStacks::top):
    std::size_t stride = r.stride.load(), i = (a - lo) / stride;
    std::uintptr_t top = lo + i * stride + stride - (i % 64) * 64;
    if (OverflowFn fn = r.on_overflow.load(); fn && redirect(uc, top, fn, r.owner.load(), i)) return;
    // No way back to the scheduler on this platform: report and end.
    char kb[24];
    std::size_t v = r.bytes.load() >> 10;
    int n = 0;
    char tmp[24];
    do tmp[n++] = char('0' + v % 10); while ((v /= 10) && n < 20);
    for (int j = 0; j < n; ++j) kb[j] = tmp[n - 1 - j];
    kb[n] = 0;
    const char* k = r.kernel.load();
    say("orchard emu: stack overflow in kernel '");
    say(k ? k : "?");
    say("': each emulated thread has a ");
    say(kb);
    say(" KiB stack; large per-thread arrays need more: set ORCHARD_EMU_STACK_KB\n");
    _exit(70);
  }
  // Threads mode: the guard below this thread's own pthread stack.
  if (a >= t_guard.lo && a < t_guard.hi) {
    if (t_guard.on_overflow && redirect(uc, t_guard.top, t_guard.on_overflow, t_guard.owner, 0)) return;
    const char* k = t_guard.kernel;
    say("orchard emu: stack overflow in kernel '");
    say(k ? k : "?");
    say("' (threads mode, where it cannot be turned into a dispatch error): each emulated thread's stack is ");
    char kb[24];
    std::size_t v = t_guard.bytes >> 10;
    int n = 0;
    char tmp[24];
    do tmp[n++] = char('0' + v % 10); while ((v /= 10) && n < 20);
    for (int j = 0; j < n; ++j) kb[j] = tmp[n - 1 - j];
    kb[n] = 0;
    say(kb);
    say(" KiB; raise ORCHARD_EMU_STACK_KB / emu_configure(\"stack_kb\", ...), or use fibers mode\n");
    _exit(70);
  }
  // Not a fiber guard page: hand over to whatever was installed before.
  struct sigaction& prev = sig == SIGSEGV ? g_prev_segv : g_prev_bus;
  if (prev.sa_flags & SA_SIGINFO) {
    if (prev.sa_sigaction) return prev.sa_sigaction(sig, si, uc);
  } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
    return prev.sa_handler(sig);
  }
  signal(sig, SIG_DFL);  // re-executing the access now takes the default action
}


void install_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_prev_segv);
    sigaction(SIGBUS, &sa, &g_prev_bus);
  });
}

}  // namespace

FiberStacks::FiberStacks(std::size_t bytes) {
  std::size_t page = std::size_t(sysconf(_SC_PAGESIZE));
  // 64 KiB of guard below each stack, not one page: g++'s
  // -fstack-clash-protection on aarch64 probes every 64 KiB (its assumed
  // guard size), so a big frame could step over a 4 KiB guard into the
  // next stack or unmapped memory. It costs address space only.
  guard_ = std::max<std::size_t>(page, std::size_t(64) << 10);
  bytes_ = (bytes + page - 1) / page * page;
  std::lock_guard<std::mutex> g(g_regions_mu);
  for (int i = 0; i < kRegions; ++i)
    if (g_regions[i].hi.load() == 0 && g_regions[i].guard.load() == 0) {
      slot_ = i;
      g_regions[i].guard.store(1);  // reserved
      break;
    }
}

FiberStacks::~FiberStacks() {
  unmap();
  if (slot_ >= 0) {
    g_regions[slot_].on_overflow.store(nullptr);
    g_regions[slot_].owner.store(nullptr);
    g_regions[slot_].guard.store(0);
  }
}

void FiberStacks::unmap() {
  if (!base_) return;
  if (slot_ >= 0) {
    g_regions[slot_].hi.store(0);
    g_regions[slot_].lo.store(0);
  }
  munmap(base_, stride_ * count_);
  base_ = nullptr;
  count_ = 0;
}

void FiberStacks::ensure(std::size_t count) {
  if (count <= count_) return;
  unmap();
  stride_ = bytes_ + guard_;
  int flags = MAP_PRIVATE | MAP_ANONYMOUS;
#ifdef MAP_NORESERVE
  flags |= MAP_NORESERVE;
#endif
  void* p = mmap(nullptr, stride_ * count, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (p == MAP_FAILED)
    throw std::runtime_error("emu: cannot map " + std::to_string(count) + " fiber stacks of " +
                             std::to_string(bytes_ >> 10) + " KiB (lower ORCHARD_EMU_STACK_KB)");
  base_ = static_cast<char*>(p);
  count_ = count;
  for (std::size_t i = 0; i < count; ++i) mprotect(base_ + i * stride_, guard_, PROT_NONE);
  if (slot_ >= 0) {
    Region& r = g_regions[slot_];
    r.stride.store(stride_);
    r.guard.store(guard_);
    r.bytes.store(bytes_);
    r.lo.store(reinterpret_cast<std::uintptr_t>(base_));
    r.hi.store(reinterpret_cast<std::uintptr_t>(base_) + stride_ * count_);
  }
}

// Stacks are a whole number of pages apart, so the same depth in every stack
// would fall in the same L1 cache set (the L1 is indexed by the low 12 address
// bits) and the fibers of a group, which all run the same code, would evict
// each other's frames on every switch. Stack i starts (i % 64) cache lines
// below its top instead (at most 4 KiB of the stack).
void* FiberStacks::top(std::size_t i) const { return base_ + i * stride_ + stride_ - (i % 64) * 64; }

void FiberStacks::set_kernel(const char* name) {
  if (slot_ >= 0) g_regions[slot_].kernel.store(name);
}

void FiberStacks::set_overflow(OverflowFn fn, void* owner) {
  if (slot_ < 0) return;
  g_regions[slot_].owner.store(owner);
  g_regions[slot_].on_overflow.store(fn);
}

void thread_guard_here() {
#if defined(__linux__)
  pthread_attr_t a;
  if (pthread_getattr_np(pthread_self(), &a) != 0) return;
  void* lo = nullptr;
  std::size_t size = 0, guard = 0;
  if (pthread_attr_getstack(&a, &lo, &size) == 0 && pthread_attr_getguardsize(&a, &guard) == 0 && guard) {
    // glibc: the guard lies right below the reported stack.
    t_guard.hi = reinterpret_cast<std::uintptr_t>(lo);
    t_guard.lo = t_guard.hi - guard;
    t_guard.bytes = size;
  }
  pthread_attr_destroy(&a);
#endif
}

void thread_guard_kernel(const char* name) { t_guard.kernel = name; }

ThreadStack::ThreadStack(std::size_t bytes, OverflowFn fn, void* owner) {
  std::size_t page = std::size_t(sysconf(_SC_PAGESIZE));
  guard_ = std::max<std::size_t>(page, std::size_t(64) << 10);  // as FiberStacks
  bytes_ = (bytes + page - 1) / page * page;
  int flags = MAP_PRIVATE | MAP_ANONYMOUS;
#ifdef MAP_NORESERVE
  flags |= MAP_NORESERVE;
#endif
  void* p = mmap(nullptr, guard_ + bytes_, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (p == MAP_FAILED)
    throw std::runtime_error("emu: cannot map a thread stack of " + std::to_string(bytes_ >> 10) +
                             " KiB (lower ORCHARD_EMU_STACK_KB)");
  base_ = static_cast<char*>(p);
  mprotect(base_, guard_, PROT_NONE);
  t_guard.lo = reinterpret_cast<std::uintptr_t>(base_);
  t_guard.hi = t_guard.lo + guard_;
  t_guard.top = t_guard.hi + bytes_;
  t_guard.bytes = bytes_;
  t_guard.owner = owner;
  t_guard.on_overflow = fn;
}

ThreadStack::~ThreadStack() {
  t_guard = ThreadGuard{};
  munmap(base_, guard_ + bytes_);
}

std::string overflow_message(const std::string& where, unsigned thread, std::size_t bytes, const char* mode) {
  return where + ": stack overflow in thread " + std::to_string(thread) + ": each emulated thread has a " +
         std::to_string(bytes >> 10) + " KiB stack (" + mode +
         " mode); large per-thread arrays need more: raise it with ORCHARD_EMU_STACK_KB=<KiB> or "
         "orchard::emu_configure(\"stack_kb\", \"<KiB>\") (orchard_ops.configure(stack_kb=...))";
}

void fiber_regions_lock() { g_regions_mu.lock(); }
void fiber_regions_unlock() { g_regions_mu.unlock(); }

void fiber_regions_forget() {
  for (auto& r : g_regions) {
    r.lo.store(0);
    r.hi.store(0);
    r.guard.store(0);
    r.on_overflow.store(nullptr);
    r.owner.store(nullptr);
  }
}

AltStack::AltStack() {
  install_handler();
  constexpr std::size_t kBytes = 64 << 10;
  mem_ = std::malloc(kBytes);
  if (!mem_) throw std::bad_alloc();
  stack_t ss;
  std::memset(&ss, 0, sizeof ss);
  ss.ss_sp = mem_;
  ss.ss_size = kBytes;
  sigaltstack(&ss, nullptr);
}

AltStack::~AltStack() {
  stack_t ss;
  std::memset(&ss, 0, sizeof ss);
  ss.ss_flags = SS_DISABLE;
  sigaltstack(&ss, nullptr);
  std::free(mem_);
}

}  // namespace orchard_emu
