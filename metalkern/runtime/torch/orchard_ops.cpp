// orchard_ops.cpp — the op library's torch side (C++17, torch headers; the
// runtime is reached only through include/orchard/attn_api.h).
//
//   orchard::flash_attn_fwd(q, k, v, causal, scale) -> (o, lse)
//   orchard::flash_attn_bwd(q, k, v, o, lse, dout, causal, scale) -> (dq, dk, dv)
//   orchard::configure(key, value) -> ()     orchard::settings() -> str
//
// q, o, dout: [B, H, Nq, D]; k, v: [B, H, Nk, D]; one dtype (float32 or
// float16), one device; lse: [B, H, Nq] float32. Inputs that are not
// contiguous are copied (contiguous()); outputs are new contiguous tensors.
// The CPU implementation runs the kernels on the emu backend in this process;
// the MPS one (orchard_ops_mps.mm, macOS) encodes them on torch's stream.
// The Python package (python/orchard_ops) checks every argument first and
// raises ValueError/TypeError; the checks here repeat the essentials for
// callers of torch.ops.orchard.* (c10 errors: RuntimeError, ValueError,
// TypeError in Python).
#include "orchard_ops.h"

#include <torch/library.h>

#include <cmath>
#include <string>
#include <tuple>

namespace orchard_torch {

namespace api = orchard::api;

api::Problem check_inputs(const char* op, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          bool causal, double scale) {
  const at::Tensor* ts[] = {&q, &k, &v};
  const char* names[] = {"q", "k", "v"};
  for (int i = 0; i < 3; ++i) {
    const at::Tensor& t = *ts[i];
    TORCH_CHECK_VALUE(t.dim() == 4, op, ": ", names[i], " must be 4-D [B, H, N, D], got shape ", t.sizes());
    TORCH_CHECK_TYPE(t.scalar_type() == at::kFloat || t.scalar_type() == at::kHalf, op, ": ", names[i],
                     " has dtype ", t.scalar_type(), ": supported are float32 and float16");
    TORCH_CHECK_TYPE(t.scalar_type() == q.scalar_type(), op, ": ", names[i], " has dtype ", t.scalar_type(),
                     " but q has ", q.scalar_type(), ": q, k and v must share one dtype");
    TORCH_CHECK_VALUE(t.device() == q.device(), op, ": ", names[i], " is on ", t.device(), " but q is on ",
                      q.device(), ": q, k and v must be on one device");
    for (int64_t d : t.sizes())
      TORCH_CHECK_VALUE(d >= 1, op, ": ", names[i], " has shape ", t.sizes(), ": every dimension must be >= 1");
    TORCH_CHECK_VALUE(t.numel() <= INT32_MAX, op, ": ", names[i], " has ", t.numel(),
                      " elements: the kernels index with 32 bits (at most 2147483647)");
  }
  TORCH_CHECK_VALUE(k.size(0) == q.size(0) && k.size(1) == q.size(1) && k.size(3) == q.size(3), op,
                    ": k has shape ", k.sizes(), ", q ", q.sizes(), ": B, H and D must match");
  TORCH_CHECK_VALUE(v.sizes() == k.sizes(), op, ": v has shape ", v.sizes(), ", k ", k.sizes(),
                    ": they must be equal");
  TORCH_CHECK_VALUE(std::isfinite(scale) && std::isfinite(float(scale)), op, ": scale=", scale,
                    " must be a finite float32 number");
  api::Problem p;
  p.B = int(q.size(0));
  p.H = int(q.size(1));
  p.Nq = int(q.size(2));
  p.Nk = int(k.size(2));
  p.D = int(q.size(3));
  p.dtype = q.scalar_type() == at::kFloat ? api::DType::kF32 : api::DType::kF16;
  p.causal = causal;
  p.scale = scale;
  const std::string why = api::unsupported(p);
  TORCH_CHECK_VALUE(why.empty(), op, ": ", why);
  return p;
}

void check_like(const char* op, const char* name, const at::Tensor& t, const at::Tensor& q,
                at::IntArrayRef sizes, at::ScalarType dtype) {
  TORCH_CHECK_VALUE(t.sizes() == sizes, op, ": ", name, " has shape ", t.sizes(), ", want ", sizes);
  TORCH_CHECK_TYPE(t.scalar_type() == dtype, op, ": ", name, " has dtype ", t.scalar_type(), ", want ", dtype);
  TORCH_CHECK_VALUE(t.device() == q.device(), op, ": ", name, " is on ", t.device(), " but q is on ", q.device(),
                    ": every tensor must be on one device");
}

void check_bwd_inputs(const at::Tensor& q, const at::Tensor& o, const at::Tensor& lse, const at::Tensor& dout) {
  const char* op = "orchard::flash_attn_bwd";
  check_like(op, "o", o, q, q.sizes(), q.scalar_type());
  check_like(op, "dout", dout, q, q.sizes(), q.scalar_type());
  check_like(op, "lse", lse, q, {q.size(0), q.size(1), q.size(2)}, at::kFloat);
}

FwdCall fwd_call(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal, double scale) {
  FwdCall c;
  c.p = check_inputs("orchard::flash_attn_fwd", q, k, v, causal, scale);
  c.q = q.contiguous();
  c.k = k.contiguous();
  c.v = v.contiguous();
  c.o = at::empty(c.q.sizes(), c.q.options());
  c.lse = at::empty({c.p.B, c.p.H, c.p.Nq}, c.q.options().dtype(at::kFloat));
  return c;
}

BwdCall bwd_call(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& o,
                 const at::Tensor& lse, const at::Tensor& dout, bool causal, double scale) {
  BwdCall c;
  c.p = check_inputs("orchard::flash_attn_bwd", q, k, v, causal, scale);
  check_bwd_inputs(q, o, lse, dout);
  c.q = q.contiguous();
  c.k = k.contiguous();
  c.v = v.contiguous();
  c.o = o.contiguous();
  c.lse = lse.contiguous();
  c.dout = dout.contiguous();
  c.delta = at::empty({c.p.B, c.p.H, c.p.Nq}, c.q.options().dtype(at::kFloat));
  c.dq = at::empty(c.q.sizes(), c.q.options());
  c.dk = at::empty(c.k.sizes(), c.k.options());
  c.dv = at::empty(c.v.sizes(), c.v.options());
  return c;
}

namespace {

api::HostTensor host(const at::Tensor& t) {
  TORCH_INTERNAL_ASSERT(t.is_contiguous() && t.device().is_cpu());
  return api::HostTensor{t.data_ptr(), size_t(t.numel()) * t.element_size()};
}

std::tuple<at::Tensor, at::Tensor> fwd_cpu(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           bool causal, double scale) {
  FwdCall c = fwd_call(q, k, v, causal, scale);
  api::cpu_forward(c.p, {host(c.q), host(c.k), host(c.v), host(c.o), host(c.lse)});
  return {c.o, c.lse};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> bwd_cpu(const at::Tensor& q, const at::Tensor& k,
                                                       const at::Tensor& v, const at::Tensor& o,
                                                       const at::Tensor& lse, const at::Tensor& dout,
                                                       bool causal, double scale) {
  BwdCall c = bwd_call(q, k, v, o, lse, dout, causal, scale);
  api::cpu_backward(c.p, {host(c.q), host(c.k), host(c.v), host(c.o), host(c.lse), host(c.dout), host(c.delta),
                          host(c.dq), host(c.dk), host(c.dv)});
  return {c.dq, c.dk, c.dv};
}

void configure(const std::string& key, const std::string& value) {
  try {
    api::configure(key, value);
  } catch (const std::invalid_argument& e) {
    TORCH_CHECK_VALUE(false, "orchard_ops.configure: ", e.what());
  }
}

std::string settings() { return api::settings(); }

std::string kernel_log_path(const std::string& backend) {
  TORCH_CHECK_VALUE(backend == "emu" || backend == "metal", "orchard::kernel_log_path: backend '", backend,
                    "': want emu or metal");
  return api::kernel_log_path(backend);
}

}  // namespace
}  // namespace orchard_torch

TORCH_LIBRARY(orchard, m) {
  m.def("flash_attn_fwd(Tensor q, Tensor k, Tensor v, bool causal, float scale) -> (Tensor, Tensor)");
  m.def(
      "flash_attn_bwd(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dout, bool causal, "
      "float scale) -> (Tensor, Tensor, Tensor)");
  m.def("configure(str key, str value) -> ()", &orchard_torch::configure);
  m.def("settings() -> str", &orchard_torch::settings);
  m.def("kernel_log_path(str backend) -> str", &orchard_torch::kernel_log_path);
}

TORCH_LIBRARY_IMPL(orchard, CPU, m) {
  m.impl("flash_attn_fwd", &orchard_torch::fwd_cpu);
  m.impl("flash_attn_bwd", &orchard_torch::bwd_cpu);
}
