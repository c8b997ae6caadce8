// The f32 GEMM's micro-kernel for CPUs with AVX2 and FMA but no AVX-512 (Zen 2/3, most client
// Intel parts): a 6×16 tile in twelve ymm accumulators (two B vectors and one broadcast of A
// live beside them: 15 of the 16 registers). Packed operands as Kernels/SGEMM.swift lays them
// out with MR = 6, NR = 16: a[p·6 + i], b[p·16 + j]. SGEMM.reference is the oracle the tests
// hold it to.
#include "CKernels.h"
#include <immintrin.h>

int mpq_cpu_has_avx2_fma(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

#if defined(__x86_64__)
#define MPQ_S_STEP(P) { \
    const __m256 b0 = _mm256_loadu_ps(b + (P) * 16), b1 = _mm256_loadu_ps(b + (P) * 16 + 8); \
    __m256 x; \
    x = _mm256_broadcast_ss(a + (P) * 6 + 0); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01); \
    x = _mm256_broadcast_ss(a + (P) * 6 + 1); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11); \
    x = _mm256_broadcast_ss(a + (P) * 6 + 2); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21); \
    x = _mm256_broadcast_ss(a + (P) * 6 + 3); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31); \
    x = _mm256_broadcast_ss(a + (P) * 6 + 4); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41); \
    x = _mm256_broadcast_ss(a + (P) * 6 + 5); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51); }

__attribute__((target("avx2,fma")))
void mpq_sgemm_avx2_6x16(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, float alpha, float beta) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    int64_t p = 0;
    for (; p + 4 <= kc; p += 4) {
        MPQ_S_STEP(0) MPQ_S_STEP(1) MPQ_S_STEP(2) MPQ_S_STEP(3)
        a += 24; b += 64;
    }
    for (; p < kc; p++) {
        MPQ_S_STEP(0)
        a += 6; b += 16;
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#define MPQ_S_OUT(I, R0, R1) { \
        float *row = c + (I) * ldc; \
        __m256 r0 = _mm256_mul_ps(R0, va), r1 = _mm256_mul_ps(R1, va); \
        if (beta != 0) { r0 = _mm256_fmadd_ps(_mm256_loadu_ps(row), vb, r0); r1 = _mm256_fmadd_ps(_mm256_loadu_ps(row + 8), vb, r1); } \
        _mm256_storeu_ps(row, r0); _mm256_storeu_ps(row + 8, r1); }
    MPQ_S_OUT(0, c00, c01) MPQ_S_OUT(1, c10, c11) MPQ_S_OUT(2, c20, c21)
    MPQ_S_OUT(3, c30, c31) MPQ_S_OUT(4, c40, c41) MPQ_S_OUT(5, c50, c51)
#undef MPQ_S_OUT
}
#undef MPQ_S_STEP
#else
void mpq_sgemm_avx2_6x16(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, float alpha, float beta) {
    (void)kc; (void)a; (void)b; (void)c; (void)ldc; (void)alpha; (void)beta;
}
#endif
