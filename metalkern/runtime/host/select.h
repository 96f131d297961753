// select.h — kernel naming and block-size selection for the attention runner.
//
// One table (kBuckets) maps head-dim ranges to a padded head dim `bd` and the
// block sizes of each pass (the forward's per dtype); kernel_name() builds
// every kernel name from a pass, dtype and tile, and must agree with the
// host_name strings of the instantiations in kernels/attn_fwd.metal and
// kernels/attn_bwd.metal.
//
// Every kernel runs 128 threads (4 simdgroups x 32); the "owned" block of a
// pass (Q rows for fwd/dQ, K rows for dK/dV) is 32 rows, one 8-row strip per
// simdgroup (the f32 forward at bd <= 64: 64 rows, two strips per
// simdgroup). The streamed block shrinks as bd grows so threadgroup memory
// stays within 32 KiB even for float32 tiles (tiles hold the input dtype,
// rows padded by 16 bytes); threadgroup_bytes() repeats the kernels'
// arithmetic so the host can check it before dispatch.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "backend.h"

namespace orchard {

enum class DType { kF32, kF16 };

inline const char* dtype_tag(DType t) { return t == DType::kF32 ? "f32" : "f16"; }
inline size_t dtype_size(DType t) { return t == DType::kF32 ? 4 : 2; }

enum class Pass { kFwd, kBwdDq, kBwdDkv };

struct Tile {
  int bq = 0;  // Q rows per block (owned in fwd/dQ, streamed in dK/dV; fwd 32 or 64)
  int bk = 0;  // K/V rows per block (streamed in fwd/dQ, owned in dK/dV)
  int bd = 0;  // padded head dim
  // Forward only: the Q block (bq x bd) is kept in threadgroup memory next to
  // the K/V tile and its fragments are read from there for every K block,
  // instead of each simdgroup caching its Q strip in registers (bd/8 operand
  // fragments per lane). Kernel names end in "_qtg".
  // dQ: q_tg the same for its owned Q block (S = Q K^T), do_tg (only with
  // q_tg) also the dO block (dP = dO V^T; Delta summed from that tile): names
  // end in "_qtg" or "_qdotg". dK/dV: k_tg keeps the owned K block there
  // (S^T = K Q^T), v_tg (only with k_tg) also the V block (dP^T = V dO^T):
  // names end in "_ktg" or "_kvtg". An operand not in threadgroup memory is
  // cached in registers, bd/8 operand fragments per lane.
  bool q_tg = false;
  bool do_tg = false;
  bool k_tg = false;
  bool v_tg = false;
};

constexpr int kThreadsPerGroup = 128;  // 4 simdgroups x 32 lanes, all kernels
constexpr int kMaxHeadDim = 256;

struct Bucket {
  int max_d;  // head dims (previous max_d, max_d] use this bucket; bd == max_d
  Tile fwd_f32, fwd_f16;  // the forward's tile per input dtype
  Tile dq_f32, dq_f16;    // the dQ pass's
  Tile dkv_f32, dkv_f16;  // the dK/dV pass's
  const Tile& fwd(DType dt) const { return dt == DType::kF32 ? fwd_f32 : fwd_f16; }
  const Tile& dq(DType dt) const { return dt == DType::kF32 ? dq_f32 : dq_f16; }
  const Tile& dkv(DType dt) const { return dt == DType::kF32 ? dkv_f32 : dkv_f16; }
};

// Head-dim buckets. fwd: K and V share one BK x bd tile; from bd128 on the Q
// block sits in threadgroup memory too (q_tg) where both fit in 32 KiB: f16
// bd128 (8704 + 8704 B), f16 bd256 and f32 bd128 with bk16 (16896 + 8448 B);
// not f32 bd256 (its Q block alone is 33280 B), which keeps Q in registers.
// f32 at bd <= 64 takes 64-row Q blocks (two 8-row strips per simdgroup, each
// K/V fragment read once for both) in threadgroup memory: half the fragment
// reads per output element (bd64: 17408 + 8704 B); f16 keeps bq32 with Q in
// registers there (4608 B at bd64, inside the 8 KiB goal).
// dQ: K and V tiles side by side; dK/dV: Q and dO tiles side by side, so the
// streamed block halves from bd128 on. From bd128 on the owned operands move
// to threadgroup memory where they fit next to the streamed tiles:
//   dQ f16 bd128: Q and dO (8704 + 8704) + K/V bk16 (8704) = 26112 B;
//   dQ f16 bd256 and f32 bd128: Q (16896) + K/V bk8 (8448) = 25344 B (f32
//     bd128's K/V block halves from bk16: Q and K/V at bk16 would be 33792 B);
//   dK/dV f16 bd128: K and V (8704 + 8704) + Q/dO bq16 (8704) + stats 128 = 26240 B;
//   dK/dV f16 bd256 and f32 bd128: K (16896) + Q/dO bq8 (8448) + stats 64 = 25408 B;
//   f32 bd256: nothing fits (a 32-row block alone is 33280 B): registers.
inline const std::vector<Bucket>& buckets() {
  // Tile: bq, bk, bd, q_tg, do_tg, k_tg, v_tg.
  static const std::vector<Bucket> kBuckets = {
      {32, {64, 32, 32, true}, {32, 32, 32}, {32, 32, 32}, {32, 32, 32}, {32, 32, 32}, {32, 32, 32}},
      {64, {64, 32, 64, true}, {32, 32, 64}, {32, 32, 64}, {32, 32, 64}, {32, 32, 64}, {32, 32, 64}},
      {128, {32, 16, 128, true}, {32, 32, 128, true},
       {32, 8, 128, true}, {32, 16, 128, true, true},
       {8, 32, 128, false, false, true}, {16, 32, 128, false, false, true, true}},
      {256, {32, 16, 256}, {32, 16, 256, true},
       {32, 8, 256}, {32, 8, 256, true},
       {8, 32, 256}, {8, 32, 256, false, false, true}},
  };
  return kBuckets;
}

// The one place kernel names are built.
inline std::string kernel_name(Pass pass, DType dt, const Tile& t) {
  std::string tiles = "_bq" + std::to_string(t.bq) + "_bk" + std::to_string(t.bk) + "_bd" +
                      std::to_string(t.bd) + (t.q_tg ? (t.do_tg ? "_qdotg" : "_qtg") : "") +
                      (t.k_tg ? (t.v_tg ? "_kvtg" : "_ktg") : "");
  switch (pass) {
    case Pass::kFwd:
      return std::string("attn_fwd_") + dtype_tag(dt) + tiles;
    case Pass::kBwdDq:
      return std::string("attn_bwd_dq_") + dtype_tag(dt) + tiles;
    case Pass::kBwdDkv:
      return std::string("attn_bwd_dkv_") + dtype_tag(dt) + tiles;
  }
  return "";
}

// Row stride of a threadgroup tile: bd elements plus 16 bytes of padding
// (kernels/attn_common.h TileLd).
inline int tile_ld(const Tile& t, DType dt) { return t.bd + 16 / int(dtype_size(dt)); }

// Static threadgroup memory of a kernel, in bytes (same formulas as the
// kernels): tiles of the input dtype with padded rows (the forward's K/V
// tile, and its Q block when q_tg; dQ's K and V tiles and its Q, dO blocks
// when q_tg, do_tg; dK/dV's Q and dO tiles and its K, V blocks when k_tg,
// v_tg); dK/dV adds the block's LSE and Delta
// (float32). dt defaults to float32, the larger.
inline size_t threadgroup_bytes(Pass pass, const Tile& t, DType dt = DType::kF32) {
  const size_t es = dtype_size(dt);
  const size_t ld = size_t(tile_ld(t, dt));
  switch (pass) {
    case Pass::kFwd:
      return es * size_t(t.bk + (t.q_tg ? t.bq : 0)) * ld;
    case Pass::kBwdDq:
      return es * size_t(2 * t.bk + (t.q_tg ? t.bq : 0) + (t.do_tg ? t.bq : 0)) * ld;
    case Pass::kBwdDkv:
      return es * size_t(2 * t.bq + (t.k_tg ? t.bk : 0) + (t.v_tg ? t.bk : 0)) * ld + 4 * 2 * size_t(t.bq);
  }
  return 0;
}

// Every kernel the runner may dispatch.
inline std::vector<std::string> all_kernel_names() {
  std::vector<std::string> out;
  for (DType dt : {DType::kF32, DType::kF16}) {
    for (const Bucket& b : buckets()) {
      out.push_back(kernel_name(Pass::kFwd, dt, b.fwd(dt)));
      out.push_back(kernel_name(Pass::kBwdDq, dt, b.dq(dt)));
      out.push_back(kernel_name(Pass::kBwdDkv, dt, b.dkv(dt)));
    }
  }
  return out;
}

struct AttnShape {
  int B = 0, H = 0, Nq = 0, Nk = 0, D = 0;
  DType dtype = DType::kF32;
  bool causal = false;
};

struct Selection {
  bool ok = false;
  Bucket bucket{};
  std::string reason;  // why this bucket, or why the shape is unsupported
};

inline std::string supported_head_dims() {
  std::string s = "1.." + std::to_string(kMaxHeadDim) + " (buckets";
  for (const Bucket& b : buckets()) s += " bd" + std::to_string(b.max_d);
  return s + ")";
}

// Picks the smallest bucket whose bd >= D.
inline Selection select(const AttnShape& s) {
  Selection sel;
  if (s.D < 1 || s.D > kMaxHeadDim) {
    sel.reason = "head dim D=" + std::to_string(s.D) + " is not supported: supported D is " +
                 supported_head_dims();
    return sel;
  }
  int lo = 1;
  for (const Bucket& b : buckets()) {
    if (s.D <= b.max_d) {
      sel.ok = true;
      sel.bucket = b;
      const Tile& f = b.fwd(s.dtype);
      const Tile& dq = b.dq(s.dtype);
      const Tile& dkv = b.dkv(s.dtype);
      sel.reason = "D=" + std::to_string(s.D) + " in " + std::to_string(lo) + ".." +
                   std::to_string(b.max_d) + " -> bd" + std::to_string(b.max_d) + ": fwd " +
                   dtype_tag(s.dtype) + " bq" + std::to_string(f.bq) + " bk" + std::to_string(f.bk) +
                   (f.q_tg ? " with Q in threadgroup memory" : " with Q in registers") +
                   ", dQ bk" + std::to_string(dq.bk) +
                   (dq.do_tg ? " with Q and dO in threadgroup memory"
                             : dq.q_tg ? " with Q in threadgroup memory, dO in registers"
                                       : " with Q and dO in registers") +
                   ", dK/dV bq" + std::to_string(dkv.bq) +
                   (dkv.v_tg ? " with K and V in threadgroup memory"
                             : dkv.k_tg ? " with K in threadgroup memory, V in registers"
                                        : " with K and V in registers") +
                   " (threadgroup memory <= 32 KiB)";
      return sel;
    }
    lo = b.max_d + 1;
  }
  return sel;
}

inline uint32_t ceil_div(int a, int b) { return uint32_t((a + b - 1) / b); }

// Grid of threadgroups for a pass.
inline Dim3 grid_for(Pass pass, const Tile& t, const AttnShape& s) {
  Dim3 g;
  g.y = uint32_t(s.H);
  g.z = uint32_t(s.B);
  switch (pass) {
    case Pass::kFwd:
    case Pass::kBwdDq:
      g.x = ceil_div(s.Nq, t.bq);
      break;
    case Pass::kBwdDkv:
      g.x = ceil_div(s.Nk, t.bk);
      break;
  }
  return g;
}

// ---- splitting a pass across dispatches --------------------------------
//
// macOS kills a command buffer that holds the GPU too long on a Mac with a
// display ("Impacting Interactivity"); one dispatch over a whole large grid
// is enough. So the host splits each pass's grid into boxes of at most
// max_groups_per_dispatch() threadgroups, one dispatch (one command buffer)
// each, and passes each box's origin in AttnParams.group_{x,y,z}0.

// Multiply-adds one dispatch may carry: 2^34 (about 17 G), some tens of
// milliseconds on an M1 at a third of its peak, far inside any watchdog,
// while a command buffer's fixed cost (tens of microseconds) stays <0.1%.
constexpr uint64_t kMaxWorkPerDispatch = uint64_t(1) << 34;

// Multiply-adds of one threadgroup of a pass, an upper bound (causal masking
// skips about half): its owned rows times the streamed rows times bd, per
// matrix product (fwd: S and PV; dQ: S, dP, dS K, plus Delta's 32 x bd;
// dK/dV: S^T, dP^T, dV, dK).
inline uint64_t work_per_group(Pass pass, const Tile& t, const AttnShape& s) {
  switch (pass) {
    case Pass::kFwd:
      return 2ull * uint64_t(t.bq) * uint64_t(s.Nk) * uint64_t(t.bd);
    case Pass::kBwdDq:
      return 3ull * 32 * uint64_t(s.Nk) * uint64_t(t.bd) + 32ull * uint64_t(t.bd);
    case Pass::kBwdDkv:
      return 4ull * 32 * uint64_t(s.Nq) * uint64_t(t.bd);
  }
  return 1;
}

// Threadgroups per dispatch: kMaxWorkPerDispatch / work_per_group (at least
// 1), lowered to cap when cap > 0 (ORCHARD_DISPATCH_GROUPS, for testing).
inline uint64_t max_groups_per_dispatch(Pass pass, const Tile& t, const AttnShape& s,
                                        uint64_t cap) {
  uint64_t w = work_per_group(pass, t, s);
  uint64_t n = w == 0 ? kMaxWorkPerDispatch : kMaxWorkPerDispatch / w;
  if (n < 1) n = 1;
  if (cap > 0 && cap < n) n = cap;
  return n;
}

// One dispatch's part of a grid: origin and size, in threadgroups.
struct GridPart {
  Dim3 origin{0, 0, 0};
  Dim3 size;
};

// Splits grid into boxes of at most max_groups threadgroups, in z, y, x
// order: whole z-slices when a slice fits, else rows of a slice, else runs
// of a row. One part when the grid fits.
inline std::vector<GridPart> split_grid(Dim3 g, uint64_t max_groups) {
  if (max_groups < 1) max_groups = 1;
  auto part = [](uint32_t x, uint32_t y, uint32_t z, uint32_t sx, uint32_t sy, uint32_t sz) {
    GridPart p;
    p.origin = Dim3{x, y, z};
    p.size = Dim3{sx, sy, sz};
    return p;
  };
  std::vector<GridPart> out;
  const uint64_t plane = uint64_t(g.x) * g.y;
  if (plane * g.z <= max_groups) {
    out.push_back(part(0, 0, 0, g.x, g.y, g.z));
  } else if (plane <= max_groups) {
    const uint32_t nz = uint32_t(max_groups / plane);
    for (uint32_t z = 0; z < g.z; z += nz) out.push_back(part(0, 0, z, g.x, g.y, std::min(nz, g.z - z)));
  } else if (g.x <= max_groups) {
    const uint32_t ny = uint32_t(max_groups / g.x);
    for (uint32_t z = 0; z < g.z; ++z)
      for (uint32_t y = 0; y < g.y; y += ny) out.push_back(part(0, y, z, g.x, std::min(ny, g.y - y), 1));
  } else {
    const uint32_t nx = uint32_t(max_groups);
    for (uint32_t z = 0; z < g.z; ++z)
      for (uint32_t y = 0; y < g.y; ++y)
        for (uint32_t x = 0; x < g.x; x += nx) out.push_back(part(x, y, z, std::min(nx, g.x - x), 1, 1));
  }
  return out;
}

}  // namespace orchard
