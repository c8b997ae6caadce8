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

// The epilogue on one row's 16 sums: bias, then (modes 1, 2) the dyadic multiply in Int64 lanes
// (even and odd columns apart, as vpmuldq multiplies the low halves of 64-bit lanes), rounding
// half up, arithmetic shift, clamp, and the store.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
static inline void mpq_epilogue_row(__m512i acc, const mpq_epilogue *e, int64_t col0, __mmask16 mask, void *out) {
    __m512i y = _mm512_add_epi32(acc, _mm512_maskz_loadu_epi32(mask, e->bias + col0));
    if (e->mode == 0) { _mm512_mask_storeu_epi32(out, mask, y); return; }
    const __m512i m = _mm512_maskz_loadu_epi32(mask, e->mult + col0);
    const __m512i s = _mm512_maskz_loadu_epi32(mask, e->shift + col0);
    const __m512i low = _mm512_set1_epi64(0xFFFFFFFFll), one = _mm512_set1_epi64(1);
    const __m512i se = _mm512_and_si512(s, low), so = _mm512_srli_epi64(s, 32);
    __m512i pe = _mm512_mul_epi32(y, m);
    __m512i po = _mm512_mul_epi32(_mm512_srli_epi64(y, 32), _mm512_srli_epi64(m, 32));
    pe = _mm512_srav_epi64(_mm512_add_epi64(pe, _mm512_sllv_epi64(one, _mm512_sub_epi64(se, one))), se);
    po = _mm512_srav_epi64(_mm512_add_epi64(po, _mm512_sllv_epi64(one, _mm512_sub_epi64(so, one))), so);
    const __m512i lo = _mm512_set1_epi64(e->lo), hi = _mm512_set1_epi64(e->hi);
    pe = _mm512_min_epi64(_mm512_max_epi64(pe, lo), hi);
    po = _mm512_min_epi64(_mm512_max_epi64(po, lo), hi);
    __m512i q = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
    if (e->mode == 1) _mm512_mask_storeu_epi32(out, mask, q);
    else _mm_mask_storeu_epi8(out, mask, _mm512_cvtepi32_epi8(q));
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
void mpq_igemm_vnni_tile(int64_t rows, int64_t cols, int64_t nb, int64_t kgroups, const uint8_t *a,
                         const int8_t *b0, const int8_t *b1, const mpq_epilogue *e, int64_t column, void *out, int64_t ldo) {
    __m512i acc[12][2];
    for (int i = 0; i < 12; i++) { acc[i][0] = _mm512_setzero_si512(); acc[i][1] = _mm512_setzero_si512(); }
    if (nb == 2) {
        for (int64_t g = 0; g < kgroups; g++) {
            const __m512i v0 = _mm512_loadu_si512((const void *)(b0 + g * 64));
            const __m512i v1 = _mm512_loadu_si512((const void *)(b1 + g * 64));
            const int32_t *ag = (const int32_t *)(a + g * 48);
            for (int i = 0; i < 12; i++) {
                const __m512i av = _mm512_set1_epi32(ag[i]);
                acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], av, v0);
                acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], av, v1);
            }
        }
    } else {
        for (int64_t g = 0; g < kgroups; g++) {
            const __m512i v0 = _mm512_loadu_si512((const void *)(b0 + g * 64));
            const int32_t *ag = (const int32_t *)(a + g * 48);
            for (int i = 0; i < 12; i++) acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], _mm512_set1_epi32(ag[i]), v0);
        }
    }
    const int64_t bytes = e->mode == 2 ? 1 : 4;
    for (int64_t j = 0; j < nb; j++) {
        const int64_t left = cols - 16 * j;
        if (left <= 0) break;
        const __mmask16 mask = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        for (int64_t i = 0; i < rows; i++) {
            mpq_epilogue_row(acc[i][j], e, column + 16 * j, mask, (char *)out + (i * ldo + 16 * j) * bytes);
        }
    }
}
#else
void mpq_igemm_vnni_tile(int64_t rows, int64_t cols, int64_t nb, int64_t kgroups, const uint8_t *a,
                         const int8_t *b0, const int8_t *b1, const mpq_epilogue *e, int64_t column, void *out, int64_t ldo) {
    (void)rows; (void)cols; (void)nb; (void)kgroups; (void)a; (void)b0; (void)b1; (void)e; (void)column; (void)out; (void)ldo;
}
void mpq_igemm_u8s8_vnni_12x32(int64_t kgroups, const uint8_t *a, const int8_t *b,
                                int32_t *c, int64_t ldc, int accumulate) {
    (void)kgroups; (void)a; (void)b; (void)c; (void)ldc; (void)accumulate;
}
#endif
