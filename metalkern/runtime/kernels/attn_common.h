// attn_common.h — constants and types shared by the attention kernels.
//
// Every kernel runs 4 simdgroups of 32 threads (128 threads per threadgroup).
// Each simdgroup owns an 8-row strip of the threadgroup's "owned" block (Q
// rows in the forward and dQ passes, K/V rows in the dK/dV pass), so owned
// blocks are always 32 rows. Matrix products use 8x8 float simdgroup
// matrices loaded from threadgroup memory; everything accumulates in float32
// whatever the input dtype.
#pragma once

#include <metal_stdlib>
using namespace metal;

typedef simdgroup_matrix<float, 8, 8> Frag;

static constant constexpr const int kSimdWidth = 32;
static constant constexpr const int kSimdgroups = 4;
static constant constexpr const int kThreads = kSimdWidth * kSimdgroups;
static constant constexpr const int kStrip = 8;                   // rows per simdgroup
static constant constexpr const int kOwnedRows = kStrip * kSimdgroups;  // rows per owned block
static constant constexpr const int kMaxThreadgroupBytes = 32768;  // Apple7+ limit

// Score written for masked or padded columns and the initial running max, in the exp2
// domain. Large and negative but finite: exp2(x - m) with both at this value is 1,
// never NaN, and masked probabilities are zeroed explicitly anyway.
static constant constexpr const float kMaskScore = -1.0e30f;
static constant constexpr const float kLn2 = 0.6931471805599453f;
static constant constexpr const float kLog2e = 1.4426950408889634f;
