// params.h — the parameter block shared by the host (C++) and the kernels (MSL).
//
// Compiles as Metal Shading Language and as C++17: plain int/float fields
// only, no includes, no pointers, no padding (every field is 4 bytes). The
// host fills the struct in declaration order and binds it with setBytes
// (Metal) or as raw bytes (emu) at the [[buffer(n)]] index each kernel names.
//
// Tensor layout (all kernels): row-major contiguous [B, H, N, D] — batch,
// head, sequence position, head-dimension element. The element (b, h, n, d)
// of a tensor with N rows lives at ((b * H + h) * N + n) * D + d. Row
// statistics (LSE, Delta) are [B, H, Nq] float32 at (b * H + h) * Nq + n.
#pragma once

namespace orchard {

struct AttnParams {
  int B;             ///< batch size (grid z).
  int H;             ///< heads per batch entry (grid y).
  int Nq;            ///< query rows per (b, h): Q, O, dO, dQ are [B, H, Nq, D];
                     ///< LSE and Delta are [B, H, Nq].
  int Nk;            ///< key/value rows per (b, h): K, V, dK, dV are [B, H, Nk, D].
  int D;             ///< head dim actually used, 1 <= D <= the kernel's bd (tails
                     ///< zero-padded in threadgroup memory).
  int causal;        ///< 1: query i attends to keys j <= i (top-left aligned, as
                     ///< PyTorch is_causal); 0: every query sees every key.
  float scale;       ///< softmax scale, natural domain (host default 1/sqrt(D));
                     ///< dQ and dK are multiplied by it.
  float scale_log2;  ///< scale * log2(e): scores are computed in the exp2 domain,
                     ///< s2 = (q . k) * scale_log2.
  int group_x0;      ///< threadgroup offset of this dispatch in the pass's grid (x, y,
  int group_y0;      ///< z): the host splits a large grid across several dispatches
  int group_z0;      ///< (select.h split_grid); a kernel's grid position is
                     ///< threadgroup_position_in_grid + (group_x0, group_y0, group_z0).
};

static_assert(sizeof(AttnParams) == 44, "11 four-byte fields, no padding: same layout in MSL and C++");

// LSE convention: the forward kernel writes L[b,h,i] = log(sum_j exp(scale * q_i.k_j)) over
// the keys row i may see, in the NATURAL log base, float32. A row that sees no key
// (impossible with top-left causal and Nk >= 1, guarded anyway) gets O = 0 and L = -inf.
// Delta convention: the backward pre-pass writes, in float32,
// Delta[b,h,i] = sum_d dO[b,h,i,d] * O[b,h,i,d].

}  // namespace orchard
