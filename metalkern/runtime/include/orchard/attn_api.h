// attn_api.h — the torch-free interface between the op library's torch code
// (torch/orchard_ops.cpp, torch/orchard_ops_mps.mm: C++17, torch headers) and
// the runtime (C++20: host/attn_run.h, the backends). Plain C++17, standard
// headers only; neither side sees the other's headers. Every function throws
// std::runtime_error (torch turns it into a Python RuntimeError) with a
// message for people; the torch side has already checked shapes, dtypes and
// devices, so an error here is a kernel or runtime failure (or a log that
// could not be written).
#pragma once

#include <cstddef>
#include <string>

namespace orchard {
namespace api {

enum class DType { kF32, kF16 };

// One attention problem. Tensors are contiguous row-major [B, H, N, D]
// (q, o, dout, dq: N = Nq; k, v, dk, dv: N = Nk) in dtype; lse and delta are
// [B, H, Nq] float32 (natural log, params.h's conventions).
struct Problem {
  int B = 0, H = 0, Nq = 0, Nk = 0, D = 0;
  DType dtype = DType::kF32;
  bool causal = false;  // top-left aligned, as PyTorch's is_causal
  double scale = 0;     // softmax scale, natural domain (the caller resolves a default)
};

// "" when the kernels support p, else why not (the supported head dims).
std::string unsupported(const Problem& p);

// ---- CPU: the emu backend in this process --------------------------------

// A CPU tensor's memory: `bytes` bytes at data, owned by the caller.
struct HostTensor {
  void* data = nullptr;
  std::size_t bytes = 0;
};

struct HostFwd {
  HostTensor q, k, v, o, lse;
};
struct HostBwd {
  HostTensor q, k, v, o, lse, dout, delta, dq, dk, dv;  // delta: scratch, [B, H, Nq] float32
};

// Runs the forward pass (o, lse written) / the backward passes (delta, dq,
// dk, dv written) on the process-wide emu backend, made on first use with the
// current settings. Calls from several threads are serialized (one emu pool
// runs one dispatch at a time); a fork()ed child makes a backend of its own.
void cpu_forward(const Problem& p, const HostFwd& t);
void cpu_backward(const Problem& p, const HostBwd& t);

// ---- settings (orchard_ops.configure) ------------------------------------
//
// key          value                         default (read at first use)
// mode         fibers | threads              $ORCHARD_EMU_MODE, else fibers
// workers      0..4096 (0: every core)       $ORCHARD_EMU_WORKERS, else 0
// watchdog     seconds, 1..86400             $ORCHARD_EMU_WATCHDOG_SECONDS, else 20
// kernel_log   a path ("" = the default)     $ORCHARD_KERNEL_LOG, else
//              <cache dir>/orchard/<emu|metal>/logs/flashattn_kernel_calls.log
// debug        0 | 1 (the kernel-call log)   $ORCHARD_DEBUG_FLASH_ATN == "1"
// A change takes effect at the next call (the backend and the log are made
// again). An unknown key or a bad value throws std::invalid_argument naming it.
void configure(const std::string& key, const std::string& value);
// The settings in effect, one "key=value" a line (env read on first use).
std::string settings();
// The kernel-call log's path for a backend ("emu" or "metal").
std::string kernel_log_path(const std::string& backend);

// ---- Metal (macOS only: torch/attn_api_metal.mm) -------------------------

// An MPS tensor's buffer: id<MTLBuffer> (unretained; the tensor owns it)
// bound at `offset` bytes (storage_offset() * element_size()).
struct MetalTensor {
  void* buffer = nullptr;
  std::size_t offset = 0;
  std::size_t bytes = 0;
  bool private_storage = false;  // MTLStorageModePrivate (for the log's storage=)
};

struct MetalFwd {
  MetalTensor q, k, v, o, lse;
};
struct MetalBwd {
  MetalTensor q, k, v, o, lse, dout, delta, dq, dk, dv;
};

// Torch's current MPS stream, as the torch side found it: the device and the
// compute encoder it returned (id<MTLDevice>, id<MTLComputeCommandEncoder>,
// unretained). The calls below run on the stream's queue (the torch side's
// dispatch_sync) and only encode: they never end the encoder, commit or wait.
struct MetalStream {
  void* device = nullptr;
  void* encoder = nullptr;
};

void metal_forward(const MetalStream& s, const Problem& p, const MetalFwd& t);
void metal_backward(const MetalStream& s, const Problem& p, const MetalBwd& t);

}  // namespace api
}  // namespace orchard
