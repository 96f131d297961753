// attn_common.h — constants and types shared by the attention kernels.
//
// Every kernel runs 4 simdgroups of 32 threads (128 threads per threadgroup).
// Each simdgroup owns an 8-row strip of the threadgroup's "owned" block (Q
// rows in the forward and dQ passes, K/V rows in the dK/dV pass), so owned
// blocks are 32 rows (kOwnedRows), or a multiple of it where a simdgroup owns
// several strips (the forward's 64-row Q blocks). Matrix products use 8x8 simdgroup matrices:
// operands in the input dtype T (Q, K, V, dO as loaded; P and dS converted
// to T, as MLX steel does), accumulators (S, dP, O, dQ, dK, dV) in float32:
// Metal's all-float and half x half + float mixes only. Threadgroup tiles
// hold T with rows padded by 16 bytes (kTilePad).
// Score strips (S, P, dP, dS) never leave registers: each lane works on the
// two elements of every fragment it holds (thread_elements()).
#pragma once

#include <metal_stdlib>
using namespace metal;

typedef simdgroup_matrix<float, 8, 8> Frag;  // float32 accumulator fragment

// Row stride of a threadgroup tile of BD columns of T: 16 bytes of padding per row.
template <typename T, int BD>
struct TileLd {
  static constant constexpr const int value = BD + 16 / int(sizeof(T));
};

// 4-element vectors without vector alignment (device rows need only T's alignment).
template <typename T>
struct Packed4 {};
template <>
struct Packed4<float> {
  typedef packed_float4 type;
};
template <>
struct Packed4<half> {
  typedef packed_half4 type;
};

static constant constexpr const int kSimdWidth = 32;
static constant constexpr const int kSimdgroups = 4;
static constant constexpr const int kThreads = kSimdWidth * kSimdgroups;
// Every kernel carries [[max_total_threads_per_threadgroup(128)]] (a literal: emu reads
// only literals there) so the compiler budgets registers for exactly this many threads;
// the host dispatches kThreadsPerGroup (host/select.h) threads, the same number.
static_assert(kThreads == 128, "update the kernels' max_total_threads_per_threadgroup(128)");
static constant constexpr const int kStrip = 8;                   // rows per simdgroup
static constant constexpr const int kOwnedRows = kStrip * kSimdgroups;  // rows per owned block
static constant constexpr const int kMaxThreadgroupBytes = 32768;  // Apple7+ limit

// Score written for masked or padded columns and the initial running max, in the exp2
// domain. Large and negative but finite: exp2(x - m) with both at this value is 1,
// never NaN, and masked probabilities are zeroed explicitly anyway.
static constant constexpr const float kMaskScore = -1.0e30f;
static constant constexpr const float kLn2 = 0.6931471805599453f;
static constant constexpr const float kLog2e = 1.4426950408889634f;

// Apple's 8x8 simdgroup_matrix lane layout (MLX steel's get_coord, MFA's
// Morton order): lane l holds elements (frag_row(l), frag_col(l) + j), j = 0, 1,
// of every fragment. The 4 lanes holding one row differ in lane bits 0 and 3,
// so row reductions combine with simd_shuffle_xor(1) and (8).
inline int frag_row(uint lane) { return int((lane / 4) & 4) + int((lane / 2) % 4); }
inline int frag_col(uint lane) { return int((lane / 4) & 2) * 2 + int(lane % 2) * 2; }
// The one lane per row whose frag_col is 0 (writes per-row results).
inline bool frag_row_leader(uint lane) { return (lane & 9u) == 0u; }
inline Frag frag_zero() { return make_filled_simdgroup_matrix<float, 8, 8>(0.0f); }
