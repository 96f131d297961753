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
//
// In-process use (a Python process, docs/emu.md "In-process use"): the worker
// pools are process-wide, one per distinct LaunchOptions, created at the
// first dispatch that needs them and never destroyed, so no thread is ever
// joined at exit (an interpreter exit cannot hang on one). Dispatches on one
// pool run one at a time (its lock): a dispatch already uses every worker,
// so a second one at the same moment would only add threads and stacks.
// After fork() the child abandons every pool (their threads stayed in the
// parent) and builds new ones on its first dispatch.
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
  explicit Launcher(const LaunchOptions& o);  // starts no thread
  ~Launcher();
  // Throws std::runtime_error naming the kernel when the shape is invalid
  // (empty grid or threadgroup, more than 1024 threads per threadgroup).
  static void check_shape(const KernelEntry& k, metal::uint3 groups, metal::uint3 threads_per_group);
  // Throws std::runtime_error naming the kernel on any failure. Safe to call
  // from several threads at once (they take turns on the shared pool).
  void dispatch(const KernelEntry& k, metal::uint3 groups, metal::uint3 threads_per_group, const Launch& l) const;
  // Sets up, before a dispatch of this shape, what the dispatch would
  // otherwise set up on its first use: the pool and (fibers) the stacks of
  // the workers it will use (min(workers, groups)), mapped and their top
  // pages touched. Called by the emu backend outside the time it reports
  // (gpu_ms), so that time is the kernel's run only, the same in a
  // process's first dispatch as in its later ones.
  void warm(metal::uint3 groups, metal::uint3 threads_per_group) const;
  bool threads() const { return opts_.threads; }
  unsigned workers() const { return opts_.workers; }
  const LaunchOptions& options() const { return opts_; }

 private:
  LaunchOptions opts_;
};

// Registers the pools' fork handlers now (otherwise at the first dispatch).
// See emu_register_fork_handlers in host/emu_inproc.h.
void register_fork_handlers();

// Kernels registered by the generated sources, in registration order.
const std::vector<const KernelEntry*>& registry();
const KernelEntry* find_kernel(std::string_view host_name);
// Registration problems (a host name defined twice), empty when fine.
std::vector<std::string> registry_problems();

}  // namespace orchard_emu
