// The machine's f32 multiply-add peak, measured: chains of independent FMAs with nothing else in
// the loop, as wide as the CPU runs them (AVX-512 where it has it, else AVX2). The training
// benchmarks state their convolutions' speed as a fraction of it.
#include "CKernels.h"
#include <immintrin.h>

int mpq_cpu_has_avx512f(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

#if defined(__x86_64__)
__attribute__((target("avx512f")))
static float peak512(int64_t iterations) {
    __m512 acc[12];
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) acc[i] = _mm512_set1_ps((float)i);
    for (int64_t n = 0; n < iterations; n++) {
        for (int i = 0; i < 12; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    }
    __m512 s = acc[0];
    for (int i = 1; i < 12; i++) s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma")))
static float peak256(int64_t iterations) {
    __m256 acc[12];
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps((float)i);
    for (int64_t n = 0; n < iterations; n++) {
        for (int i = 0; i < 12; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    }
    __m256 s = acc[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, acc[i]);
    float lanes[8];
    _mm256_storeu_ps(lanes, s);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
}
#endif

int64_t mpq_fma_peak(int64_t iterations, int wide, float *sink) {
#if defined(__x86_64__)
    if (wide) { *sink = peak512(iterations); return iterations * 12 * 16 * 2; }
    *sink = peak256(iterations);
    return iterations * 12 * 8 * 2;
#else
    *sink = 0;
    return 0;
#endif
}
