// orchard_ops_mps.mm — the MPS implementations of orchard::flash_attn_fwd /
// flash_attn_bwd (torch side: Objective-C++ 17, torch headers, manual
// reference counting like torch's own .mm files; macOS only, never compiled
// on Linux — docs/runtime.md, "What only a Mac can prove").
//
// Per pytorch.md ("MPS tensors and custom Metal kernels"): each tensor's
// MTLBuffer is at::native::mps::getMTLBufferStorage(t), bound at
// t.storage_offset() * t.element_size() (so views work, and private storage
// needs no copy: contents is never touched); the kernels are encoded on
// torch's current MPS stream, inside dispatch_sync on its queue, with its
// commandEncoder(); nothing here ends the encoder, commits or waits (torch
// coalesces and commits later). The encoding itself is attn_api.h's
// metal_forward / metal_backward (torch/attn_api_metal.mm). Needs torch >= 2.0
// (MPSStream::commandEncoder).
#include <ATen/mps/MPSStream.h>
#include <ATen/native/mps/OperationUtils.h>
#include <torch/library.h>

#include <string>
#include <tuple>

#include "orchard_ops.h"

namespace orchard_torch {
namespace {

namespace api = orchard::api;

api::MetalTensor metal(const at::Tensor& t) {
  TORCH_INTERNAL_ASSERT(t.is_contiguous() && t.device().is_mps());
  id<MTLBuffer> buf = at::native::mps::getMTLBufferStorage(t);
  api::MetalTensor m;
  m.buffer = (void*)buf;
  m.offset = size_t(t.storage_offset()) * t.element_size();
  m.bytes = size_t(t.numel()) * t.element_size();
  m.private_storage = buf.storageMode == MTLStorageModePrivate;
  TORCH_CHECK(m.offset % 4 == 0, "orchard_ops (MPS): a tensor at byte offset ", m.offset,
              " in its buffer: the kernels need a multiple of 4 (orchard_ops.flash_attn copies such views)");
  return m;
}

// Runs encode(stream) inside dispatch_sync on torch's MPS queue; a C++
// exception is carried out of the block and raised here.
template <class F>
void on_torch_stream(F encode) {
  at::mps::MPSStream* stream = at::mps::getCurrentMPSStream();
  TORCH_CHECK(stream != nullptr, "orchard_ops (MPS): no current MPS stream");
  __block std::string error;
  dispatch_sync(stream->queue(), ^{
    @autoreleasepool {
      try {
        api::MetalStream s;
        s.device = (void*)stream->device();
        s.encoder = (void*)stream->commandEncoder();
        encode(s);
      } catch (const std::exception& e) {
        error = e.what();
      } catch (...) {
        error = "unknown error";
      }
    }
  });
  TORCH_CHECK(error.empty(), error);
}

std::tuple<at::Tensor, at::Tensor> fwd_mps(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           bool causal, double scale) {
  FwdCall c = fwd_call(q, k, v, causal, scale);
  api::MetalFwd t{metal(c.q), metal(c.k), metal(c.v), metal(c.o), metal(c.lse)};
  on_torch_stream([&](const api::MetalStream& s) { api::metal_forward(s, c.p, t); });
  return {c.o, c.lse};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> bwd_mps(const at::Tensor& q, const at::Tensor& k,
                                                       const at::Tensor& v, const at::Tensor& o,
                                                       const at::Tensor& lse, const at::Tensor& dout,
                                                       bool causal, double scale) {
  BwdCall c = bwd_call(q, k, v, o, lse, dout, causal, scale);
  api::MetalBwd t{metal(c.q),    metal(c.k),     metal(c.v),  metal(c.o),  metal(c.lse),
                  metal(c.dout), metal(c.delta), metal(c.dq), metal(c.dk), metal(c.dv)};
  on_torch_stream([&](const api::MetalStream& s) { api::metal_backward(s, c.p, t); });
  return {c.dq, c.dk, c.dv};
}

}  // namespace
}  // namespace orchard_torch

TORCH_LIBRARY_IMPL(orchard, MPS, m) {
  m.impl("flash_attn_fwd", &orchard_torch::fwd_mps);
  m.impl("flash_attn_bwd", &orchard_torch::bwd_mps);
}
