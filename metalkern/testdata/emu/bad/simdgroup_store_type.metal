// simdgroup_store_type.metal — Metal stores a simdgroup_matrix<T> only to
// memory of type T: a float matrix to half memory is rejected.
#include <metal_stdlib>
using namespace metal;

kernel void store_type(device const float* a [[buffer(0)]], device half* out [[buffer(1)]]) {
  simdgroup_float8x8 m;
  simdgroup_load(m, a, 8);
  simdgroup_store(m, out, 8);  // REJECT: simdgroup_store: the pointer's element type differs from the matrix's
}
