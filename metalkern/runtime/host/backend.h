// backend.h — the one interface both runner backends implement.
//
// The runner's main (runner.cpp) parses the command line, reads and writes
// .npy files, chooses kernels and block sizes, and talks to the GPU (or the
// CPU emulation) only through this interface. emu_backend.cpp implements it
// with the emu launcher; metal_backend.mm implements it with Metal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace orchard {

struct Dim3 {
  uint32_t x = 1, y = 1, z = 1;
};

// Limits the kernels must respect. On Metal they come from the device and
// the pipeline; emu enforces the same numbers as Apple GPUs (1024 threads
// and 32 KiB of threadgroup memory per threadgroup, 32-wide simdgroups).
struct Limits {
  uint32_t max_threads_per_threadgroup = 1024;
  uint32_t max_threadgroup_memory = 32768;
  uint32_t simd_width = 32;
};

// A buffer the host can read and write through `data` (shared storage).
struct Buffer {
  void* data = nullptr;
  size_t bytes = 0;
  std::string label;
  std::shared_ptr<void> impl;  // backend-private handle
};

// One kernel argument: a buffer bound at [[buffer(index)]], or small
// constant bytes (the params struct) bound at [[buffer(index)]].
struct Arg {
  enum Kind { kBuffer, kBytes } kind = kBuffer;
  int index = 0;
  const Buffer* buffer = nullptr;
  const void* bytes = nullptr;
  size_t length = 0;

  static Arg buf(int index, const Buffer& b) { return Arg{kBuffer, index, &b, nullptr, 0}; }
  static Arg raw(int index, const void* p, size_t n) { return Arg{kBytes, index, nullptr, p, n}; }
};

struct BackendOptions {
  std::string emu_mode;  // emu only: "fibers" (default) or "threads"
  int workers = 0;       // emu only: worker threads (0 = hardware concurrency)
  std::string library;   // metal only: path of the .metallib
  std::string device;    // --device: a substring of the device's name ("" = choose)
};

// What `info` reports about the device (docs/runtime.md). On emu the fields
// hold the emulation's values (name "cpu (...)", gpu_family "emu").
struct DeviceInfo {
  std::string name;                  // "Apple M3 Pro", "cpu (fibers, 2 workers)"
  std::string gpu_family;            // highest Apple family supported: "apple9"; emu: "emu"
  std::string metal_family;          // "metal4", "metal3" or "" (none); emu: ""
  uint64_t max_threadgroup_memory = 0;
  uint64_t max_threads_per_threadgroup = 0;
  uint64_t recommended_working_set = 0;  // bytes (emu: the host's physical memory)
  bool unified_memory = false;
  bool paravirtual = false;          // a VM's GPU (name contains "Paravirtual")
  std::string problem;               // why the kernels cannot run on it ("" when they can)
  std::vector<std::string> devices;  // every device found, in enumeration order
};

// Where a dispatch's device time comes from: the GPU's own timestamps
// (GPUEndTime - GPUStartTime of its command buffer) or the emulation's clock.
enum class TimeSource { kGpu, kEmu };
inline const char* time_source_name(TimeSource t) { return t == TimeSource::kGpu ? "gpu" : "emu"; }

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;    // "emu" or "metal"
  virtual std::string device() const = 0;  // e.g. "cpu (fibers, 2 workers)" or "Apple M3 Pro"
  virtual DeviceInfo device_info() const = 0;
  virtual TimeSource time_source() const = 0;
  virtual Limits limits() const = 0;
  virtual std::vector<std::string> kernels() const = 0;  // host names of available kernels
  // Makes everything the named kernels need before the first dispatch (Metal:
  // the pipelines; emu: looks them up), so no dispatch's time includes it.
  // Throws std::runtime_error naming a kernel that is missing or unusable.
  virtual void prepare(const std::vector<std::string>& kernels) = 0;
  virtual Buffer alloc(size_t bytes, const std::string& label) = 0;
  // Runs one dispatch to completion (one command buffer on Metal) and returns
  // its device time in seconds (see time_source()). Throws std::runtime_error
  // with a message that names the kernel (and, for emu, the threads involved)
  // on failure.
  virtual double dispatch(const std::string& kernel, Dim3 groups, Dim3 threads_per_group,
                          const std::vector<Arg>& args) = 0;
};

// Defined by exactly one of emu_backend.cpp / metal_backend.mm.
std::unique_ptr<Backend> make_backend(const BackendOptions& opts);

}  // namespace orchard
