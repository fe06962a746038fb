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

/// Non-zero when this CPU has AVX2, FMA and F16C (clipsafety_few_dots_avx2 and _f16_avx2).
int clipsafety_has_avx2_fma(void);

/// For each of `rows` rows of `x` (`width` floats each, row-major): the dot products with the
/// `k` rows of `w` (k × width, 1 ≤ k ≤ 4) into `out` (rows × k), and, when `sums` is not NULL,
/// the row's sum of squares into sums[row]: one pass over the input for a product too narrow
/// for BLAS to be efficient and the input check. Rows go in blocks of 2-4 that share each
/// weight load; a row's results do not depend on its block (the same bits alone or in a batch).
/// Call only when clipsafety_has_avx2_fma() != 0.
void clipsafety_few_dots_avx2(const float *x, size_t rows, size_t width, const float *w, size_t k,
                              float *out, float *sums);

/// clipsafety_few_dots_avx2 on float16 rows (IEEE bit patterns), widened in registers: the
/// same results to the bit as widening the rows to float32 first.
void clipsafety_few_dots_f16_avx2(const uint16_t *x, size_t rows, size_t width, const float *w, size_t k,
                                  float *out, float *sums);

/// Columns per panel of the packed weights of clipsafety_fixed_order_product.
#define CLIPSAFETY_PANEL 16

/// out (rows × n, row-major) = x (rows × k, row-major) · wᵀ, where w (n × k) is `packed` in
/// panels of CLIPSAFETY_PANEL columns: panel p holds w[p·16 + c][i] at packed[(p·k + i)·16 + c],
/// zero past column n; `packed` 32-byte aligned. Every output element is one float32 FMA chain
/// over i = 0..k-1 in order, starting from +0, so its bits depend only on its row of x and
/// column of w: never on how many rows a call has, where a row sits among them, or the CPU's
/// vector width. This portable version gives the same bits (fmaf is exactly rounded).
void clipsafety_fixed_order_product(const float *x, size_t rows, size_t k, const float *packed, size_t n,
                                    float *out);

/// clipsafety_fixed_order_product with AVX2 and FMA. Call only when clipsafety_has_avx2_fma() != 0.
void clipsafety_fixed_order_product_avx2(const float *x, size_t rows, size_t k, const float *packed, size_t n,
                                         float *out);

#endif
