#include "ckernels.h"

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
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

__attribute__((target("avx2,fma")))
static inline float sum8(__m256 v) {
    __m128 half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    half = _mm_add_ps(half, _mm_movehl_ps(half, half));
    half = _mm_add_ss(half, _mm_movehdup_ps(half));
    return _mm_cvtss_f32(half);
}

// One row against K prompts; K is a compile-time constant in each expansion below so that the
// accumulators stay in registers. Two sets of accumulators (even and odd blocks of 8) keep two
// FMA chains in flight per sum: with one, each step waited for the previous FMA, and the sum
// of squares was a chain of its own that added a fifth to the time; with two, loads bound the
// loop and the sum of squares rides along.
#define FEW_DOTS_ROW(K)                                                                    \
    {                                                                                     \
        __m256 acc[K], odd[K], squares = _mm256_setzero_ps(), squares2 = squares;         \
        for (size_t j = 0; j < K; j++) { acc[j] = _mm256_setzero_ps(); odd[j] = acc[j]; } \
        size_t i = 0;                                                                     \
        for (; i + 16 <= width; i += 16) {                                                \
            __m256 v = _mm256_loadu_ps(row + i), u = _mm256_loadu_ps(row + i + 8);        \
            if (sums) {                                                                   \
                squares = _mm256_fmadd_ps(v, v, squares);                                 \
                squares2 = _mm256_fmadd_ps(u, u, squares2);                               \
            }                                                                             \
            for (size_t j = 0; j < K; j++) {                                              \
                acc[j] = _mm256_fmadd_ps(v, _mm256_loadu_ps(w + j * width + i), acc[j]);  \
                odd[j] = _mm256_fmadd_ps(u, _mm256_loadu_ps(w + j * width + i + 8), odd[j]); \
            }                                                                             \
        }                                                                                 \
        for (; i + 8 <= width; i += 8) {                                                  \
            __m256 v = _mm256_loadu_ps(row + i);                                          \
            if (sums) squares = _mm256_fmadd_ps(v, v, squares);                           \
            for (size_t j = 0; j < K; j++)                                                \
                acc[j] = _mm256_fmadd_ps(v, _mm256_loadu_ps(w + j * width + i), acc[j]);  \
        }                                                                                 \
        for (size_t j = 0; j < K; j++) {                                                  \
            float total = sum8(_mm256_add_ps(acc[j], odd[j]));                            \
            for (size_t t = i; t < width; t++) total += row[t] * w[j * width + t];        \
            out[r * K + j] = total;                                                       \
        }                                                                                 \
        if (sums) {                                                                       \
            float total = sum8(_mm256_add_ps(squares, squares2));                         \
            for (size_t t = i; t < width; t++) total += row[t] * row[t];                  \
            sums[r] = total;                                                              \
        }                                                                                 \
    }

__attribute__((target("avx2,fma")))
void clipsafety_few_dots_avx2(const float *x, size_t rows, size_t width, const float *w, size_t k,
                              float *out, float *sums) {
    for (size_t r = 0; r < rows; r++) {
        const float *row = x + r * width;
        switch (k) {
        case 1: FEW_DOTS_ROW(1) break;
        case 2: FEW_DOTS_ROW(2) break;
        case 3: FEW_DOTS_ROW(3) break;
        default: FEW_DOTS_ROW(4) break;
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

void clipsafety_widen_halves_f16c(const uint16_t *src, float *dst, size_t count) {
    (void)src; (void)dst; (void)count;
}

#endif
