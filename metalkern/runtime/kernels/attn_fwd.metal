// attn_fwd.metal — FlashAttention-2 style forward pass.
//
// One threadgroup per (BQ-row Q block, head, batch): grid (ceil(Nq/BQ), H, B),
// 128 threads; BQ = 32 R, R 8-row strips per simdgroup (strip r of simdgroup
// sg: rows q0 + 32 r + 8 sg). Each simdgroup keeps its strips' 8-row slices
// of the O accumulator and 8 x BK score strips in simdgroup-matrix registers
// and streams K/V blocks of BK rows through threadgroup memory (one shared
// tile of the input dtype, rows padded by 16 bytes); each K/V fragment it
// loads serves all R strips. Its Q rows are either cached in registers too
// (QTG false, R = 1: BD/8 operand fragments) or, QTG true, the whole Q block
// is loaded once into a second tile of threadgroup memory and S = Q K^T reads
// one Q fragment per strip at a time from it, blocked along the head dim
// (strip_qkt, strip_abt_tile), so registers hold only O and S/P (host/select.h
// chooses per dtype and bucket; kernel names end in _qtg):
//   S = Q K^T (raw, registers), online softmax in the exp2 domain on each
//   lane's fragment elements (scale * log2 e folded in, running max starting
//   at kMaskScore, never -inf; row max by shuffles), O *= alpha per lane,
//   O += P V with P straight from registers (converted to the input dtype).
// Outputs O (input dtype) and L = natural-log LSE per row (float32).
// With the causal mask, K blocks that start after the block's last query row
// are fully masked for every row and are not visited.
// MMAs per simdgroup and K block: S R(BK/8)(BD/8) + PV R(BK/8)(BD/8), nothing else.
#include <metal_stdlib>
using namespace metal;

#include "orchard/params.h"
#include "attn_common.h"
#include "loader.h"
#include "mma.h"
#include "softmax.h"

template <typename T, int BQ, int BK, int BD, bool QTG>
[[max_total_threads_per_threadgroup(128)]]  // kThreads (attn_common.h), host kThreadsPerGroup
[[kernel]] void attn_fwd(const device T* q [[buffer(0)]], const device T* k [[buffer(1)]],
                         const device T* v [[buffer(2)]], device T* o [[buffer(3)]],
                         device float* lse [[buffer(4)]],
                         constant orchard::AttnParams& p [[buffer(5)]],
                         uint3 tgid [[threadgroup_position_in_grid]],
                         uint tid [[thread_index_in_threadgroup]],
                         uint sg [[simdgroup_index_in_threadgroup]],
                         uint lane [[thread_index_in_simdgroup]]) {
  static_assert(BQ % kOwnedRows == 0, "the Q block is whole 8-row strips per simdgroup");
  constexpr int R = BQ / kOwnedRows;  // strips per simdgroup
  static_assert(QTG || R == 1, "several strips per simdgroup only with the Q block in threadgroup memory");
  static_assert(BK % 8 == 0 && BD % 8 == 0, "tiles are made of 8x8 fragments");
  typedef simdgroup_matrix<T, 8, 8> TFrag;  // operand fragment, input dtype
  constexpr int LD = TileLd<T, BD>::value;
  constexpr int NT = BK / 8;  // score fragments per strip and K block
  constexpr int NB = BD / 8;  // O fragments per strip
  constexpr int kSmem = (QTG ? BK + BQ : BK) * LD;
  static_assert(kSmem * int(sizeof(T)) <= kMaxThreadgroupBytes, "threadgroup memory over 32 KiB");
  threadgroup T smem[kSmem];
  threadgroup T* kv = smem;            // K block, then V block: BK x BD, row stride LD
  threadgroup T* qs = smem + BK * LD;  // QTG: the Q block, BQ x BD, row stride LD, written once

  const int q0 = (int(tgid.x) + p.group_x0) * BQ;  // grid position: dispatch offset added
  const int bh = (int(tgid.z) + p.group_z0) * p.H + int(tgid.y) + p.group_y0;
  const device T* kb = k + bh * p.Nk * p.D;
  const device T* vb = v + bh * p.Nk * p.D;
  const int row0 = q0 + int(sg) * kStrip;  // this simdgroup's first query row (strip 0)
  const device T* qb = q + bh * p.Nq * p.D;

  TFrag qf[NB];  // !QTG: this simdgroup's Q strip (QTG never touches it: no registers)
  Frag of[R * NB];  // strip r: of + r * NB
  Frag sf[R * NT];  // strip r: sf + r * NT
  TFrag pf[R * NT];
  if (QTG) {
    // Visible to every simdgroup after the first K block's barrier; never written again.
    load_tile<T, BQ, BD>(qs, qb, q0, p.Nq, p.D, tid);
  } else {
    load_strip_frags<T, BD>(qf, qb, row0, p.Nq, p.D, lane);
  }
  strip_zero<R * BD>(of);
  float m[R];  // running max of this lane's row in strip r
  float l[R];  // this lane's share of that row's running sum
  #pragma clang loop unroll(full)
  for (int r = 0; r < R; ++r) {
    m[r] = kMaskScore;
    l[r] = 0.0f;
  }

  // Causal: keys j >= q0 + BQ are masked for every row of this block.
  const int kend = p.causal != 0 ? min(p.Nk, q0 + BQ) : p.Nk;
  for (int k0 = 0; k0 < kend; k0 += BK) {
    load_tile<T, BK, BD>(kv, kb, k0, p.Nk, p.D, tid);
    threadgroup_barrier(mem_flags::mem_threadgroup);  // K visible to every simdgroup
    strip_qkt<NT, BD, T, QTG, R>(sf, qf, qs + int(sg) * kStrip * LD, kv);  // S = Q K^T
    #pragma clang loop unroll(full)
    for (int r = 0; r < R; ++r) {
      const int qrow = row0 + r * kOwnedRows + frag_row(lane);  // this lane's query row
      const float alpha = softmax_update<NT>(sf + r * NT, m[r], l[r], qrow, k0, p.Nq, p.Nk, p.causal,
                                             p.scale_log2, lane);
      strip_scale<BD>(of + r * NB, alpha);  // O *= alpha, per lane
    }
    strip_to_operand<R * NT>(pf, sf);                 // P in the input dtype
    threadgroup_barrier(mem_flags::mem_threadgroup);  // every simdgroup done reading K
    load_tile<T, BK, BD>(kv, vb, k0, p.Nk, p.D, tid);
    threadgroup_barrier(mem_flags::mem_threadgroup);  // V visible
    strip_pb<NT, BD, T, R>(of, pf, kv);              // O += P V
    threadgroup_barrier(mem_flags::mem_threadgroup);  // every simdgroup done reading V
  }

  // O /= l; a row that saw no key (l == 0) gets O = 0 and L = -inf.
  #pragma clang loop unroll(full)
  for (int r = 0; r < R; ++r) {
    const int qrow = row0 + r * kOwnedRows + frag_row(lane);
    const float lsum = row_sum(l[r]);
    store_strip_frags<T, BD>(o + bh * p.Nq * p.D, of + r * NB, row0 + r * kOwnedRows, p.Nq, p.D,
                             lsum > 0.0f ? 1.0f / lsum : 0.0f, lane);
    if (frag_row_leader(lane) && qrow < p.Nq) {
      lse[bh * p.Nq + qrow] = lsum > 0.0f ? m[r] * kLn2 + log(lsum) : -INFINITY;
    }
  }
}

// Instantiations: dtype x head-dim bucket (see host/select.h for the table); _qtg: Q block in
// threadgroup memory (f32 bd256 cannot: its Q block alone would be 33 KiB); bq64: two strips
// per simdgroup (f32 at bd <= 64).
template [[host_name("attn_fwd_f32_bq64_bk32_bd32_qtg")]] [[kernel]] void attn_fwd<float, 64, 32, 32, true>(const device float* q [[buffer(0)]], const device float* k [[buffer(1)]], const device float* v [[buffer(2)]], device float* o [[buffer(3)]], device float* lse [[buffer(4)]], constant orchard::AttnParams& p [[buffer(5)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_fwd_f32_bq64_bk32_bd64_qtg")]] [[kernel]] void attn_fwd<float, 64, 32, 64, true>(const device float* q [[buffer(0)]], const device float* k [[buffer(1)]], const device float* v [[buffer(2)]], device float* o [[buffer(3)]], device float* lse [[buffer(4)]], constant orchard::AttnParams& p [[buffer(5)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_fwd_f32_bq32_bk16_bd128_qtg")]] [[kernel]] void attn_fwd<float, 32, 16, 128, true>(const device float* q [[buffer(0)]], const device float* k [[buffer(1)]], const device float* v [[buffer(2)]], device float* o [[buffer(3)]], device float* lse [[buffer(4)]], constant orchard::AttnParams& p [[buffer(5)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_fwd_f32_bq32_bk16_bd256")]] [[kernel]] void attn_fwd<float, 32, 16, 256, false>(const device float* q [[buffer(0)]], const device float* k [[buffer(1)]], const device float* v [[buffer(2)]], device float* o [[buffer(3)]], device float* lse [[buffer(4)]], constant orchard::AttnParams& p [[buffer(5)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_fwd_f16_bq32_bk32_bd32")]] [[kernel]] void attn_fwd<half, 32, 32, 32, false>(const device half* q [[buffer(0)]], const device half* k [[buffer(1)]], const device half* v [[buffer(2)]], device half* o [[buffer(3)]], device float* lse [[buffer(4)]], constant orchard::AttnParams& p [[buffer(5)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_fwd_f16_bq32_bk32_bd64")]] [[kernel]] void attn_fwd<half, 32, 32, 64, false>(const device half* q [[buffer(0)]], const device half* k [[buffer(1)]], const device half* v [[buffer(2)]], device half* o [[buffer(3)]], device float* lse [[buffer(4)]], constant orchard::AttnParams& p [[buffer(5)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_fwd_f16_bq32_bk32_bd128_qtg")]] [[kernel]] void attn_fwd<half, 32, 32, 128, true>(const device half* q [[buffer(0)]], const device half* k [[buffer(1)]], const device half* v [[buffer(2)]], device half* o [[buffer(3)]], device float* lse [[buffer(4)]], constant orchard::AttnParams& p [[buffer(5)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attn_fwd_f16_bq32_bk16_bd256_qtg")]] [[kernel]] void attn_fwd<half, 32, 16, 256, true>(const device half* q [[buffer(0)]], const device half* k [[buffer(1)]], const device half* v [[buffer(2)]], device half* o [[buffer(3)]], device float* lse [[buffer(4)]], constant orchard::AttnParams& p [[buffer(5)]], uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
