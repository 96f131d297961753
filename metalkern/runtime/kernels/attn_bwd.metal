// attn_bwd.metal — FlashAttention-2 style backward pass in two dispatches,
// with no atomics (Metal has no native float atomics):
//   1. attn_bwd_dq:  one threadgroup per 32-row Q block; first Delta =
//        rowsum(dO * O) for its rows (from the dO strip it holds and O read
//        once), written to the float32 [B, H, Nq] Delta buffer for pass 2;
//        then loops over K/V blocks:
//        S = Q K^T, P = exp2(S * scale_log2 - L2), dP = dO V^T,
//        dS = P * (dP - Delta), dQ += dS K; dQ *= scale at the end.
//   2. attn_bwd_dkv: one threadgroup per 32-row K/V block; loops over Q blocks:
//        S^T = K Q^T, P^T, dP^T = V dO^T, dV += P^T dO, dK += dS^T Q; dK *= scale.
// L2 = L * log2(e) converts the forward's natural-log LSE to the exp2 domain.
// Causal blocks entirely above the diagonal are skipped in both passes.
// S, P, dP and dS stay in registers (per-lane fragment elements, softmax.h);
// MMAs per simdgroup and streamed block: dQ pass 3 (B/8)(BD/8) (S, dP, dS K),
// dK/dV pass 4 (B/8)(BD/8) (S^T, dP^T, P^T dO, dS^T Q): the seven products.
// Tiles hold the input dtype (rows padded by 16 bytes); operand fragments are
// of the input dtype, accumulators float (P, dS converted before their product).
// From bd128 on, where they fit in 32 KiB next to the streamed tiles, the
// owned operands sit in threadgroup memory instead of registers (host/select.h
// Tile q_tg/do_tg, k_tg/v_tg; names end in _qtg/_qdotg, _ktg/_kvtg): loaded
// once per threadgroup, read one fragment at a time (strip_qkt).
#include <metal_stdlib>
using namespace metal;

#include "orchard/params.h"
#include "attn_common.h"
#include "loader.h"
#include "mma.h"
#include "softmax.h"

// dQ for one 32-row Q block, and the block's Delta. K and V blocks of BK rows
// sit side by side in threadgroup memory. Each simdgroup's Q strip is cached
// in registers (BD/8 operand fragments per lane) or, QTG, the whole Q block
// is loaded once into a third tile and S = Q K^T reads one Q fragment at a
// time from it (strip_qkt, as the forward's _qtg kernels); DOTG (only with
// QTG) does the same for the dO block in dP = dO V^T, and Delta is then
// summed from that tile after the barrier that publishes it.
template <typename T, int BQ, int BK, int BD, bool QTG, bool DOTG>
[[max_total_threads_per_threadgroup(128)]]  // kThreads (attn_common.h), host kThreadsPerGroup
[[kernel]] void attn_bwd_dq(const device T* q [[buffer(0)]], const device T* k [[buffer(1)]],
                            const device T* v [[buffer(2)]], const device T* o [[buffer(3)]],
                            const device T* dout [[buffer(4)]], const device float* lse [[buffer(5)]],
                            device float* delta [[buffer(6)]], device T* dq [[buffer(7)]],
                            constant orchard::AttnParams& p [[buffer(8)]],
                            uint3 tgid [[threadgroup_position_in_grid]],
                            uint tid [[thread_index_in_threadgroup]],
                            uint sg [[simdgroup_index_in_threadgroup]],
                            uint lane [[thread_index_in_simdgroup]]) {
  static_assert(BQ == kOwnedRows, "the Q block is one 8-row strip per simdgroup");
  static_assert(BK % 8 == 0 && BD % 8 == 0, "tiles are made of 8x8 fragments");
  static_assert(QTG || !DOTG, "the dO block sits in threadgroup memory only next to the Q block");
  typedef simdgroup_matrix<T, 8, 8> TFrag;  // operand fragment, input dtype
  constexpr int LD = TileLd<T, BD>::value;
  constexpr int kSmem = (2 * BK + (QTG ? BQ : 0) + (DOTG ? BQ : 0)) * LD;
  static_assert(kSmem * int(sizeof(T)) <= kMaxThreadgroupBytes, "threadgroup memory over 32 KiB");
  threadgroup T smem[kSmem];
  threadgroup T* ks = smem;                 // K block: BK x BD, row stride LD
  threadgroup T* vs = ks + BK * LD;         // V block: BK x BD, row stride LD
  threadgroup T* qs = vs + BK * LD;         // QTG: the Q block, BQ x BD, row stride LD, written once
  threadgroup T* dos = qs + BQ * LD;        // DOTG: the dO block, BQ x BD, row stride LD, written once

  const int q0 = (int(tgid.x) + p.group_x0) * BQ;  // grid position: dispatch offset added
  const int bh = (int(tgid.z) + p.group_z0) * p.H + int(tgid.y) + p.group_y0;
  const int qoff = bh * p.Nq * p.D;
  const device T* kb = k + bh * p.Nk * p.D;
  const device T* vb = v + bh * p.Nk * p.D;
  const int row0 = q0 + int(sg) * kStrip;
  const int qrow = row0 + frag_row(lane);

  TFrag qf[BD / 8];   // !QTG: this simdgroup's Q strip (QTG never touches it: no registers)
  TFrag dof[BD / 8];  // !DOTG: its dO strip
  Frag dqf[BD / 8];
  Frag sf[BK / 8];
  Frag dpf[BK / 8];
  TFrag dsf[BK / 8];
  if (QTG) {
    // Visible to every simdgroup after the barrier below (DOTG) or the first K block's; never written again.
    load_tile<T, BQ, BD>(qs, q + qoff, q0, p.Nq, p.D, tid);
  } else {
    load_strip_frags<T, BD>(qf, q + qoff, row0, p.Nq, p.D, lane);
  }
  // Delta = rowsum(dO * O): each lane's share, then the row's 4 lanes; the
  // row's leader lane stores it for the dK/dV pass. The same products in the
  // same order whether dO comes from registers or from its tile.
  float dl;
  if (DOTG) {
    load_tile<T, BQ, BD>(dos, dout + qoff, q0, p.Nq, p.D, tid);
    threadgroup_barrier(mem_flags::mem_threadgroup);  // Q, dO blocks visible to every simdgroup
    dl = row_sum(strip_row_dot_tile<T, BD>(o + qoff, dos + int(sg) * kStrip * LD, row0, p.Nq, p.D, lane));
  } else {
    load_strip_frags<T, BD>(dof, dout + qoff, row0, p.Nq, p.D, lane);
    dl = row_sum(strip_row_dot<T, BD>(o + qoff, dof, row0, p.Nq, p.D, lane));
  }
  strip_zero<BD>(dqf);
  float l2 = 0.0f;
  if (qrow < p.Nq) {
    l2 = lse[bh * p.Nq + qrow] * kLog2e;
    if (frag_row_leader(lane)) {
      delta[bh * p.Nq + qrow] = dl;
    }
  }

  // Causal: keys j >= q0 + BQ are masked for every row of this block.
  const int kend = p.causal != 0 ? min(p.Nk, q0 + BQ) : p.Nk;
  for (int k0 = 0; k0 < kend; k0 += BK) {
    load_tile<T, BK, BD>(ks, kb, k0, p.Nk, p.D, tid);
    load_tile<T, BK, BD>(vs, vb, k0, p.Nk, p.D, tid);
    threadgroup_barrier(mem_flags::mem_threadgroup);  // K, V visible to every simdgroup
    strip_qkt<BK / 8, BD, T, QTG, 1>(sf, qf, qs + int(sg) * kStrip * LD, ks);      // S = Q K^T
    strip_qkt<BK / 8, BD, T, DOTG, 1>(dpf, dof, dos + int(sg) * kStrip * LD, vs);  // dP = dO V^T
    dq_scores<BK / 8>(sf, dpf, l2, dl, qrow, k0, p.Nq, p.Nk, p.causal, p.scale_log2, lane);
    strip_to_operand<BK / 8>(dsf, sf);        // dS in the input dtype
    strip_pb<BK / 8, BD, T>(dqf, dsf, ks);   // dQ += dS K
    threadgroup_barrier(mem_flags::mem_threadgroup);  // every simdgroup done reading K, V
  }
  store_strip_frags<T, BD>(dq + qoff, dqf, row0, p.Nq, p.D, p.scale, lane);
}

// dK and dV for one 32-row K/V block. Q and dO blocks of BQ rows sit side by
// side in threadgroup memory, with the block's LSE and Delta. Each
// simdgroup's K and V strips are cached in registers (BD/8 operand fragments
// each per lane) or, KTG, the whole K block is loaded once into a further
// tile and S^T = K Q^T reads one K fragment at a time from it (strip_qkt);
// VTG (only with KTG) does the same for the V block in dP^T = V dO^T. Both
// are published by the first Q block's barrier and never written again.
template <typename T, int BQ, int BK, int BD, bool KTG, bool VTG>
[[max_total_threads_per_threadgroup(128)]]  // kThreads (attn_common.h), host kThreadsPerGroup
[[kernel]] void attn_bwd_dkv(const device T* q [[buffer(0)]], const device T* k [[buffer(1)]],
                             const device T* v [[buffer(2)]], const device T* dout [[buffer(3)]],
                             const device float* lse [[buffer(4)]],
                             const device float* delta [[buffer(5)]], device T* dk [[buffer(6)]],
                             device T* dv [[buffer(7)]],
                             constant orchard::AttnParams& p [[buffer(8)]],
                             uint3 tgid [[threadgroup_position_in_grid]],
                             uint tid [[thread_index_in_threadgroup]],
                             uint sg [[simdgroup_index_in_threadgroup]],
                             uint lane [[thread_index_in_simdgroup]]) {
  static_assert(BK == kOwnedRows, "the K/V block is one 8-row strip per simdgroup");
  static_assert(BQ % 8 == 0 && BD % 8 == 0, "tiles are made of 8x8 fragments");
  static_assert(KTG || !VTG, "the V block sits in threadgroup memory only next to the K block");
  typedef simdgroup_matrix<T, 8, 8> TFrag;  // operand fragment, input dtype
  constexpr int LD = TileLd<T, BD>::value;
  constexpr int kSmem = (2 * BQ + (KTG ? BK : 0) + (VTG ? BK : 0)) * LD;
  static_assert(kSmem * int(sizeof(T)) + 2 * BQ * 4 <= kMaxThreadgroupBytes,
                "threadgroup memory over 32 KiB");
  threadgroup T smem[kSmem];
  threadgroup float stats[2 * BQ];
  threadgroup T* qs = smem;                 // Q block: BQ x BD, row stride LD
  threadgroup T* dos = qs + BQ * LD;        // dO block: BQ x BD, row stride LD
  threadgroup T* ks = dos + BQ * LD;        // KTG: the K block, BK x BD, row stride LD, written once
  threadgroup T* vs = ks + BK * LD;         // VTG: the V block, BK x BD, row stride LD, written once
  threadgroup float* l2s = stats;           // LSE (exp2 domain) of the BQ rows
  threadgroup float* deltas = stats + BQ;   // Delta of the BQ rows

  const int k0 = (int(tgid.x) + p.group_x0) * BK;  // grid position: dispatch offset added
  const int bh = (int(tgid.z) + p.group_z0) * p.H + int(tgid.y) + p.group_y0;
  const int koff = bh * p.Nk * p.D;
  const device T* qb = q + bh * p.Nq * p.D;
  const device T* dob = dout + bh * p.Nq * p.D;
  const int row0 = k0 + int(sg) * kStrip;
  const int krow = row0 + frag_row(lane);

  TFrag kf[BD / 8];  // !KTG: this simdgroup's K strip (KTG never touches it: no registers)
  TFrag vf[BD / 8];  // !VTG: its V strip
  Frag dkf[BD / 8];
  Frag dvf[BD / 8];
  Frag stf[BQ / 8];
  Frag dptf[BQ / 8];
  TFrag opf[BQ / 8];  // P^T, then dS^T, in the input dtype
  // KTG/VTG: visible to every simdgroup after the first Q block's barrier.
  if (KTG) {
    load_tile<T, BK, BD>(ks, k + koff, k0, p.Nk, p.D, tid);
  } else {
    load_strip_frags<T, BD>(kf, k + koff, row0, p.Nk, p.D, lane);
  }
  if (VTG) {
    load_tile<T, BK, BD>(vs, v + koff, k0, p.Nk, p.D, tid);
  } else {
    load_strip_frags<T, BD>(vf, v + koff, row0, p.Nk, p.D, lane);
  }
  strip_zero<BD>(dkf);
  strip_zero<BD>(dvf);

  // Causal: query rows i < k0 see no key of this block; start at the Q block holding row k0.
  const int qstart = p.causal != 0 ? (k0 / BQ) * BQ : 0;
  for (int q0 = qstart; q0 < p.Nq; q0 += BQ) {
    load_tile<T, BQ, BD>(qs, qb, q0, p.Nq, p.D, tid);
    load_tile<T, BQ, BD>(dos, dob, q0, p.Nq, p.D, tid);
    for (int i = int(tid); i < BQ; i += kThreads) {
      const bool in = q0 + i < p.Nq;
      l2s[i] = in ? lse[bh * p.Nq + q0 + i] * kLog2e : 0.0f;
      deltas[i] = in ? delta[bh * p.Nq + q0 + i] : 0.0f;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);  // Q, dO, LSE, Delta visible
    strip_qkt<BQ / 8, BD, T, KTG, 1>(stf, kf, ks + int(sg) * kStrip * LD, qs);     // S^T = K Q^T
    strip_qkt<BQ / 8, BD, T, VTG, 1>(dptf, vf, vs + int(sg) * kStrip * LD, dos);  // dP^T = V dO^T
    dkv_scores<BQ / 8>(stf, dptf, l2s, deltas, krow, q0, p.Nq, p.Nk, p.causal, p.scale_log2,
                       lane);
    strip_to_operand<BQ / 8>(opf, stf);
    strip_pb<BQ / 8, BD, T>(dvf, opf, dos);    // dV += P^T dO
    strip_to_operand<BQ / 8>(opf, dptf);
    strip_pb<BQ / 8, BD, T>(dkf, opf, qs);     // dK += dS^T Q
    threadgroup_barrier(mem_flags::mem_threadgroup);  // every simdgroup done reading the block
  }
  store_strip_frags<T, BD>(dv + koff, dvf, row0, p.Nk, p.D, 1.0f, lane);
  store_strip_frags<T, BD>(dk + koff, dkf, row0, p.Nk, p.D, p.scale, lane);
}

// Instantiations: dtype x head-dim bucket (see host/select.h for the table).
template [[host_name("attn_bwd_dq_f32_bq32_bk32_bd32")]] [[kernel]] void attn_bwd_dq<float, 32, 32, 32, false, false>(const device float* q [[buffer(0)]], const device float* k [[buffer(1)]], const device float* v [[buffer(2)]], const device float* o [[buffer(3)]], const device float* dout [[buffer(4)]], const device float* lse [[buffer(5)]], device float* delta [[buffer(6)]], device float* dq [[buffer(7)]], constant orchard::AttnParams& p [[buffer(8)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_bwd_dq_f32_bq32_bk32_bd64")]] [[kernel]] void attn_bwd_dq<float, 32, 32, 64, false, false>(const device float* q [[buffer(0)]], const device float* k [[buffer(1)]], const device float* v [[buffer(2)]], const device float* o [[buffer(3)]], const device float* dout [[buffer(4)]], const device float* lse [[buffer(5)]], device float* delta [[buffer(6)]], device float* dq [[buffer(7)]], constant orchard::AttnParams& p [[buffer(8)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_bwd_dq_f32_bq32_bk8_bd128_qtg")]] [[kernel]] void attn_bwd_dq<float, 32, 8, 128, true, false>(const device float* q [[buffer(0)]], const device float* k [[buffer(1)]], const device float* v [[buffer(2)]], const device float* o [[buffer(3)]], const device float* dout [[buffer(4)]], const device float* lse [[buffer(5)]], device float* delta [[buffer(6)]], device float* dq [[buffer(7)]], constant orchard::AttnParams& p [[buffer(8)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_bwd_dq_f32_bq32_bk8_bd256")]] [[kernel]] void attn_bwd_dq<float, 32, 8, 256, false, false>(const device float* q [[buffer(0)]], const device float* k [[buffer(1)]], const device float* v [[buffer(2)]], const device float* o [[buffer(3)]], const device float* dout [[buffer(4)]], const device float* lse [[buffer(5)]], device float* delta [[buffer(6)]], device float* dq [[buffer(7)]], constant orchard::AttnParams& p [[buffer(8)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_bwd_dq_f16_bq32_bk32_bd32")]] [[kernel]] void attn_bwd_dq<half, 32, 32, 32, false, false>(const device half* q [[buffer(0)]], const device half* k [[buffer(1)]], const device half* v [[buffer(2)]], const device half* o [[buffer(3)]], const device half* dout [[buffer(4)]], const device float* lse [[buffer(5)]], device float* delta [[buffer(6)]], device half* dq [[buffer(7)]], constant orchard::AttnParams& p [[buffer(8)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_bwd_dq_f16_bq32_bk32_bd64")]] [[kernel]] void attn_bwd_dq<half, 32, 32, 64, false, false>(const device half* q [[buffer(0)]], const device half* k [[buffer(1)]], const device half* v [[buffer(2)]], const device half* o [[buffer(3)]], const device half* dout [[buffer(4)]], const device float* lse [[buffer(5)]], device float* delta [[buffer(6)]], device half* dq [[buffer(7)]], constant orchard::AttnParams& p [[buffer(8)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_bwd_dq_f16_bq32_bk16_bd128_qdotg")]] [[kernel]] void attn_bwd_dq<half, 32, 16, 128, true, true>(const device half* q [[buffer(0)]], const device half* k [[buffer(1)]], const device half* v [[buffer(2)]], const device half* o [[buffer(3)]], const device half* dout [[buffer(4)]], const device float* lse [[buffer(5)]], device float* delta [[buffer(6)]], device half* dq [[buffer(7)]], constant orchard::AttnParams& p [[buffer(8)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_bwd_dq_f16_bq32_bk8_bd256_qtg")]] [[kernel]] void attn_bwd_dq<half, 32, 8, 256, true, false>(const device half* q [[buffer(0)]], const device half* k [[buffer(1)]], const device half* v [[buffer(2)]], const device half* o [[buffer(3)]], const device half* dout [[buffer(4)]], const device float* lse [[buffer(5)]], device float* delta [[buffer(6)]], device half* dq [[buffer(7)]], constant orchard::AttnParams& p [[buffer(8)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_bwd_dkv_f32_bq32_bk32_bd32")]] [[kernel]] void attn_bwd_dkv<float, 32, 32, 32, false, false>(const device float* q [[buffer(0)]], const device float* k [[buffer(1)]], const device float* v [[buffer(2)]], const device float* dout [[buffer(3)]], const device float* lse [[buffer(4)]], const device float* delta [[buffer(5)]], device float* dk [[buffer(6)]], device float* dv [[buffer(7)]], constant orchard::AttnParams& p [[buffer(8)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_bwd_dkv_f32_bq32_bk32_bd64")]] [[kernel]] void attn_bwd_dkv<float, 32, 32, 64, false, false>(const device float* q [[buffer(0)]], const device float* k [[buffer(1)]], const device float* v [[buffer(2)]], const device float* dout [[buffer(3)]], const device float* lse [[buffer(4)]], const device float* delta [[buffer(5)]], device float* dk [[buffer(6)]], device float* dv [[buffer(7)]], constant orchard::AttnParams& p [[buffer(8)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_bwd_dkv_f32_bq8_bk32_bd128_ktg")]] [[kernel]] void attn_bwd_dkv<float, 8, 32, 128, true, false>(const device float* q [[buffer(0)]], const device float* k [[buffer(1)]], const device float* v [[buffer(2)]], const device float* dout [[buffer(3)]], const device float* lse [[buffer(4)]], const device float* delta [[buffer(5)]], device float* dk [[buffer(6)]], device float* dv [[buffer(7)]], constant orchard::AttnParams& p [[buffer(8)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_bwd_dkv_f32_bq8_bk32_bd256")]] [[kernel]] void attn_bwd_dkv<float, 8, 32, 256, false, false>(const device float* q [[buffer(0)]], const device float* k [[buffer(1)]], const device float* v [[buffer(2)]], const device float* dout [[buffer(3)]], const device float* lse [[buffer(4)]], const device float* delta [[buffer(5)]], device float* dk [[buffer(6)]], device float* dv [[buffer(7)]], constant orchard::AttnParams& p [[buffer(8)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_bwd_dkv_f16_bq32_bk32_bd32")]] [[kernel]] void attn_bwd_dkv<half, 32, 32, 32, false, false>(const device half* q [[buffer(0)]], const device half* k [[buffer(1)]], const device half* v [[buffer(2)]], const device half* dout [[buffer(3)]], const device float* lse [[buffer(4)]], const device float* delta [[buffer(5)]], device half* dk [[buffer(6)]], device half* dv [[buffer(7)]], constant orchard::AttnParams& p [[buffer(8)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_bwd_dkv_f16_bq32_bk32_bd64")]] [[kernel]] void attn_bwd_dkv<half, 32, 32, 64, false, false>(const device half* q [[buffer(0)]], const device half* k [[buffer(1)]], const device half* v [[buffer(2)]], const device half* dout [[buffer(3)]], const device float* lse [[buffer(4)]], const device float* delta [[buffer(5)]], device half* dk [[buffer(6)]], device half* dv [[buffer(7)]], constant orchard::AttnParams& p [[buffer(8)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_bwd_dkv_f16_bq16_bk32_bd128_kvtg")]] [[kernel]] void attn_bwd_dkv<half, 16, 32, 128, true, true>(const device half* q [[buffer(0)]], const device half* k [[buffer(1)]], const device half* v [[buffer(2)]], const device half* dout [[buffer(3)]], const device float* lse [[buffer(4)]], const device float* delta [[buffer(5)]], device half* dk [[buffer(6)]], device half* dv [[buffer(7)]], constant orchard::AttnParams& p [[buffer(8)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_bwd_dkv_f16_bq8_bk32_bd256_ktg")]] [[kernel]] void attn_bwd_dkv<half, 8, 32, 256, true, false>(const device half* q [[buffer(0)]], const device half* k [[buffer(1)]], const device half* v [[buffer(2)]], const device half* dout [[buffer(3)]], const device float* lse [[buffer(4)]], const device float* delta [[buffer(5)]], device half* dk [[buffer(6)]], device half* dv [[buffer(7)]], constant orchard::AttnParams& p [[buffer(8)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
