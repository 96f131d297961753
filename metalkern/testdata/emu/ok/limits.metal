// limits.metal — kernels that hit the emulator's limits: a thread that
// never finishes (the watchdog must turn it into an error) and a thread
// whose locals overflow its stack (reported, not a bare segfault).
#include <metal_stdlib>
using namespace metal;

// Spins until flag[0] != 0, which nobody sets.
kernel void spin_forever(device const volatile int* flag [[buffer(0)]], device int* out [[buffer(1)]],
                         uint tid [[thread_index_in_threadgroup]]) {
  int n = 0;
  while (flag[0] == 0) {
    n++;
  }
  out[tid] = n;
}

// 512 KiB of per-thread locals: more than the default 256 KiB stack.
kernel void deep_stack(device const float* in [[buffer(0)]], device float* out [[buffer(1)]],
                       uint tid [[thread_index_in_threadgroup]]) {
  float big[131072];
  for (int i = 0; i < 131072; ++i) {
    big[i] = in[i % 4] * float(i);
  }
  out[tid] = big[(tid * 7919u) % 131072u];
}
