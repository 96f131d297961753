// attn_api_metal.mm — attn_api.h's metal_forward / metal_backward (runtime
// side: Objective-C++ 20, ARC, no torch; macOS only, never compiled on Linux).
//
// The torch side (orchard_ops_mps.mm) calls these inside dispatch_sync on
// torch's MPS stream queue with the stream's compute encoder. Here the
// dispatch sequence of host/attn_run.h runs over a Backend that only
// encodes on that encoder: setComputePipelineState, setBuffer:offset:atIndex:
// (each tensor's own MTLBuffer at storage_offset * element_size, private or
// shared alike; contents is never read), setBytes, dispatchThreadgroups. It
// never ends the encoder, commits or waits: torch commits the command buffer
// later (pytorch.md, "MPS tensors and custom Metal kernels"). So a log
// line's dur_us is the encode time and gpu_us is 0: the work has not run yet.
//
// The kernels: orchard.metallib from $ORCHARD_METALLIB, else next to the op
// library (torch/CMakeLists.txt copies ORCHARD_METALLIB there).
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>
#include <dlfcn.h>

#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "attn_state.h"

namespace orchard {
namespace api {
namespace {

std::string str(NSString* s) { return s ? std::string([s UTF8String]) : std::string(); }
std::string describe(NSError* e) { return e ? str(e.localizedDescription) : "unknown error"; }

// The library and pipelines, per process (one MPS device: torch's).
struct MetalKernels {
  id<MTLDevice> device = nil;
  id<MTLLibrary> library = nil;
  std::map<std::string, id<MTLComputePipelineState>> pipelines;
};

MetalKernels& kernels_state() {
  static MetalKernels* k = new MetalKernels;  // never destroyed, as State
  return *k;
}

std::string library_path() {
  if (const char* p = std::getenv("ORCHARD_METALLIB"); p && *p) return p;
  Dl_info info{};
  if (dladdr(reinterpret_cast<const void*>(&library_path), &info) == 0 || !info.dli_fname) return "";
  std::string self = info.dli_fname;
  size_t slash = self.find_last_of('/');
  return (slash == std::string::npos ? std::string(".") : self.substr(0, slash)) + "/orchard.metallib";
}

// Encodes every dispatch on torch's encoder; allocates and copies nothing.
class EncoderBackend final : public Backend {
 public:
  EncoderBackend(MetalKernels& k, id<MTLComputeCommandEncoder> enc) : k_(k), enc_(enc) {}

  std::string name() const override { return "metal"; }
  std::string device() const override { return str(k_.device.name); }
  DeviceInfo device_info() const override {
    DeviceInfo d;
    d.name = device();
    d.max_threadgroup_memory = k_.device.maxThreadgroupMemoryLength;
    d.max_threads_per_threadgroup = k_.device.maxThreadsPerThreadgroup.width;
    d.unified_memory = k_.device.hasUnifiedMemory;
    return d;
  }
  TimeSource time_source() const override { return TimeSource::kGpu; }
  Limits limits() const override {
    return Limits{uint32_t(k_.device.maxThreadsPerThreadgroup.width), uint32_t(k_.device.maxThreadgroupMemoryLength),
                  32};
  }
  std::vector<std::string> kernels() const override {
    std::vector<std::string> out;
    for (NSString* n in k_.library.functionNames) out.push_back(str(n));
    return out;
  }
  void prepare(const std::vector<std::string>& names) override {
    for (const std::string& n : names) (void)pipeline(n);
  }
  Buffer alloc(size_t, const std::string& label, Storage, size_t) override {
    throw std::logic_error("orchard_ops (MPS): no buffer is allocated here ('" + label + "'): torch allocates them");
  }
  void copy(const Buffer& src, size_t, const Buffer& dst, size_t, size_t) override {
    throw std::logic_error("orchard_ops (MPS): no copy from '" + src.label + "' to '" + dst.label +
                           "' is encoded here");
  }
  double dispatch(const std::string& kernel, Dim3 g, Dim3 t, const std::vector<Arg>& args) override {
    id<MTLComputePipelineState> pso = pipeline(kernel);
    if (pso.threadExecutionWidth != 32)
      throw std::runtime_error("kernel " + kernel + ": simdgroup width " + std::to_string(pso.threadExecutionWidth) +
                               ", the kernels need 32");
    if (uint64_t(t.x) * t.y * t.z > pso.maxTotalThreadsPerThreadgroup)
      throw std::runtime_error("kernel " + kernel + ": " + std::to_string(uint64_t(t.x) * t.y * t.z) +
                               " threads per threadgroup, the pipeline allows " +
                               std::to_string(pso.maxTotalThreadsPerThreadgroup));
    [enc_ setComputePipelineState:pso];
    for (const Arg& a : args) {
      if (a.kind == Arg::kBuffer) {
        // impl holds the tensor's id<MTLBuffer> (unretained: the tensor owns it).
        id<MTLBuffer> b = a.buffer ? (__bridge id<MTLBuffer>)a.buffer->impl.get() : nil;
        if (b == nil) throw std::runtime_error("kernel " + kernel + ": [[buffer(" + std::to_string(a.index) +
                                               ")]] is bound to no MTLBuffer");
        [enc_ setBuffer:b offset:NSUInteger(a.buffer->offset) atIndex:NSUInteger(a.index)];
      } else {
        if (a.length == 0 || a.length >= 4096)
          throw std::runtime_error("kernel " + kernel + ": constant argument [[buffer(" + std::to_string(a.index) +
                                   ")]] is " + std::to_string(a.length) + " bytes; setBytes takes 1..4095");
        [enc_ setBytes:a.bytes length:a.length atIndex:NSUInteger(a.index)];
      }
    }
    [enc_ dispatchThreadgroups:MTLSizeMake(g.x, g.y, g.z) threadsPerThreadgroup:MTLSizeMake(t.x, t.y, t.z)];
    return 0;  // encoded only: torch's command buffer runs it later
  }

 private:
  id<MTLComputePipelineState> pipeline(const std::string& kernel) {
    auto it = k_.pipelines.find(kernel);
    if (it != k_.pipelines.end()) return it->second;
    id<MTLFunction> fn = [k_.library newFunctionWithName:[NSString stringWithUTF8String:kernel.c_str()]];
    if (fn == nil)
      throw std::runtime_error("kernel " + kernel + " is not in the Metal library " + library_path() +
                               "; rebuild it from metalkern/runtime/kernels (orchard rebuild)");
    NSError* err = nil;
    id<MTLComputePipelineState> pso = [k_.device newComputePipelineStateWithFunction:fn error:&err];
    if (pso == nil) throw std::runtime_error("cannot create the pipeline for kernel " + kernel + ": " + describe(err));
    k_.pipelines[kernel] = pso;
    return pso;
  }

  MetalKernels& k_;
  id<MTLComputeCommandEncoder> enc_;
};

// Loads the library on the stream's device once (st.mu held).
MetalKernels& metal_kernels(id<MTLDevice> device) {
  MetalKernels& k = kernels_state();
  if (k.device != nil && k.device != device) {  // another device: start over
    k.library = nil;
    k.pipelines.clear();
  }
  k.device = device;
  if (k.library == nil) {
    const std::string path = library_path();
    if (path.empty()) throw std::runtime_error("orchard_ops (MPS): cannot find orchard.metallib: set ORCHARD_METALLIB");
    NSError* err = nil;
    k.library = [device newLibraryWithURL:[NSURL fileURLWithPath:[NSString stringWithUTF8String:path.c_str()]]
                                    error:&err];
    if (k.library == nil)
      throw std::runtime_error("orchard_ops (MPS): cannot load the Metal library " + path + ": " + describe(err) +
                               " (build the op library with -DORCHARD_METALLIB=<orchard.metallib>, or set "
                               "ORCHARD_METALLIB)");
  }
  return k;
}

Buffer wrap(const MetalTensor& t, const char* label) {
  Buffer b;
  b.bytes = t.bytes;
  b.offset = t.offset;
  b.storage = t.private_storage ? Storage::kPrivate : Storage::kShared;
  b.label = label;
  b.impl = std::shared_ptr<void>(t.buffer, [](void*) {});  // not owned
  b.host = nullptr;  // never the host's: contents is not read, private or shared
  return b;
}

// storage= of the log lines: private when any tensor is.
Storage storage_of(std::initializer_list<const MetalTensor*> ts) {
  for (const MetalTensor* t : ts)
    if (t->private_storage) return Storage::kPrivate;
  return Storage::kShared;
}

}  // namespace

void metal_forward(const MetalStream& s, const Problem& p, const MetalFwd& t) {
  State& st = state();
  std::lock_guard<std::mutex> lk(st.mu);
  load_settings(st);
  Selection sel;
  const AttnShape shape = checked_shape(p, &sel);
  EncoderBackend be(metal_kernels((__bridge id<MTLDevice>)s.device), (__bridge id<MTLComputeCommandEncoder>)s.encoder);
  RunLog& log = run_log(st, "metal");
  AttnSession ses(be, log, shape, sel, attn_params(shape, p.scale), storage_of({&t.q, &t.k, &t.v, &t.o, &t.lse}), 0);
  ses.set_poison(false);
  ses.set_group_cap(st.set.group_cap);
  run_logged(log, ses, [&] {
    ses.prepare_forward();
    Buffer q = wrap(t.q, "q"), k = wrap(t.k, "k"), v = wrap(t.v, "v"), o = wrap(t.o, "o"), lse = wrap(t.lse, "lse");
    ses.forward({q, k, v, o, lse});
  });
}

void metal_backward(const MetalStream& s, const Problem& p, const MetalBwd& t) {
  State& st = state();
  std::lock_guard<std::mutex> lk(st.mu);
  load_settings(st);
  Selection sel;
  const AttnShape shape = checked_shape(p, &sel);
  EncoderBackend be(metal_kernels((__bridge id<MTLDevice>)s.device), (__bridge id<MTLComputeCommandEncoder>)s.encoder);
  RunLog& log = run_log(st, "metal");
  const Storage storage = storage_of({&t.q, &t.k, &t.v, &t.o, &t.lse, &t.dout, &t.delta, &t.dq, &t.dk, &t.dv});
  AttnSession ses(be, log, shape, sel, attn_params(shape, p.scale), storage, 0);
  ses.set_poison(false);
  ses.set_group_cap(st.set.group_cap);
  run_logged(log, ses, [&] {
    ses.prepare_backward();
    Buffer q = wrap(t.q, "q"), k = wrap(t.k, "k"), v = wrap(t.v, "v"), o = wrap(t.o, "o"), lse = wrap(t.lse, "lse"),
           dout = wrap(t.dout, "do"), delta = wrap(t.delta, "delta"), dq = wrap(t.dq, "dq"), dk = wrap(t.dk, "dk"),
           dv = wrap(t.dv, "dv");
    ses.backward({q, k, v, o, lse, dout, delta, dq, dk, dv});
  });
}

}  // namespace api
}  // namespace orchard
