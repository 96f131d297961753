// constant_write.metal — constant data is read-only in Metal: emu compiles
// `constant` as const, so the write fails at this file's line.
#include <metal_stdlib>
using namespace metal;

struct Params {
  int n;
};

kernel void constant_write(device float* out [[buffer(0)]], constant Params& p [[buffer(1)]],
                           uint tid [[thread_position_in_grid]]) {
  p.n = 4;  // REJECT: read-only
  out[tid] = float(p.n);
}
