// Small CPU-specific kernels for Runtime, chosen at run time (Swift code is compiled for the
// baseline x86-64 instruction set, which has no half-precision conversion).
#ifndef CLIPSAFETY_CKERNELS_H
#define CLIPSAFETY_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

/// Non-zero when this CPU has the F16C instructions clipsafety_widen_halves_f16c needs.
int clipsafety_has_f16c(void);

/// Widens `count` IEEE float16 bit patterns to float32 with the F16C instruction (exact: every
/// float16 is a float32; NaN payloads are kept). Call only when clipsafety_has_f16c() != 0.
void clipsafety_widen_halves_f16c(const uint16_t *src, float *dst, size_t count);

#endif
