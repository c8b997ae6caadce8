// The int8 GEMM micro-kernel of IGEMM (mpq_igemm_u8s8_vnni_12x32 in vnni.c) for CPUs with AVX2
// but no VNNI: the same 12 × 32 tile on the same slivers — A: a[(g·12 + i)·4 + t] unsigned codes,
// B: b[(g·32 + j)·4 + t] signed codes, g < kgroups groups of 4 — and the same sums, exactly.
// vpmaddubsw would saturate on 8-bit weights, so both sides are widened to Int16 (A once per
// call, B eight columns at a time) and multiplied by vpmaddwd, 4 rows × 8 columns a pass: 8
// accumulators, each 4 columns × two pair sums, folded to 8 column sums at the end.
#include "CKernels.h"
#include <immintrin.h>

#if defined(__x86_64__)
// Groups per pass (the stack buffers: 12 KiB of A, 8 KiB of B); IGEMM.kc = 512 is 128 groups.
#define MPQ_IG2_GROUPS 128

__attribute__((target("avx2"), always_inline))
static inline __m256i mpq_ig2_fold(__m256i lo4, __m256i hi4) {
    // hadd: [c0 c1 c4 c5 | c2 c3 c6 c7]; 64-bit elements (0, 2, 1, 3) put them in order.
    return _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo4, hi4), 0xD8);
}

__attribute__((target("avx2")))
static void mpq_ig2_pass(int64_t kgroups, const uint8_t *a, const int8_t *b, int32_t *c, int64_t ldc, int accumulate) {
    int16_t a16[MPQ_IG2_GROUPS * 48] __attribute__((aligned(32)));
    int16_t b16[MPQ_IG2_GROUPS * 32] __attribute__((aligned(32)));
    for (int64_t p = 0; p < kgroups * 48; p += 16)
        _mm256_store_si256((__m256i *)(a16 + p), _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(a + p))));
    for (int64_t q = 0; q < 4; q++) {
        for (int64_t g = 0; g < kgroups; g++) {
            const int8_t *src = b + g * 128 + q * 32;
            _mm256_store_si256((__m256i *)(b16 + g * 32), _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)src)));
            _mm256_store_si256((__m256i *)(b16 + g * 32 + 16), _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(src + 16))));
        }
        for (int64_t r = 0; r < 12; r += 4) {
            __m256i s0a = _mm256_setzero_si256(), s0b = s0a, s1a = s0a, s1b = s0a, s2a = s0a, s2b = s0a, s3a = s0a, s3b = s0a;
            for (int64_t g = 0; g < kgroups; g++) {
                const __m256i v0 = _mm256_load_si256((const __m256i *)(b16 + g * 32));
                const __m256i v1 = _mm256_load_si256((const __m256i *)(b16 + g * 32 + 16));
                const int16_t *ag = a16 + g * 48 + r * 4;
                int64_t x0, x1, x2, x3;
                __builtin_memcpy(&x0, ag, 8); __builtin_memcpy(&x1, ag + 4, 8);
                __builtin_memcpy(&x2, ag + 8, 8); __builtin_memcpy(&x3, ag + 12, 8);
                const __m256i a0 = _mm256_set1_epi64x(x0), a1 = _mm256_set1_epi64x(x1);
                const __m256i a2 = _mm256_set1_epi64x(x2), a3 = _mm256_set1_epi64x(x3);
                s0a = _mm256_add_epi32(s0a, _mm256_madd_epi16(a0, v0)); s0b = _mm256_add_epi32(s0b, _mm256_madd_epi16(a0, v1));
                s1a = _mm256_add_epi32(s1a, _mm256_madd_epi16(a1, v0)); s1b = _mm256_add_epi32(s1b, _mm256_madd_epi16(a1, v1));
                s2a = _mm256_add_epi32(s2a, _mm256_madd_epi16(a2, v0)); s2b = _mm256_add_epi32(s2b, _mm256_madd_epi16(a2, v1));
                s3a = _mm256_add_epi32(s3a, _mm256_madd_epi16(a3, v0)); s3b = _mm256_add_epi32(s3b, _mm256_madd_epi16(a3, v1));
            }
            const __m256i sums[4] = {mpq_ig2_fold(s0a, s0b), mpq_ig2_fold(s1a, s1b), mpq_ig2_fold(s2a, s2b), mpq_ig2_fold(s3a, s3b)};
            for (int64_t i = 0; i < 4; i++) {
                int32_t *row = c + (r + i) * ldc + q * 8;
                __m256i v = sums[i];
                if (accumulate) v = _mm256_add_epi32(v, _mm256_loadu_si256((const __m256i *)row));
                _mm256_storeu_si256((__m256i *)row, v);
            }
        }
    }
}

__attribute__((target("avx2")))
void mpq_igemm_u8s8_avx2_12x32(int64_t kgroups, const uint8_t *a, const int8_t *b, int32_t *c, int64_t ldc, int accumulate) {
    for (int64_t g0 = 0; g0 < kgroups; g0 += MPQ_IG2_GROUPS) {
        const int64_t n = kgroups - g0 < MPQ_IG2_GROUPS ? kgroups - g0 : MPQ_IG2_GROUPS;
        mpq_ig2_pass(n, a + g0 * 48, b + g0 * 128, c, ldc, g0 > 0 || accumulate);
    }
}
#undef MPQ_IG2_GROUPS
#else
void mpq_igemm_u8s8_avx2_12x32(int64_t kgroups, const uint8_t *a, const int8_t *b, int32_t *c, int64_t ldc, int accumulate) {
    (void)kgroups; (void)a; (void)b; (void)c; (void)ldc; (void)accumulate;
}
#endif
