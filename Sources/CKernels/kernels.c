#include "ckernels.h"

#include <math.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

int clipsafety_has_f16c(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
}

__attribute__((target("avx,f16c")))
void clipsafety_widen_halves_f16c(const uint16_t *src, float *dst, size_t count) {
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m128i halves = _mm_loadu_si128((const __m128i *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(halves));
    }
    if (i < count) {
        uint16_t rest[8] = {0};
        float wide[8];
        for (size_t k = 0; i + k < count; k++) rest[k] = src[i + k];
        _mm256_storeu_ps(wide, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)rest)));
        for (size_t k = 0; i + k < count; k++) dst[i + k] = wide[k];
    }
}

int clipsafety_has_avx2_fma(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

__attribute__((target("avx2,fma")))
static inline float sum8(__m256 v) {
    __m128 half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    half = _mm_add_ps(half, _mm_movehl_ps(half, half));
    half = _mm_add_ss(half, _mm_movehdup_ps(half));
    return _mm_cvtss_f32(half);
}

// Eight values from index `at` on, as float32: loaded, or widened from float16 (exact).
__attribute__((target("avx2,fma,f16c"), always_inline))
static inline __m256 load8(const void *x, size_t at, const int half) {
    if (half) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)x + at)));
    return _mm256_loadu_ps((const float *)x + at);
}

__attribute__((target("avx2,fma,f16c"), always_inline))
static inline float load1(const void *x, size_t at, const int half) {
    if (half) return _cvtsh_ss(((const uint16_t *)x)[at]);
    return ((const float *)x)[at];
}

// One step of 8 values for every row of a block: k weight loads shared by the block's rows.
#define FEW_DOTS_STEP(at)                                                                  \
    do {                                                                                  \
        __m256 weights[4];                                                                \
        for (size_t j = 0; j < k; j++) weights[j] = _mm256_loadu_ps(w + j * width + (at)); \
        for (size_t q = 0; q < block; q++) {                                              \
            __m256 v = load8(x, q * width + (at), half);                                  \
            if (measure) squares[q] = _mm256_fmadd_ps(v, v, squares[q]);                  \
            for (size_t j = 0; j < k; j++) acc[q][j] = _mm256_fmadd_ps(v, weights[j], acc[q][j]); \
        }                                                                                 \
    } while (0)

// `block` rows of `x` (float32, or float16 when `half`) against k prompts, 8 values a step.
// Always inlined with constant k, block, measure and half, so that the block·k dot
// accumulators and the block sums of squares are registers and the loops unroll.
// One row at a time, each step loaded k weight vectors for k FMAs; a block shares them.
// Measured in a C harness on 2 cores (Zen 3; 4096 rows of 512 in cache, 2 prompts): one row at
// a time about 132 µs a batch, 178 µs with the sums; blocks of 4 rows 113 µs, 124 µs with the
// sums. Each step also asks for the next block's rows (below): a block starts `block` new
// streams, which the hardware prefetcher finds late. With that, on rows read from a file
// (bench --input, batch 4096) the check's cost went from 1.4-6.2 % to -0.2-2.3 % and the rate
// up 10-35 %, and float32 rows in cache got faster too (B/32 25-28 -> 30-43 M rows/s).
// float16 rows are widened in registers rather than into a buffer first: 3x on rows in cache.
// The sum of squares is one FMA a step per row beside the k of the dots, so with rows in cache
// it cannot be free: for 2 prompts it is half as much arithmetic again.
// Every row is summed in the same order whatever the block, so a row scores the same to the
// bit in a block or alone (the tail of a batch runs one row at a time), float16 or float32.
__attribute__((target("avx2,fma,f16c"), always_inline))
static inline void few_dots_block(const void *x, size_t width, const float *w, float *out, float *sums,
                                  const size_t k, const size_t block, const int measure, const int half) {
    const size_t valueBytes = half ? 2 : 4;
    __m256 acc[4][4], squares[4];
    for (size_t q = 0; q < block; q++) {
        squares[q] = _mm256_setzero_ps();
        for (size_t j = 0; j < k; j++) acc[q][j] = _mm256_setzero_ps();
    }
    // The next block's rows follow this block's in memory: one address walks through them, a
    // block's width of bytes a step, so that they have been asked for when their turn comes.
    // (An address per row, or unrolling the loop by a cache line, ran out of registers.) Past
    // the batch's end for its last block: integer arithmetic (prefetching never faults).
    const size_t stepBytes = block * 8 * valueBytes;
    uintptr_t ahead = (uintptr_t)x + block * width * valueBytes;
    size_t i = 0;
    for (; i + 8 <= width; i += 8) {
        if (block > 1)
            for (size_t o = 0; o < stepBytes; o += 64) _mm_prefetch((const char *)(ahead + o), _MM_HINT_T0);
        ahead += stepBytes;
        FEW_DOTS_STEP(i);
    }
    for (size_t q = 0; q < block; q++) {
        for (size_t j = 0; j < k; j++) {
            float total = sum8(acc[q][j]);
            for (size_t t = i; t < width; t++) total += load1(x, q * width + t, half) * w[j * width + t];
            out[q * k + j] = total;
        }
        if (measure) {
            float total = sum8(squares[q]);
            for (size_t t = i; t < width; t++) total += load1(x, q * width + t, half) * load1(x, q * width + t, half);
            sums[q] = total;
        }
    }
}

// Blocks of `block` rows, then the rest one at a time. The block is as large as AVX2's 16
// registers allow: block·(k + 1) accumulators, k weights and a step of one row.
__attribute__((target("avx2,fma,f16c"), always_inline))
static inline void few_dots(const void *x, size_t rows, size_t width, const float *w, float *out, float *sums,
                            const size_t k, const size_t block, const int measure, const int half) {
    const size_t rowBytes = width * (half ? 2 : 4);
    size_t r = 0;
    for (; r + block <= rows; r += block)
        few_dots_block((const char *)x + r * rowBytes, width, w, out + r * k, measure ? sums + r : NULL, k, block, measure, half);
    for (; r < rows; r++)
        few_dots_block((const char *)x + r * rowBytes, width, w, out + r * k, measure ? sums + r : NULL, k, 1, measure, half);
}

// The expansions: k = 1…4 prompts, with and without the sums, float32 or float16 rows.
__attribute__((target("avx2,fma,f16c"), always_inline))
static inline void few_dots_any(const void *x, size_t rows, size_t width, const float *w, size_t k,
                                float *out, float *sums, const int half) {
    int measure = sums != NULL;
    switch (k * 2 + (size_t)measure) {
    case 2: few_dots(x, rows, width, w, out, sums, 1, 4, 0, half); break;
    case 3: few_dots(x, rows, width, w, out, sums, 1, 4, 1, half); break;
    case 4: few_dots(x, rows, width, w, out, sums, 2, 4, 0, half); break;
    case 5: few_dots(x, rows, width, w, out, sums, 2, 4, 1, half); break;
    case 6: few_dots(x, rows, width, w, out, sums, 3, 3, 0, half); break;
    case 7: few_dots(x, rows, width, w, out, sums, 3, 3, 1, half); break;
    case 8: few_dots(x, rows, width, w, out, sums, 4, 2, 0, half); break;
    default: few_dots(x, rows, width, w, out, sums, 4, 2, 1, half); break;
    }
}

__attribute__((target("avx2,fma,f16c")))
void clipsafety_few_dots_avx2(const float *x, size_t rows, size_t width, const float *w, size_t k,
                              float *out, float *sums) {
    few_dots_any(x, rows, width, w, k, out, sums, 0);
}

__attribute__((target("avx2,fma,f16c")))
void clipsafety_few_dots_f16_avx2(const uint16_t *x, size_t rows, size_t width, const float *w, size_t k,
                                  float *out, float *sums) {
    few_dots_any(x, rows, width, w, k, out, sums, 1);
}

// One tile of the fixed-order product: R rows (1-6) × P panels of 16 columns, over inputs
// first..<last. Every element is its own float32 FMA chain over the inputs in order: from +0
// when `first` is 0, else continued from the value the previous range stored in `out` (a float
// stored and loaded back is the same float, so ranges change nothing). Always inlined with
// constant R and P so that the R·2P accumulators are registers. Tiles of fewer rows take more
// panels, to keep enough independent chains for the FMA latency (one row of one panel has 2).
__attribute__((target("avx2,fma"), always_inline))
static inline void fixed_order_tile(const float *x, size_t k, size_t first, size_t last, const float *panel,
                                    float *out, size_t n, size_t cols, const int R, const int P) {
    __m256 acc[6][8];
    for (int r = 0; r < R; r++) {
        for (int q = 0; q < 2 * P; q++) {
            size_t c = (size_t)q * 8;
            if (first == 0 || c >= cols) {
                acc[r][q] = _mm256_setzero_ps();
            } else if (c + 8 <= cols) {
                acc[r][q] = _mm256_loadu_ps(out + r * n + c);
            } else {
                float lanes[8] = {0};
                for (size_t j = c; j < cols; j++) lanes[j - c] = out[r * n + j];
                acc[r][q] = _mm256_loadu_ps(lanes);
            }
        }
    }
    const size_t stride = k * CLIPSAFETY_PANEL;
    for (size_t i = first; i < last; i++) {
        __m256 w[8];
        for (int q = 0; q < P; q++) {
            w[2 * q] = _mm256_load_ps(panel + q * stride + i * CLIPSAFETY_PANEL);
            w[2 * q + 1] = _mm256_load_ps(panel + q * stride + i * CLIPSAFETY_PANEL + 8);
        }
        for (int r = 0; r < R; r++) {
            __m256 v = _mm256_broadcast_ss(x + r * k + i);
            for (int q = 0; q < 2 * P; q++) acc[r][q] = _mm256_fmadd_ps(v, w[q], acc[r][q]);
        }
    }
    for (int r = 0; r < R; r++) {
        for (int q = 0; q < 2 * P; q++) {
            size_t c = (size_t)q * 8;
            if (c + 8 <= cols) {
                _mm256_storeu_ps(out + r * n + c, acc[r][q]);
            } else if (c < cols) {
                float lanes[8];
                _mm256_storeu_ps(lanes, acc[r][q]);
                for (size_t j = c; j < cols; j++) out[r * n + j] = lanes[j - c];
            }
        }
    }
}

// R rows across every panel, P panels a tile, then one panel a tile, over inputs first..<last.
__attribute__((target("avx2,fma"), always_inline))
static inline void fixed_order_rows(const float *x, size_t k, size_t first, size_t last, const float *packed,
                                    float *out, size_t n, const int R, const int P) {
    const size_t panels = (n + CLIPSAFETY_PANEL - 1) / CLIPSAFETY_PANEL, stride = k * CLIPSAFETY_PANEL;
    size_t p = 0;
    for (; p + P <= panels; p += P)
        fixed_order_tile(x, k, first, last, packed + p * stride, out + p * CLIPSAFETY_PANEL, n, n - p * CLIPSAFETY_PANEL, R, P);
    for (; p < panels; p++)
        fixed_order_tile(x, k, first, last, packed + p * stride, out + p * CLIPSAFETY_PANEL, n, n - p * CLIPSAFETY_PANEL, R, 1);
}

// Inputs per range: a panel's range is 16 KB, in L1 while a block's tiles use it.
#define FIXED_ORDER_INPUTS 256
// Rows per block: the block's inputs of one range (96 KB) stay in L2 across the panels.
#define FIXED_ORDER_ROWS 96

// Blocks of rows × ranges of inputs × panels × tiles of 6 rows; the rows past the last multiple
// of 6 take the wider tiles of fewer rows.
__attribute__((target("avx2,fma")))
void clipsafety_fixed_order_product_avx2(const float *x, size_t rows, size_t k, const float *packed, size_t n,
                                         float *out) {
    const size_t full = rows / 6 * 6, panels = (n + CLIPSAFETY_PANEL - 1) / CLIPSAFETY_PANEL;
    for (size_t top = 0; top < rows; top += FIXED_ORDER_ROWS) {
        const size_t bottom = top + FIXED_ORDER_ROWS < rows ? top + FIXED_ORDER_ROWS : rows;
        const size_t tiled = bottom < full ? bottom : full;
        for (size_t first = 0; first < k || first == 0; first += FIXED_ORDER_INPUTS) {
            const size_t last = first + FIXED_ORDER_INPUTS < k ? first + FIXED_ORDER_INPUTS : k;
            for (size_t p = 0; p < panels; p++)
                for (size_t r = top; r < tiled; r += 6)
                    fixed_order_tile(x + r * k, k, first, last, packed + p * k * CLIPSAFETY_PANEL,
                                     out + r * n + p * CLIPSAFETY_PANEL, n, n - p * CLIPSAFETY_PANEL, 6, 1);
            const float *tx = x + tiled * k;
            float *tout = out + tiled * n;
            switch (bottom - tiled) {
            case 1: fixed_order_rows(tx, k, first, last, packed, tout, n, 1, 4); break;
            case 2: fixed_order_rows(tx, k, first, last, packed, tout, n, 2, 2); break;
            case 3: fixed_order_rows(tx, k, first, last, packed, tout, n, 3, 2); break;
            case 4: fixed_order_rows(tx, k, first, last, packed, tout, n, 4, 1); break;
            case 5: fixed_order_rows(tx, k, first, last, packed, tout, n, 5, 1); break;
            default: break;
            }
            if (k == 0) break;
        }
    }
}

#else

int clipsafety_has_f16c(void) { return 0; }
int clipsafety_has_avx2_fma(void) { return 0; }

void clipsafety_few_dots_avx2(const float *x, size_t rows, size_t width, const float *w, size_t k,
                              float *out, float *sums) {
    (void)x; (void)rows; (void)width; (void)w; (void)k; (void)out; (void)sums;
}

void clipsafety_few_dots_f16_avx2(const uint16_t *x, size_t rows, size_t width, const float *w, size_t k,
                                  float *out, float *sums) {
    (void)x; (void)rows; (void)width; (void)w; (void)k; (void)out; (void)sums;
}

void clipsafety_widen_halves_f16c(const uint16_t *src, float *dst, size_t count) {
    (void)src; (void)dst; (void)count;
}

void clipsafety_fixed_order_product_avx2(const float *x, size_t rows, size_t k, const float *packed, size_t n,
                                         float *out) {
    clipsafety_fixed_order_product(x, rows, k, packed, n, out);
}

#endif

void clipsafety_fixed_order_product(const float *x, size_t rows, size_t k, const float *packed, size_t n,
                                    float *out) {
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = 0; j < n; j++) {
            const float *w = packed + (j / CLIPSAFETY_PANEL) * k * CLIPSAFETY_PANEL + j % CLIPSAFETY_PANEL;
            float sum = 0;
            for (size_t i = 0; i < k; i++) sum = fmaf(x[r * k + i], w[i * CLIPSAFETY_PANEL], sum);
            out[r * n + j] = sum;
        }
    }
}
