// orchard_emu/epilogue.h — closes the kernel source: the address-space
// macros must not leak into the generated trampolines (or anything after).
#undef kernel
#undef device
#undef constant
#undef thread
