// launcher.h — runs a registered kernel over a grid of threadgroups on the
// CPU. Two modes:
//   fibers  (default) each worker OS thread runs whole threadgroups, one
//           emulated thread at a time, switching at barriers and simd ops
//           (hand-written context switch, mmap'd stacks with guard pages);
//           deterministic, fast, reports divergence immediately.
//   threads one OS thread per emulated thread, one threadgroup at a time;
//           real concurrency for ThreadSanitizer; a watchdog turns a hang
//           into an error.
// The kernel registry is filled by the generated *.emu.cpp files at startup.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "orchard_emu/binding.h"

namespace orchard_emu {

class Pool;

struct LaunchOptions {
  bool threads = false;                 // threads mode instead of fibers
  unsigned workers = 0;                 // fibers: worker threads (0 = hardware concurrency)
  std::size_t stack_bytes = 256 << 10;  // per emulated thread
  double watchdog_seconds = 20;         // no barrier/exit progress for this long = error
};

class Launcher {
 public:
  explicit Launcher(const LaunchOptions& o);
  ~Launcher();
  // Throws std::runtime_error naming the kernel when the shape is invalid
  // (empty grid or threadgroup, more than 1024 threads per threadgroup).
  static void check_shape(const KernelEntry& k, metal::uint3 groups, metal::uint3 threads_per_group);
  // Throws std::runtime_error naming the kernel on any failure.
  void dispatch(const KernelEntry& k, metal::uint3 groups, metal::uint3 threads_per_group, const Launch& l);
  bool threads() const { return opts_.threads; }
  unsigned workers() const { return opts_.workers; }

 private:
  LaunchOptions opts_;
  std::unique_ptr<Pool> pool_;
};

// Kernels registered by the generated sources, in registration order.
const std::vector<const KernelEntry*>& registry();
const KernelEntry* find_kernel(std::string_view host_name);
// Registration problems (a host name defined twice), empty when fine.
std::vector<std::string> registry_problems();

}  // namespace orchard_emu
