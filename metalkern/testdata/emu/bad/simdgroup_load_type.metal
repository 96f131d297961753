// simdgroup_load_type.metal — Metal loads a simdgroup_matrix<T> only from
// memory of type T: a float matrix from half memory is rejected.
#include <metal_stdlib>
using namespace metal;

kernel void load_type(device const half* a [[buffer(0)]], device float* out [[buffer(1)]]) {
  simdgroup_float8x8 m;
  simdgroup_load(m, a, 8);  // REJECT: simdgroup_load: the pointer's element type differs from the matrix's
  simdgroup_store(m, out, 8);
}
