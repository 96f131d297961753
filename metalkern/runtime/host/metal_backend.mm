// metal_backend.mm — orchard::Backend on a real Metal device (Objective-C++, ARC).
//
// Build with -fobjc-arc and link -framework Metal -framework Foundation. This
// file cannot be compiled on Linux; it is kept thin: load the .metallib, one
// pipeline per kernel (cached), shared or private buffers bound at their
// offset (private ones reached only through blit copies), params via
// setBytes, one command buffer per dispatch, checked.
// Errors are collected as strings inside @autoreleasepool blocks and thrown
// after the pool has drained (C++ exceptions must not unwind through a pool).
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include <algorithm>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend.h"

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
  Limits limits() const override { return limits_; }

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

  void dispatch(const std::string& kernel, Dim3 groups, Dim3 threads,
                const std::vector<Arg>& args) override {
    std::string error;
    @autoreleasepool {
      error = run(kernel, groups, threads, args);
    }
    if (!error.empty()) throw std::runtime_error(error);
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

  // Opens the device and library; returns an error message or "".
  std::string open(const BackendOptions& opts) {
    device_ = MTLCreateSystemDefaultDevice();
    if (device_ == nil) {
      return "no Metal device (MTLCreateSystemDefaultDevice returned nil); run on an "
             "Apple-silicon Mac, or use the emu runner";
    }
    device_name_ = str(device_.name);
    if ([device_.name containsString:@"Paravirtual"]) {
      return "Metal device \"" + device_name_ +
             "\" is a paravirtual GPU (e.g. a GitHub-hosted macOS runner) without simdgroup "
             "matrix support; run the Metal stages on an Apple-silicon Mac, or use the emu runner";
    }
    if (![device_ supportsFamily:MTLGPUFamilyApple7]) {
      return "Metal device \"" + device_name_ +
             "\" does not support MTLGPUFamilyApple7 (simdgroup_matrix); the kernels need an "
             "M1/A14 GPU or newer";
    }
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

  std::string run(const std::string& kernel, Dim3 g, Dim3 t, const std::vector<Arg>& args) {
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

    id<MTLCommandBuffer> cb = [queue_ commandBuffer];
    if (cb == nil) return "kernel " + kernel + ": cannot create a command buffer";
    id<MTLComputeCommandEncoder> enc = [cb computeCommandEncoder];
    if (enc == nil) return "kernel " + kernel + ": cannot create a compute encoder";
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
      return "kernel " + kernel + " failed: command buffer status " + status_name(cb.status) +
             " (" + std::to_string(int(cb.status)) + "): " + describe(cb.error);
    }
    return "";
  }

  id<MTLDevice> device_ = nil;
  id<MTLLibrary> library_ = nil;
  id<MTLCommandQueue> queue_ = nil;
  std::string device_name_;
  Limits limits_;
  std::map<std::string, id<MTLComputePipelineState>> pipelines_;
};

}  // namespace

std::unique_ptr<Backend> make_backend(const BackendOptions& opts) {
  return std::make_unique<MetalBackend>(opts);
}

}  // namespace orchard
