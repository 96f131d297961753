// syntax_error.metal — valid for the pre-pass, but not C++ (or MSL).
#include <metal_stdlib>
using namespace metal;

kernel void broken(device float* out [[buffer(0)]], uint tid [[thread_position_in_grid]]) {
  float x = 1.0f +;  // SITE: syntax
  out[tid] = x;
}
