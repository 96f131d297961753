// metal_backend.mm — orchard::Backend on a real Metal device (Objective-C++, ARC).
//
// Build with -fobjc-arc and link -framework Metal -framework Foundation
// -framework CoreGraphics (Apple: command-line tools need CoreGraphics for a
// default device). This file cannot be compiled on Linux; it is kept thin:
// choose the device (device_pick.h over MTLCopyAllDevices), load the
// .metallib, one pipeline per kernel (made by prepare() before anything is
// timed), shared or private buffers bound at their offset (private ones
// reached only through blit copies), params via setBytes, one command buffer
// per dispatch (from a descriptor asking for encoder execution status),
// checked and timed with GPUStartTime/GPUEndTime.
// Errors are collected as strings inside @autoreleasepool blocks and thrown
// after the pool has drained (C++ exceptions must not unwind through a pool).
// docs/runtime.md lists what here only a Mac can prove.
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include <cstdlib>

#include <algorithm>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend.h"
#include "device_pick.h"

namespace orchard {
namespace {

std::string str(NSString* s) { return s ? std::string([s UTF8String]) : std::string(); }

std::string describe(NSError* err) {
  return err ? str(err.localizedDescription) : std::string("no error description");
}

const char* status_name(MTLCommandBufferStatus s) {
  switch (s) {
    case MTLCommandBufferStatusNotEnqueued: return "not enqueued";
    case MTLCommandBufferStatusEnqueued: return "enqueued";
    case MTLCommandBufferStatusCommitted: return "committed";
    case MTLCommandBufferStatusScheduled: return "scheduled";
    case MTLCommandBufferStatusCompleted: return "completed";
    case MTLCommandBufferStatusError: return "error";
  }
  return "unknown";
}

// MTLGPUFamilyMetal3/4 by value: older SDKs lack the constants (as ggml does).
constexpr MTLGPUFamily kFamilyMetal3 = MTLGPUFamily(5001);
constexpr MTLGPUFamily kFamilyMetal4 = MTLGPUFamily(5002);

// Highest MTLGPUFamilyAppleN (Apple1 = 1001) the device supports, 0 for none.
int apple_family(id<MTLDevice> dev) {
  for (int n = 12; n >= 1; --n) {
    if ([dev supportsFamily:MTLGPUFamily(1000 + n)]) return n;
  }
  return 0;
}

DeviceCandidate candidate(id<MTLDevice> dev) {
  DeviceCandidate c;
  c.name = str(dev.name);
  c.apple_family = apple_family(dev);
  c.paravirtual = is_paravirtual_name(c.name);
  return c;
}

// The macOS GPU watchdog's kill (kIOGPUCommandBufferCallbackErrorImpactingInteractivity)
// or a timeout: the message says so, and how to split further.
bool watchdog_error(NSError* err) {
  if (err == nil) return false;
  NSString* d = err.localizedDescription;
  if ([d rangeOfString:@"Impacting Interactivity" options:NSCaseInsensitiveSearch].location != NSNotFound ||
      [d rangeOfString:@"ImpactingInteractivity" options:NSCaseInsensitiveSearch].location != NSNotFound) {
    return true;
  }
  return [err.domain isEqualToString:MTLCommandBufferErrorDomain] &&
         err.code == MTLCommandBufferErrorTimeout;
}

// The encoder that faulted, from MTLCommandBufferEncoderInfoErrorKey (errorOptions
// = EncoderExecutionStatus): "; encoder <label>: faulted".
std::string encoder_status(NSError* err) {
  if (err == nil) return "";
  NSArray* infos = err.userInfo[MTLCommandBufferEncoderInfoErrorKey];
  std::string out;
  for (id<MTLCommandBufferEncoderInfo> info in infos) {
    const char* st = "unknown";
    switch (info.errorState) {
      case MTLCommandEncoderErrorStateUnknown: st = "unknown"; break;
      case MTLCommandEncoderErrorStateCompleted: st = "completed"; break;
      case MTLCommandEncoderErrorStateAffected: st = "affected"; break;
      case MTLCommandEncoderErrorStatePending: st = "pending"; break;
      case MTLCommandEncoderErrorStateFaulted: st = "faulted"; break;
    }
    out += "; encoder " + str(info.label) + ": " + st;
  }
  return out;
}

// Owns the Metal buffer behind an orchard::Buffer (ARC releases it with this struct).
struct MetalBuffer {
  id<MTLBuffer> buffer;
};

class MetalBackend final : public Backend {
 public:
  explicit MetalBackend(const BackendOptions& opts) {
    std::string error;
    @autoreleasepool {
      error = open(opts);
    }
    if (!error.empty()) throw std::runtime_error(error);
  }

  std::string name() const override { return "metal"; }
  std::string device() const override { return device_name_; }
  DeviceInfo device_info() const override { return info_; }
  TimeSource time_source() const override { return TimeSource::kGpu; }
  Limits limits() const override { return limits_; }

  void prepare(const std::vector<std::string>& kernels) override {
    if (!info_.problem.empty()) throw std::runtime_error(info_.problem);
    std::string error;
    @autoreleasepool {
      for (const std::string& k : kernels) {
        if (pipeline(k, &error) == nil) break;
      }
    }
    if (!error.empty()) throw std::runtime_error(error);
  }

  std::vector<std::string> kernels() const override {
    std::vector<std::string> out;
    @autoreleasepool {
      for (NSString* n in library_.functionNames) out.push_back(str(n));
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  // Shared buffers expose `contents` + offset to the host; private ones
  // (MTLResourceStorageModePrivate) have no host pointer (`contents` is NULL).
  Buffer alloc(size_t bytes, const std::string& label, Storage storage, size_t offset) override {
    Buffer b;
    std::string error;
    if (offset % kCopyAlign) {
      throw std::runtime_error("buffer " + label + " at offset " + std::to_string(offset) +
                               ": offsets must be multiples of " + std::to_string(kCopyAlign));
    }
    @autoreleasepool {
      const MTLResourceOptions mode = storage == Storage::kPrivate ? MTLResourceStorageModePrivate
                                                                   : MTLResourceStorageModeShared;
      id<MTLBuffer> mb = [device_ newBufferWithLength:std::max<size_t>(offset + copy_span(bytes), 16)
                                              options:mode];
      if (mb == nil) {
        error = "cannot allocate " + std::to_string(bytes) + " bytes (" + storage_name(storage) +
                ") for buffer " + label + " on " + device_name_;
      } else {
        mb.label = [NSString stringWithUTF8String:label.c_str()];
        if (storage == Storage::kShared) b.host = static_cast<char*>(mb.contents) + offset;
        b.bytes = bytes;
        b.offset = offset;
        b.storage = storage;
        b.label = label;
        auto* holder = new MetalBuffer{mb};
        b.impl = std::shared_ptr<void>(holder,
                                       [](void* p) { delete static_cast<MetalBuffer*>(p); });
      }
    }
    if (!error.empty()) throw std::runtime_error(error);
    return b;
  }

  void copy(const Buffer& src, size_t src_off, const Buffer& dst, size_t dst_off,
            size_t bytes) override {
    check_copy(src, src_off, dst, dst_off, bytes);
    std::string error;
    @autoreleasepool {
      error = blit(src, src_off, dst, dst_off, bytes);
    }
    if (!error.empty()) throw std::runtime_error(error);
  }

  double dispatch(const std::string& kernel, Dim3 groups, Dim3 threads,
                  const std::vector<Arg>& args) override {
    std::string error;
    double gpu_seconds = 0;
    @autoreleasepool {
      error = run(kernel, groups, threads, args, &gpu_seconds);
    }
    if (!error.empty()) throw std::runtime_error(error);
    return gpu_seconds;
  }

 private:
  // One blit command buffer with copyFromBuffer (offsets from each buffer's
  // offset), waited for; returns an error message or "".
  std::string blit(const Buffer& src, size_t src_off, const Buffer& dst, size_t dst_off,
                   size_t bytes) {
    auto* s = static_cast<MetalBuffer*>(src.impl.get());
    auto* d = static_cast<MetalBuffer*>(dst.impl.get());
    if (s == nullptr || s->buffer == nil || d == nullptr || d->buffer == nil) {
      return "copy from buffer " + src.label + " to " + dst.label +
             ": not buffers allocated by the Metal backend";
    }
    id<MTLCommandBuffer> cb = [queue_ commandBuffer];
    if (cb == nil) return "copy to buffer " + dst.label + ": cannot create a command buffer";
    id<MTLBlitCommandEncoder> enc = [cb blitCommandEncoder];
    if (enc == nil) return "copy to buffer " + dst.label + ": cannot create a blit encoder";
    [enc copyFromBuffer:s->buffer
           sourceOffset:NSUInteger(src.offset + src_off)
               toBuffer:d->buffer
      destinationOffset:NSUInteger(dst.offset + dst_off)
                   size:NSUInteger(bytes)];
    [enc endEncoding];
    [cb commit];
    [cb waitUntilCompleted];
    if (cb.status != MTLCommandBufferStatusCompleted) {
      return "copy from buffer " + src.label + " to " + dst.label +
             " failed: command buffer status " + status_name(cb.status) + " (" +
             std::to_string(int(cb.status)) + "): " + describe(cb.error);
    }
    return "";
  }

  // Chooses the device: --device, else $ORCHARD_METAL_DEVICE, else the first
  // non-paravirtual Apple7+ device MTLCopyAllDevices() lists, else the
  // default device. Returns an error message or "".
  std::string choose_device(const BackendOptions& opts) {
    std::string want = opts.device;
    const char* env = std::getenv("ORCHARD_METAL_DEVICE");
    if (want.empty() && env != nullptr) want = env;
    NSArray<id<MTLDevice>>* all = MTLCopyAllDevices();  // NS_RETURNS_RETAINED: ARC owns it
    std::vector<DeviceCandidate> cands;
    for (id<MTLDevice> d in all) {
      cands.push_back(candidate(d));
      info_.devices.push_back(cands.back().name);
    }
    std::string error;
    int i = pick_device(cands, want, &error);
    if (!error.empty()) return "Metal device (--device or ORCHARD_METAL_DEVICE): " + error;
    device_ = i >= 0 ? all[NSUInteger(i)] : MTLCreateSystemDefaultDevice();
    if (device_ == nil) {
      return "no Metal device (MTLCopyAllDevices listed " + device_list(cands) +
             " and MTLCreateSystemDefaultDevice returned nil); run on an Apple-silicon Mac, or "
             "use the emu runner";
    }
    return "";
  }

  // Opens the device and library; returns an error message or "". A device
  // the kernels cannot use (paravirtual, older than Apple7) still opens, so
  // `info` can report it; prepare() and dispatch refuse it with the reason.
  std::string open(const BackendOptions& opts) {
    if (std::string e = choose_device(opts); !e.empty()) return e;
    device_name_ = str(device_.name);
    DeviceCandidate c = candidate(device_);
    info_.name = device_name_;
    info_.gpu_family = c.apple_family > 0 ? "apple" + std::to_string(c.apple_family) : "";
    info_.metal_family = [device_ supportsFamily:kFamilyMetal4]   ? "metal4"
                         : [device_ supportsFamily:kFamilyMetal3] ? "metal3"
                                                                  : "";
    info_.max_threadgroup_memory = uint64_t(device_.maxThreadgroupMemoryLength);
    info_.max_threads_per_threadgroup = uint64_t(device_.maxThreadsPerThreadgroup.width);
    info_.recommended_working_set = uint64_t(device_.recommendedMaxWorkingSetSize);
    info_.unified_memory = device_.hasUnifiedMemory;
    info_.paravirtual = c.paravirtual;
    info_.problem = device_problem(c);
    // Default: orchard.metallib next to the runner executable (where CMake builds it).
    NSString* path = nil;
    if (!opts.library.empty()) {
      path = [NSString stringWithUTF8String:opts.library.c_str()];
    } else {
      NSString* exe = [[NSBundle mainBundle] executablePath];
      if (exe == nil) return "no Metal library given: pass --library PATH/orchard.metallib";
      path = [[exe stringByDeletingLastPathComponent]
          stringByAppendingPathComponent:@"orchard.metallib"];
    }
    NSError* err = nil;
    library_ = [device_ newLibraryWithURL:[NSURL fileURLWithPath:path] error:&err];
    if (library_ == nil) {  // check the nil return: a non-nil err may be only a warning
      return "cannot load Metal library " + str(path) + ": " + describe(err) +
             " (pass --library PATH/orchard.metallib)";
    }
    queue_ = [device_ newCommandQueue];
    if (queue_ == nil) return "cannot create a Metal command queue on " + device_name_;
    limits_.max_threads_per_threadgroup = uint32_t(device_.maxThreadsPerThreadgroup.width);
    limits_.max_threadgroup_memory = uint32_t(device_.maxThreadgroupMemoryLength);
    limits_.simd_width = 32;  // checked per pipeline (threadExecutionWidth) before dispatch
    return "";
  }

  // Returns the cached pipeline for kernel, or nil with *error set.
  id<MTLComputePipelineState> pipeline(const std::string& kernel, std::string* error) {
    auto it = pipelines_.find(kernel);
    if (it != pipelines_.end()) return it->second;
    NSString* fname = [NSString stringWithUTF8String:kernel.c_str()];
    id<MTLFunction> fn = [library_ newFunctionWithName:fname];
    if (fn == nil) {
      *error = "kernel " + kernel + " is not in the Metal library (" +
               std::to_string(library_.functionNames.count) +
               " functions); rebuild the .metallib from metalkern/runtime/kernels";
      return nil;
    }
    NSError* err = nil;
    id<MTLComputePipelineState> pso = [device_ newComputePipelineStateWithFunction:fn error:&err];
    if (pso == nil) {
      *error = "cannot create the pipeline for kernel " + kernel + ": " + describe(err);
      return nil;
    }
    if (pso.maxTotalThreadsPerThreadgroup == 0 || pso.threadExecutionWidth == 0) {
      *error = "kernel " + kernel + " is incompatible with " + device_name_ +
               " (pipeline reports 0 threads per threadgroup)";
      return nil;
    }
    pipelines_[kernel] = pso;
    return pso;
  }

  std::string run(const std::string& kernel, Dim3 g, Dim3 t, const std::vector<Arg>& args,
                  double* gpu_seconds) {
    if (!info_.problem.empty()) return info_.problem;
    std::string error;
    id<MTLComputePipelineState> pso = pipeline(kernel, &error);
    if (pso == nil) return error;
    const uint64_t nthreads = uint64_t(t.x) * t.y * t.z;
    if (nthreads == 0 || nthreads > pso.maxTotalThreadsPerThreadgroup) {
      return "kernel " + kernel + ": " + std::to_string(nthreads) +
             " threads per threadgroup, the pipeline allows 1.." +
             std::to_string(pso.maxTotalThreadsPerThreadgroup);
    }
    if (pso.threadExecutionWidth != 32) {
      return "kernel " + kernel + " needs 32-wide simdgroups, " + device_name_ + " runs " +
             std::to_string(pso.threadExecutionWidth);
    }
    if (pso.staticThreadgroupMemoryLength > device_.maxThreadgroupMemoryLength) {
      return "kernel " + kernel + " uses " + std::to_string(pso.staticThreadgroupMemoryLength) +
             " bytes of threadgroup memory, the device allows " +
             std::to_string(device_.maxThreadgroupMemoryLength);
    }
    if (g.x == 0 || g.y == 0 || g.z == 0) return "kernel " + kernel + ": empty grid";

    // Encoder execution status in the error (macOS 11+): which encoder faulted.
    MTLCommandBufferDescriptor* desc = [[MTLCommandBufferDescriptor alloc] init];
    desc.errorOptions = MTLCommandBufferErrorOptionEncoderExecutionStatus;
    id<MTLCommandBuffer> cb = [queue_ commandBufferWithDescriptor:desc];
    if (cb == nil) return "kernel " + kernel + ": cannot create a command buffer";
    cb.label = [NSString stringWithUTF8String:kernel.c_str()];
    id<MTLComputeCommandEncoder> enc = [cb computeCommandEncoder];
    if (enc == nil) return "kernel " + kernel + ": cannot create a compute encoder";
    enc.label = cb.label;
    [enc setComputePipelineState:pso];
    for (const Arg& a : args) {
      if (a.kind == Arg::kBuffer) {
        auto* mb = a.buffer ? static_cast<MetalBuffer*>(a.buffer->impl.get()) : nullptr;
        if (mb == nullptr || mb->buffer == nil) {
          [enc endEncoding];
          return "kernel " + kernel + ": argument [[buffer(" + std::to_string(a.index) +
                 ")]] is not a buffer allocated by the Metal backend";
        }
        // At the buffer's offset (a multiple of kCopyAlign; device T* needs sizeof(T) <= 4 here).
        [enc setBuffer:mb->buffer offset:NSUInteger(a.buffer->offset) atIndex:NSUInteger(a.index)];
      } else {
        if (a.length == 0 || a.length >= 4096) {
          [enc endEncoding];
          return "kernel " + kernel + ": constant argument [[buffer(" + std::to_string(a.index) +
                 ")]] is " + std::to_string(a.length) + " bytes; setBytes takes 1..4095";
        }
        [enc setBytes:a.bytes length:a.length atIndex:NSUInteger(a.index)];
      }
    }
    [enc dispatchThreadgroups:MTLSizeMake(g.x, g.y, g.z)
        threadsPerThreadgroup:MTLSizeMake(t.x, t.y, t.z)];
    [enc endEncoding];
    [cb commit];
    [cb waitUntilCompleted];
    if (cb.status != MTLCommandBufferStatusCompleted) {
      std::string msg = "kernel " + kernel + " failed: command buffer status " +
                        status_name(cb.status) + " (" + std::to_string(int(cb.status)) + "): " +
                        describe(cb.error) + encoder_status(cb.error);
      if (watchdog_error(cb.error)) {
        const uint64_t n = uint64_t(g.x) * g.y * g.z;
        msg = "kernel " + kernel + " was stopped by the macOS GPU watchdog (it held the GPU too "
              "long for a Mac with a display; " + std::to_string(n) + " threadgroups in this "
              "dispatch): " + describe(cb.error) + encoder_status(cb.error) +
              "; split it further with ORCHARD_DISPATCH_GROUPS=" +
              std::to_string(std::max<uint64_t>(1, n / 4)) + " (threadgroups per dispatch)";
      }
      return msg;
    }
    // Host time in seconds of the whole command buffer: one dispatch here.
    *gpu_seconds = cb.GPUEndTime - cb.GPUStartTime;
    return "";
  }

  id<MTLDevice> device_ = nil;
  id<MTLLibrary> library_ = nil;
  id<MTLCommandQueue> queue_ = nil;
  std::string device_name_;
  DeviceInfo info_;
  Limits limits_;
  std::map<std::string, id<MTLComputePipelineState>> pipelines_;
};

}  // namespace

std::unique_ptr<Backend> make_backend(const BackendOptions& opts) {
  return std::make_unique<MetalBackend>(opts);
}

}  // namespace orchard
