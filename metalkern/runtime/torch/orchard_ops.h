// orchard_ops.h — checks shared by the op library's torch units
// (orchard_ops.cpp, orchard_ops_mps.mm). C++17, torch headers.
#pragma once

#include <ATen/ATen.h>

#include "orchard/attn_api.h"

namespace orchard_torch {

// Checks q, k, v and the scale for op (a c10 error naming the argument, what
// it got and what is supported) and returns the problem they describe.
orchard::api::Problem check_inputs(const char* op, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                   bool causal, double scale);
// Checks the backward pass's extra inputs against q.
void check_bwd_inputs(const at::Tensor& q, const at::Tensor& o, const at::Tensor& lse, const at::Tensor& dout);

// One call's checked inputs, made contiguous, and its outputs, allocated like
// q (lse and delta: float32 [B, H, Nq]): what the CPU and the MPS ops share.
struct FwdCall {
  orchard::api::Problem p;
  at::Tensor q, k, v, o, lse;
};
FwdCall fwd_call(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal, double scale);
struct BwdCall {
  orchard::api::Problem p;
  at::Tensor q, k, v, o, lse, dout, delta, dq, dk, dv;
};
BwdCall bwd_call(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& o,
                 const at::Tensor& lse, const at::Tensor& dout, bool causal, double scale);

}  // namespace orchard_torch
