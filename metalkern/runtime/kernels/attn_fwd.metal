// attn_fwd.metal — FlashAttention-2 style forward pass.
//
// One threadgroup per (32-row Q block, head, batch): grid (ceil(Nq/32), H, B),
// 128 threads. Each simdgroup keeps its 8 Q rows and its 8-row slice of the
// O accumulator in simdgroup-matrix registers and streams K/V blocks of BK
// rows through threadgroup memory:
//   S = Q K^T (raw), online softmax in the exp2 domain (scale * log2 e folded
//   in, running max starting at kMaskScore, never -inf), O = diag(alpha) O + P V.
// Outputs O (input dtype) and L = natural-log LSE per row (float32).
// With the causal mask, K blocks that start after the block's last query row
// are fully masked for every row and are not visited.
#include <metal_stdlib>
using namespace metal;

#include "orchard/params.h"
#include "attn_common.h"
#include "loader.h"
#include "mma.h"
#include "softmax.h"

template <typename T, int BQ, int BK, int BD>
[[kernel]] void attn_fwd(const device T* q [[buffer(0)]], const device T* k [[buffer(1)]],
                         const device T* v [[buffer(2)]], device T* o [[buffer(3)]],
                         device float* lse [[buffer(4)]],
                         constant orchard::AttnParams& p [[buffer(5)]],
                         uint3 tgid [[threadgroup_position_in_grid]],
                         uint tid [[thread_index_in_threadgroup]],
                         uint sg [[simdgroup_index_in_threadgroup]],
                         uint lane [[thread_index_in_simdgroup]]) {
  static_assert(BQ == kOwnedRows, "the Q block is one 8-row strip per simdgroup");
  static_assert(BK % 8 == 0 && BD % 8 == 0, "tiles are made of 8x8 fragments");
  constexpr int kSmem = BK * BD + BQ * BK + kSimdgroups * 64;
  static_assert(kSmem * 4 <= kMaxThreadgroupBytes, "threadgroup memory over 32 KiB");
  threadgroup float smem[kSmem];
  threadgroup float* kv = smem;                       // K block, then V block: BK x BD
  threadgroup float* sp = smem + BK * BD;             // scores, then P: BQ x BK
  threadgroup float* diags = sp + BQ * BK;            // one 8x8 diagonal per simdgroup
  threadgroup float* strip = sp + int(sg) * kStrip * BK;  // this simdgroup's S rows
  threadgroup float* diag = diags + int(sg) * 64;

  const int q0 = (int(tgid.x) + p.group_x0) * BQ;  // grid position: dispatch offset added
  const int bh = (int(tgid.z) + p.group_z0) * p.H + int(tgid.y) + p.group_y0;
  const device T* qb = q + bh * p.Nq * p.D;
  const device T* kb = k + bh * p.Nk * p.D;
  const device T* vb = v + bh * p.Nk * p.D;
  const int qrow = q0 + int(sg) * kStrip + int(lane) / 4;  // this lane's query row

  // Zero the diagonals (their off-diagonal entries stay zero) and take a zero fragment.
  for (int i = int(tid); i < kSimdgroups * 64; i += kThreads) {
    diags[i] = 0.0f;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  Frag zero;
  simdgroup_load(zero, diag, 8, ulong2(0, 0), false);

  Frag qf[BD / 8];
  Frag of[BD / 8];
  load_strip_frags<T, BK, BD>(qf, kv, qb, q0, p.Nq, p.D, tid, sg);
  strip_zero<BD>(of, zero);
  float m = kMaskScore;
  float l = 0.0f;

  // Causal: keys j >= q0 + BQ are masked for every row of this block.
  const int kend = p.causal != 0 ? min(p.Nk, q0 + BQ) : p.Nk;
  for (int k0 = 0; k0 < kend; k0 += BK) {
    // S = Q K^T for this simdgroup's rows.
    load_tile<T, BK, BD>(kv, kb, k0, p.Nk, p.D, tid);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    strip_abt<BK / 8, BD>(strip, BK, qf, kv, zero);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    // V replaces K while each simdgroup turns its scores into P.
    load_tile<T, BK, BD>(kv, vb, k0, p.Nk, p.D, tid);
    softmax_update<BK>(strip, diag, m, l, qrow, k0, p.Nq, p.Nk, p.causal, p.scale_log2, lane);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    // O = diag(alpha) O + P V.
    strip_scale_rows<BD>(of, diag, zero);
    strip_pb<BK / 8, BD>(of, strip, BK, kv);
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }

  // O /= l; a row that saw no key (l == 0) gets O = 0 and L = -inf.
  if (int(lane) % 4 == 0) {
    diag[(int(lane) / 4) * 9] = l > 0.0f ? 1.0f / l : 0.0f;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  strip_scale_rows<BD>(of, diag, zero);
  store_strip_frags<T, BK, BD>(o + bh * p.Nq * p.D, of, kv, q0, p.Nq, p.D, 1.0f, tid, sg);
  if (int(lane) % 4 == 0 && qrow < p.Nq) {
    lse[bh * p.Nq + qrow] = l > 0.0f ? m * kLn2 + log(l) : -INFINITY;
  }
}

// Instantiations: dtype x head-dim bucket (see host/select.h for the table).
template [[host_name("attn_fwd_f32_bq32_bk32_bd32")]] [[kernel]] void attn_fwd<float, 32, 32, 32>(const device float* q [[buffer(0)]], const device float* k [[buffer(1)]], const device float* v [[buffer(2)]], device float* o [[buffer(3)]], device float* lse [[buffer(4)]], constant orchard::AttnParams& p [[buffer(5)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_fwd_f32_bq32_bk32_bd64")]] [[kernel]] void attn_fwd<float, 32, 32, 64>(const device float* q [[buffer(0)]], const device float* k [[buffer(1)]], const device float* v [[buffer(2)]], device float* o [[buffer(3)]], device float* lse [[buffer(4)]], constant orchard::AttnParams& p [[buffer(5)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_fwd_f32_bq32_bk32_bd128")]] [[kernel]] void attn_fwd<float, 32, 32, 128>(const device float* q [[buffer(0)]], const device float* k [[buffer(1)]], const device float* v [[buffer(2)]], device float* o [[buffer(3)]], device float* lse [[buffer(4)]], constant orchard::AttnParams& p [[buffer(5)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_fwd_f32_bq32_bk16_bd256")]] [[kernel]] void attn_fwd<float, 32, 16, 256>(const device float* q [[buffer(0)]], const device float* k [[buffer(1)]], const device float* v [[buffer(2)]], device float* o [[buffer(3)]], device float* lse [[buffer(4)]], constant orchard::AttnParams& p [[buffer(5)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_fwd_f16_bq32_bk32_bd32")]] [[kernel]] void attn_fwd<half, 32, 32, 32>(const device half* q [[buffer(0)]], const device half* k [[buffer(1)]], const device half* v [[buffer(2)]], device half* o [[buffer(3)]], device float* lse [[buffer(4)]], constant orchard::AttnParams& p [[buffer(5)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_fwd_f16_bq32_bk32_bd64")]] [[kernel]] void attn_fwd<half, 32, 32, 64>(const device half* q [[buffer(0)]], const device half* k [[buffer(1)]], const device half* v [[buffer(2)]], device half* o [[buffer(3)]], device float* lse [[buffer(4)]], constant orchard::AttnParams& p [[buffer(5)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_fwd_f16_bq32_bk32_bd128")]] [[kernel]] void attn_fwd<half, 32, 32, 128>(const device half* q [[buffer(0)]], const device half* k [[buffer(1)]], const device half* v [[buffer(2)]], device half* o [[buffer(3)]], device float* lse [[buffer(4)]], constant orchard::AttnParams& p [[buffer(5)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_fwd_f16_bq32_bk16_bd256")]] [[kernel]] void attn_fwd<half, 32, 16, 256>(const device half* q [[buffer(0)]], const device half* k [[buffer(1)]], const device half* v [[buffer(2)]], device half* o [[buffer(3)]], device float* lse [[buffer(4)]], constant orchard::AttnParams& p [[buffer(5)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
