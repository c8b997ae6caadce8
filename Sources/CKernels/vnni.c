// AVX-512 VNNI is the one instruction here Swift cannot reach: vpdpbusd multiplies 64 u8×s8
// pairs and adds them in groups of four into 16 int32 lanes. Kernels/IGEMM+MicroKernel.swift
// holds the Swift kernel this one is measured and tested against.
#include "CKernels.h"
#include <immintrin.h>

int mpq_cpu_has_avx512_vnni(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
#else
    return 0;
#endif
}

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512vnni")))
void mpq_igemm_u8s8_vnni_12x32(int64_t kgroups, const uint8_t *a, const int8_t *b,
                                int32_t *c, int64_t ldc, int accumulate) {
    __m512i acc[12][2];
    for (int i = 0; i < 12; i++) { acc[i][0] = _mm512_setzero_si512(); acc[i][1] = _mm512_setzero_si512(); }
    for (int64_t g = 0; g < kgroups; g++) {
        __m512i b0 = _mm512_loadu_si512((const void *)(b + g * 128));
        __m512i b1 = _mm512_loadu_si512((const void *)(b + g * 128 + 64));
        const int32_t *ag = (const int32_t *)(a + g * 48);
        for (int i = 0; i < 12; i++) {
            __m512i av = _mm512_set1_epi32(ag[i]);
            acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], av, b0);
            acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], av, b1);
        }
    }
    for (int i = 0; i < 12; i++) {
        int32_t *row = c + i * ldc;
        if (accumulate) {
            acc[i][0] = _mm512_add_epi32(acc[i][0], _mm512_loadu_si512(row));
            acc[i][1] = _mm512_add_epi32(acc[i][1], _mm512_loadu_si512(row + 16));
        }
        _mm512_storeu_si512(row, acc[i][0]);
        _mm512_storeu_si512(row + 16, acc[i][1]);
    }
}
#else
void mpq_igemm_u8s8_vnni_12x32(int64_t kgroups, const uint8_t *a, const int8_t *b,
                                int32_t *c, int64_t ldc, int accumulate) {
    (void)kgroups; (void)a; (void)b; (void)c; (void)ldc; (void)accumulate;
}
#endif
