// attn_plain.metal — plain (non-flash) attention: the baseline of `orchard bench`.
//
// The textbook algorithm with the score matrix materialised in device memory,
// one thread per output element, no tiling and no threadgroup memory: what
// flash attention is measured against (runner --baseline plain,
// host/attn_plain.cpp). Same inputs, outputs and conventions as the flash
// kernels (orchard/params.h): O in the input dtype, LSE natural log float32.
// S and dS are float32 [B, H, Nq, Nk] scratch buffers.
// Forward:   1. attn_plain_scores:  S = scale * Q K^T (-inf where causal masks)
//            2. attn_plain_softmax: per row m = max S, l = sum exp(S - m),
//                                   P = exp(S - m) / l in place, LSE = m + log l
//            3. attn_plain_pv:      O = P V
// Backward (P kept from the forward):
//            4. attn_plain_delta:   Delta = rowsum(dO * O)
//            5. attn_plain_ds:      dS = P * (dO V^T - Delta)
//            6. attn_plain_dq:      dQ = scale * dS K
//            7. attn_plain_dkv:     dK = scale * dS^T Q, dV = P^T dO
// Every kernel runs 128 threads per threadgroup; grid (ceil(count / 128), H, B)
// where count is the elements one (b, h) has of the kernel's output.
#include <metal_stdlib>
using namespace metal;

#include "orchard/params.h"

static constant constexpr const int kPlainThreads = 128;

// The (b, h) of a threadgroup and the index of its thread's element, with
// the dispatch's grid offset added (the host may split a grid).
struct PlainAt {
  int bh;
  int idx;
};

inline PlainAt plain_at(constant orchard::AttnParams& p, uint3 tgid, uint tid) {
  PlainAt a;
  a.bh = (int(tgid.z) + p.group_z0) * p.H + int(tgid.y) + p.group_y0;
  a.idx = (int(tgid.x) + p.group_x0) * kPlainThreads + int(tid);
  return a;
}

template <typename T>
[[kernel]] void attn_plain_scores(const device T* q [[buffer(0)]], const device T* k [[buffer(1)]],
                                  device float* s [[buffer(2)]],
                                  constant orchard::AttnParams& p [[buffer(3)]],
                                  uint3 tgid [[threadgroup_position_in_grid]],
                                  uint tid [[thread_index_in_threadgroup]]) {
  const PlainAt a = plain_at(p, tgid, tid);
  if (a.idx >= p.Nq * p.Nk) {
    return;
  }
  const int i = a.idx / p.Nk;
  const int j = a.idx % p.Nk;
  float acc = -INFINITY;
  if (p.causal == 0 || j <= i) {
    const device T* qi = q + (a.bh * p.Nq + i) * p.D;
    const device T* kj = k + (a.bh * p.Nk + j) * p.D;
    acc = 0.0f;
    for (int d = 0; d < p.D; ++d) {
      acc += float(qi[d]) * float(kj[d]);
    }
    acc *= p.scale;
  }
  s[a.bh * p.Nq * p.Nk + a.idx] = acc;
}

// The same for both dtypes: S is float32.
[[kernel]] void attn_plain_softmax(device float* s [[buffer(0)]], device float* lse [[buffer(1)]],
                                   constant orchard::AttnParams& p [[buffer(2)]],
                                   uint3 tgid [[threadgroup_position_in_grid]],
                                   uint tid [[thread_index_in_threadgroup]]) {
  const PlainAt a = plain_at(p, tgid, tid);
  if (a.idx >= p.Nq) {
    return;
  }
  device float* row = s + (a.bh * p.Nq + a.idx) * p.Nk;
  float m = -INFINITY;
  for (int j = 0; j < p.Nk; ++j) {
    m = max(m, row[j]);
  }
  float l = 0.0f;
  if (m > -INFINITY) {
    for (int j = 0; j < p.Nk; ++j) {
      l += exp(row[j] - m);
    }
  }
  // A row that sees no key gets P = 0 and L = -inf, as the flash kernels do.
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  for (int j = 0; j < p.Nk; ++j) {
    row[j] = l > 0.0f ? exp(row[j] - m) * inv : 0.0f;
  }
  lse[a.bh * p.Nq + a.idx] = l > 0.0f ? m + log(l) : -INFINITY;
}

template <typename T>
[[kernel]] void attn_plain_pv(const device float* pm [[buffer(0)]], const device T* v [[buffer(1)]],
                              device T* o [[buffer(2)]],
                              constant orchard::AttnParams& p [[buffer(3)]],
                              uint3 tgid [[threadgroup_position_in_grid]],
                              uint tid [[thread_index_in_threadgroup]]) {
  const PlainAt a = plain_at(p, tgid, tid);
  if (a.idx >= p.Nq * p.D) {
    return;
  }
  const int i = a.idx / p.D;
  const int d = a.idx % p.D;
  const device float* row = pm + (a.bh * p.Nq + i) * p.Nk;
  const device T* vb = v + a.bh * p.Nk * p.D;
  float acc = 0.0f;
  for (int j = 0; j < p.Nk; ++j) {
    acc += row[j] * float(vb[j * p.D + d]);
  }
  o[a.bh * p.Nq * p.D + a.idx] = T(acc);
}

template <typename T>
[[kernel]] void attn_plain_delta(const device T* o [[buffer(0)]], const device T* dout [[buffer(1)]],
                                 device float* delta [[buffer(2)]],
                                 constant orchard::AttnParams& p [[buffer(3)]],
                                 uint3 tgid [[threadgroup_position_in_grid]],
                                 uint tid [[thread_index_in_threadgroup]]) {
  const PlainAt a = plain_at(p, tgid, tid);
  if (a.idx >= p.Nq) {
    return;
  }
  const int base = (a.bh * p.Nq + a.idx) * p.D;
  float acc = 0.0f;
  for (int d = 0; d < p.D; ++d) {
    acc += float(o[base + d]) * float(dout[base + d]);
  }
  delta[a.bh * p.Nq + a.idx] = acc;
}

template <typename T>
[[kernel]] void attn_plain_ds(const device float* pm [[buffer(0)]], const device T* v [[buffer(1)]],
                              const device T* dout [[buffer(2)]],
                              const device float* delta [[buffer(3)]], device float* ds [[buffer(4)]],
                              constant orchard::AttnParams& p [[buffer(5)]],
                              uint3 tgid [[threadgroup_position_in_grid]],
                              uint tid [[thread_index_in_threadgroup]]) {
  const PlainAt a = plain_at(p, tgid, tid);
  if (a.idx >= p.Nq * p.Nk) {
    return;
  }
  const int i = a.idx / p.Nk;
  const int j = a.idx % p.Nk;
  const int at = a.bh * p.Nq * p.Nk + a.idx;
  const float pij = pm[at];
  float g = 0.0f;
  if (pij != 0.0f) {  // masked entries have P = 0 and so dS = 0
    const device T* doi = dout + (a.bh * p.Nq + i) * p.D;
    const device T* vj = v + (a.bh * p.Nk + j) * p.D;
    float dp = 0.0f;
    for (int d = 0; d < p.D; ++d) {
      dp += float(doi[d]) * float(vj[d]);
    }
    g = pij * (dp - delta[a.bh * p.Nq + i]);
  }
  ds[at] = g;
}

template <typename T>
[[kernel]] void attn_plain_dq(const device float* ds [[buffer(0)]], const device T* k [[buffer(1)]],
                              device T* dq [[buffer(2)]],
                              constant orchard::AttnParams& p [[buffer(3)]],
                              uint3 tgid [[threadgroup_position_in_grid]],
                              uint tid [[thread_index_in_threadgroup]]) {
  const PlainAt a = plain_at(p, tgid, tid);
  if (a.idx >= p.Nq * p.D) {
    return;
  }
  const int i = a.idx / p.D;
  const int d = a.idx % p.D;
  const device float* row = ds + (a.bh * p.Nq + i) * p.Nk;
  const device T* kb = k + a.bh * p.Nk * p.D;
  float acc = 0.0f;
  for (int j = 0; j < p.Nk; ++j) {
    acc += row[j] * float(kb[j * p.D + d]);
  }
  dq[a.bh * p.Nq * p.D + a.idx] = T(acc * p.scale);
}

template <typename T>
[[kernel]] void attn_plain_dkv(const device float* pm [[buffer(0)]], const device float* ds [[buffer(1)]],
                               const device T* q [[buffer(2)]], const device T* dout [[buffer(3)]],
                               device T* dk [[buffer(4)]], device T* dv [[buffer(5)]],
                               constant orchard::AttnParams& p [[buffer(6)]],
                               uint3 tgid [[threadgroup_position_in_grid]],
                               uint tid [[thread_index_in_threadgroup]]) {
  const PlainAt a = plain_at(p, tgid, tid);
  if (a.idx >= p.Nk * p.D) {
    return;
  }
  const int j = a.idx / p.D;
  const int d = a.idx % p.D;
  const device float* pc = pm + a.bh * p.Nq * p.Nk + j;  // column j, stride Nk
  const device float* dsc = ds + a.bh * p.Nq * p.Nk + j;
  const device T* qb = q + a.bh * p.Nq * p.D;
  const device T* dob = dout + a.bh * p.Nq * p.D;
  float gk = 0.0f;
  float gv = 0.0f;
  for (int i = 0; i < p.Nq; ++i) {
    gk += dsc[i * p.Nk] * float(qb[i * p.D + d]);
    gv += pc[i * p.Nk] * float(dob[i * p.D + d]);
  }
  dk[a.bh * p.Nk * p.D + a.idx] = T(gk * p.scale);
  dv[a.bh * p.Nk * p.D + a.idx] = T(gv);
}

// Instantiations: one per dtype (host/attn_plain.cpp builds the names).
template [[host_name("attn_plain_scores_f32")]] [[kernel]] void attn_plain_scores<float>(const device float* q [[buffer(0)]], const device float* k [[buffer(1)]], device float* s [[buffer(2)]], constant orchard::AttnParams& p [[buffer(3)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]);
template [[host_name("attn_plain_scores_f16")]] [[kernel]] void attn_plain_scores<half>(const device half* q [[buffer(0)]], const device half* k [[buffer(1)]], device float* s [[buffer(2)]], constant orchard::AttnParams& p [[buffer(3)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]);
template [[host_name("attn_plain_pv_f32")]] [[kernel]] void attn_plain_pv<float>(const device float* pm [[buffer(0)]], const device float* v [[buffer(1)]], device float* o [[buffer(2)]], constant orchard::AttnParams& p [[buffer(3)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]);
template [[host_name("attn_plain_pv_f16")]] [[kernel]] void attn_plain_pv<half>(const device float* pm [[buffer(0)]], const device half* v [[buffer(1)]], device half* o [[buffer(2)]], constant orchard::AttnParams& p [[buffer(3)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]);
template [[host_name("attn_plain_delta_f32")]] [[kernel]] void attn_plain_delta<float>(const device float* o [[buffer(0)]], const device float* dout [[buffer(1)]], device float* delta [[buffer(2)]], constant orchard::AttnParams& p [[buffer(3)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]);
template [[host_name("attn_plain_delta_f16")]] [[kernel]] void attn_plain_delta<half>(const device half* o [[buffer(0)]], const device half* dout [[buffer(1)]], device float* delta [[buffer(2)]], constant orchard::AttnParams& p [[buffer(3)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]);
template [[host_name("attn_plain_ds_f32")]] [[kernel]] void attn_plain_ds<float>(const device float* pm [[buffer(0)]], const device float* v [[buffer(1)]], const device float* dout [[buffer(2)]], const device float* delta [[buffer(3)]], device float* ds [[buffer(4)]], constant orchard::AttnParams& p [[buffer(5)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]);
template [[host_name("attn_plain_ds_f16")]] [[kernel]] void attn_plain_ds<half>(const device float* pm [[buffer(0)]], const device half* v [[buffer(1)]], const device half* dout [[buffer(2)]], const device float* delta [[buffer(3)]], device float* ds [[buffer(4)]], constant orchard::AttnParams& p [[buffer(5)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]);
template [[host_name("attn_plain_dq_f32")]] [[kernel]] void attn_plain_dq<float>(const device float* ds [[buffer(0)]], const device float* k [[buffer(1)]], device float* dq [[buffer(2)]], constant orchard::AttnParams& p [[buffer(3)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]);
template [[host_name("attn_plain_dq_f16")]] [[kernel]] void attn_plain_dq<half>(const device float* ds [[buffer(0)]], const device half* k [[buffer(1)]], device half* dq [[buffer(2)]], constant orchard::AttnParams& p [[buffer(3)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]);
template [[host_name("attn_plain_dkv_f32")]] [[kernel]] void attn_plain_dkv<float>(const device float* pm [[buffer(0)]], const device float* ds [[buffer(1)]], const device float* q [[buffer(2)]], const device float* dout [[buffer(3)]], device float* dk [[buffer(4)]], device float* dv [[buffer(5)]], constant orchard::AttnParams& p [[buffer(6)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]);
template [[host_name("attn_plain_dkv_f16")]] [[kernel]] void attn_plain_dkv<half>(const device float* pm [[buffer(0)]], const device float* ds [[buffer(1)]], const device half* q [[buffer(2)]], const device half* dout [[buffer(3)]], device half* dk [[buffer(4)]], device half* dv [[buffer(5)]], constant orchard::AttnParams& p [[buffer(6)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]);
