// pool.h — the two ways the launcher runs a dispatch (private to emu/).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "group.h"
#include "launcher.h"

namespace orchard_emu {

class Pool {
 public:
  virtual ~Pool() = default;
  // Runs every threadgroup of the dispatch; throws std::runtime_error with
  // the first (lowest group index) kernel error, or on a watchdog timeout.
  virtual void run(const KernelEntry& k, const Launch& l, metal::uint3 groups, metal::uint3 tpg) = 0;
  // Prepares for `groups` threadgroups of `threads` threads (Launcher::warm);
  // the caller holds the slot's run lock. Threads mode has nothing to prepare.
  virtual void warm(unsigned long long groups, unsigned threads) {
    (void)groups;
    (void)threads;
  }
  // True after a watchdog timeout left threads running: the pool can be
  // neither reused nor destroyed (the launcher leaks it).
  virtual bool poisoned() const = 0;
};

std::unique_ptr<Pool> make_fiber_pool(const LaunchOptions& o);
std::unique_ptr<Pool> make_thread_pool(const LaunchOptions& o);

// Linear group index -> position (x fastest).
inline metal::uint3 group_pos(unsigned long long g, metal::uint3 groups) {
  return metal::uint3(unsigned(g % groups.x), unsigned((g / groups.x) % groups.y),
                      unsigned(g / (static_cast<unsigned long long>(groups.x) * groups.y)));
}

}  // namespace orchard_emu
