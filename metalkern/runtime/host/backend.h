// backend.h — the one interface both runner backends implement.
//
// The runner's main (runner.cpp) parses the command line and reads and writes
// .npy files; the dispatch sequence (attn_run.h, shared with the op library
// in torch/) chooses kernels and block sizes; both talk to the GPU (or the
// CPU emulation) only through this interface. emu_backend.cpp implements it
// with the emu launcher; metal_backend.mm implements it with Metal (and the
// op library's torch/attn_api_metal.mm with torch's MPS encoder).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
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

// Where a buffer's memory lives (MTLStorageMode). Shared: the host reads and
// writes it through Buffer::data(). Private: GPU-only, no host pointer on
// either backend (on Metal `contents` is NULL; emu keeps the memory inside
// the backend's handle); the host reaches it only through Backend::copy,
// which upload() and download() below do through a shared staging buffer.
enum class Storage { kShared, kPrivate };

inline const char* storage_name(Storage s) { return s == Storage::kPrivate ? "private" : "shared"; }

// Offsets and sizes of Backend::copy must be multiples of this (Metal on
// macOS: copyFromBuffer's offsets and size), and so must Buffer::offset.
// Every allocation is padded so that a tensor's bytes rounded up to it fit.
constexpr size_t kCopyAlign = 4;

inline size_t copy_span(size_t bytes) { return (bytes + kCopyAlign - 1) / kCopyAlign * kCopyAlign; }

// A tensor's buffer: `bytes` bytes starting `offset` bytes into a backend
// allocation (kernels see the buffer at its offset, as Metal's
// setBuffer:offset:atIndex: binds it; PyTorch tensors arrive that way).
struct Buffer {
  size_t bytes = 0;
  size_t offset = 0;
  Storage storage = Storage::kShared;
  std::string label;
  std::shared_ptr<void> impl;  // backend-private handle (owns the allocation)
  void* host = nullptr;        // shared storage only: the bytes at offset; null for private

  // The host's view of the bytes. Throws std::logic_error for a private
  // buffer: host code must go through upload()/download().
  void* data() const {
    if (storage != Storage::kShared || host == nullptr)
      throw std::logic_error("buffer '" + label + "' is in " + storage_name(storage) +
                             " storage: the host cannot read or write it directly; use upload()/download() "
                             "(a shared staging buffer and Backend::copy)");
    return host;
  }
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
  double watchdog_seconds = 0;  // emu only: 0 = $ORCHARD_EMU_WATCHDOG_SECONDS, else 20
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
  // A buffer of `bytes` bytes at `offset` (a multiple of kCopyAlign) into an
  // allocation of at least offset + copy_span(bytes) bytes. Shared buffers
  // start zeroed; a private buffer's contents are undefined until written
  // (emu fills them with 0xFF bytes, NaN, so that nothing relies on zeros).
  virtual Buffer alloc(size_t bytes, const std::string& label, Storage storage = Storage::kShared,
                       size_t offset = 0) = 0;
  // Copies `bytes` from src (starting src_off bytes into it) to dst (dst_off
  // bytes into it), to completion; offsets are from each buffer's own offset,
  // all three multiples of kCopyAlign, and each range within
  // copy_span(buffer.bytes). Works for any mix of storage modes (a blit on
  // Metal). Throws std::runtime_error naming both buffers on bad arguments.
  virtual void copy(const Buffer& src, size_t src_off, const Buffer& dst, size_t dst_off, size_t bytes) = 0;
  // A shared buffer over `bytes` bytes of host memory the caller owns and
  // keeps alive while the buffer is used (the op library: a CPU tensor's
  // data). Kernels see the memory at p; copy() must stay within `bytes`.
  // Only emu can: on Metal host memory is not a device buffer (the op binds
  // an MPS tensor's own MTLBuffer instead).
  virtual Buffer wrap_host(void* p, size_t bytes, const std::string& label) {
    (void)p;
    (void)bytes;
    throw std::runtime_error(name() + ": cannot wrap host memory as buffer '" + label + "'");
  }
  // Runs one dispatch to completion (one command buffer on Metal) and returns
  // its device time in seconds (see time_source()). Throws std::runtime_error
  // with a message that names the kernel (and, for emu, the threads involved)
  // on failure.
  virtual double dispatch(const std::string& kernel, Dim3 groups, Dim3 threads_per_group,
                          const std::vector<Arg>& args) = 0;
};

// Checks copy()'s arguments (both backends): throws std::runtime_error.
inline void check_copy(const Buffer& src, size_t src_off, const Buffer& dst, size_t dst_off, size_t bytes) {
  auto what = [&] {
    return "copy of " + std::to_string(bytes) + " bytes from '" + src.label + "'+" + std::to_string(src_off) +
           " to '" + dst.label + "'+" + std::to_string(dst_off);
  };
  if (src_off % kCopyAlign || dst_off % kCopyAlign || bytes % kCopyAlign)
    throw std::runtime_error(what() + ": offsets and size must be multiples of " + std::to_string(kCopyAlign) +
                             " (Metal's blit copy on macOS)");
  if (src_off > copy_span(src.bytes) || bytes > copy_span(src.bytes) - src_off || dst_off > copy_span(dst.bytes) ||
      bytes > copy_span(dst.bytes) - dst_off)
    throw std::runtime_error(what() + ": out of range ('" + src.label + "' has " + std::to_string(src.bytes) +
                             " bytes, '" + dst.label + "' " + std::to_string(dst.bytes) + ")");
}

// Writes the whole of dst (dst.bytes bytes from src): directly for shared
// storage, else through a shared staging buffer and Backend::copy (of the
// rounded span: the bytes past dst.bytes are the allocation's padding).
inline void upload(Backend& be, const Buffer& dst, const void* src) {
  if (dst.bytes == 0) return;
  if (dst.storage == Storage::kShared) {
    std::memcpy(dst.data(), src, dst.bytes);
    return;
  }
  Buffer staging = be.alloc(dst.bytes, dst.label + ".staging", Storage::kShared, 0);
  std::memcpy(staging.data(), src, dst.bytes);
  be.copy(staging, 0, dst, 0, copy_span(dst.bytes));
}

// Reads the whole of src (src.bytes bytes into dst): directly for shared
// storage, else through Backend::copy into a shared staging buffer.
inline void download(Backend& be, const Buffer& src, void* dst) {
  if (src.bytes == 0) return;
  if (src.storage == Storage::kShared) {
    std::memcpy(dst, src.data(), src.bytes);
    return;
  }
  Buffer staging = be.alloc(src.bytes, src.label + ".staging", Storage::kShared, 0);
  be.copy(src, 0, staging, 0, copy_span(src.bytes));
  std::memcpy(dst, staging.data(), src.bytes);
}

// Defined by exactly one of emu_backend.cpp / metal_backend.mm.
std::unique_ptr<Backend> make_backend(const BackendOptions& opts);

}  // namespace orchard
