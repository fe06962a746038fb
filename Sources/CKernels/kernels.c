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

#else

int clipsafety_has_f16c(void) { return 0; }

void clipsafety_widen_halves_f16c(const uint16_t *src, float *dst, size_t count) {
    (void)src; (void)dst; (void)count;
}

#endif
