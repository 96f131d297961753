// Package torchop holds the end-to-end test of orchard_ops, the runtime's
// kernels as PyTorch ops (metalkern/runtime/torch and runtime/python): it
// builds the op library with the real CMake against the installed PyTorch
// and runs the pytest suite the runtime ships. It has no non-test code.
package torchop
