// The smallest and largest of n floats in one pass with AVX2 (four vectors of 8 lanes at a time,
// the tail one by one), and whether any is NaN: a quantizer's calibration reads every activation
// of every image through here. Kernels/Extremes.swift holds the plain loop this is tested against.
#include "CKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2")))
int32_t mpq_extremes_f32_avx2(const float *x, int64_t n, float *lo, float *hi) {
    __m256 l0 = _mm256_set1_ps(__builtin_inff()), l1 = l0, h0 = _mm256_set1_ps(-__builtin_inff()), h1 = h0;
    __m256 nan = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
        // min/max return their second operand when either is NaN: the running value stays a
        // number, and the unordered compare records the NaN.
        l0 = _mm256_min_ps(a, l0); h0 = _mm256_max_ps(a, h0);
        l1 = _mm256_min_ps(b, l1); h1 = _mm256_max_ps(b, h1);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(a, b, _CMP_UNORD_Q));
    }
    float l[8], h[8];
    _mm256_storeu_ps(l, _mm256_min_ps(l0, l1));
    _mm256_storeu_ps(h, _mm256_max_ps(h0, h1));
    int32_t anyNaN = _mm256_movemask_ps(nan) != 0;
    float low = l[0], high = h[0];
    for (int k = 1; k < 8; k++) { low = l[k] < low ? l[k] : low; high = h[k] > high ? h[k] : high; }
    for (; i < n; i++) {
        const float v = x[i];
        if (v != v) anyNaN = 1;
        low = v < low ? v : low; high = v > high ? v : high;
    }
    *lo = low; *hi = high;
    return anyNaN;
}
#else
int32_t mpq_extremes_f32_avx2(const float *x, int64_t n, float *lo, float *hi) { (void)x; (void)n; (void)lo; (void)hi; return 0; }
#endif
