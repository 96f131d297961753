// orchard_emu/binding.h — what the generated trampolines and registry
// entries (emugen.Generate) are written against: a dispatch's buffer
// slots, argument adapters that convert to whatever the kernel parameter's
// type is, and the kernel registry.
#pragma once

#include <cstddef>
#include <string>

#include "orchard_emu/context.h"

namespace orchard_emu {

inline constexpr int kMaxBuffers = 31;  // Metal's [[buffer(0..30)]]

struct KernelEntry;

// The buffers bound for one dispatch (slot i = [[buffer(i)]]).
struct Launch {
  const KernelEntry* kernel = nullptr;
  void* buf[kMaxBuffers] = {};
  std::size_t len[kMaxBuffers] = {};
};

// `device T* p [[buffer(i)]]`: converts to any pointer type.
struct BufPtr {
  const Launch& l;
  int i;
  template <class T> operator T*() const { return static_cast<T*>(l.buf[i]); }
#ifdef ORCHARD_EMU_COUNTERS
  template <class T, Space S> operator CountedPtr<T, S>() const { return static_cast<T*>(l.buf[i]); }
#endif
};

[[noreturn]] void fail_small_buffer(const Launch& l, int i, std::size_t need);

// `constant P& p [[buffer(i)]]`: converts to a reference after checking the
// bound bytes cover sizeof(P).
struct BufRef {
  const Launch& l;
  int i;
  template <class T> operator T&() const {
    if (l.len[i] < sizeof(T)) fail_small_buffer(l, i, sizeof(T));
    return *static_cast<T*>(l.buf[i]);
  }
};

// A builtin ([[thread_position_in_grid]] ...) as uint/ushort or a 2/3-vector.
struct Builtin {
  metal::uint3 v;
  Builtin(metal::uint3 x) : v(x) {}
  Builtin(uint x) : v(x, 0u, 0u) {}
  operator uint() const { return v.x; }
  operator ushort() const { return ushort(v.x); }
  operator metal::uint2() const { return metal::uint2(v.x, v.y); }
  operator metal::uint3() const { return v; }
  operator metal::ushort2() const { return metal::ushort2(v.x, v.y); }
  operator metal::ushort3() const { return metal::ushort3(v.x, v.y, v.z); }
};

struct ParamInfo {
  enum Kind { kBufferPtr, kBufferRef, kBuiltin } kind;
  int index;         // buffer index, -1 for builtins
  const char* name;  // parameter name
  const char* type;  // declared type, as written
  const char* attr;  // attribute, e.g. "buffer(0)" or "thread_position_in_grid"
};

struct KernelEntry {
  const char* host_name;  // the name the host dispatches
  const char* function;   // C++ callee, e.g. "attn_fwd<float, 32, 32, 64>"
  const char* file;       // .metal (or header) of the instantiation
  int line;
  void (*run)(const Launch&, const ThreadCtx&);
  const ParamInfo* params;
  int nparams;
  int max_threads = 0;  // [[max_total_threads_per_threadgroup(n)]]; 0 = none (the device limit)
};

void register_kernel(const KernelEntry& e);

struct Registrar {
  explicit Registrar(const KernelEntry& e) { register_kernel(e); }
};

}  // namespace orchard_emu
