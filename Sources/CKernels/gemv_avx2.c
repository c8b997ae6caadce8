// The batch-1 products of vnni.c (mpq_gemv_*_vnni) for CPUs with AVX2 but no AVX-512 VNNI: the
// same layouts, rows and results, exactly. Without vpdpbusd the multiply is vpmaddubsw (u8 × s8,
// adjacent pairs added into Int16, saturating) or vpmaddwd (Int16 × Int16 into Int32, exact):
//  - s8: x is widened to Int16 once per call by the caller (`x16`), each row's codes per load
//    (vpmovsxbw) and multiplied by vpmaddwd — a pair of 8-bit weights times 255 would saturate
//    vpmaddubsw.
//  - u4 / u2: the codes are 0…15 / 0…3, so a vpmaddubsw pair is at most 2·255·15 = 7,650 /
//    2·255·3 = 1,530: exact. Pair sums are added in Int16 for 4 / 8 blocks (30,600 / 24,480 <
//    32,767) and then widened to Int32 by vpmaddwd with ones: narrower weights are fewer bytes
//    to read and fewer multiplies.
// Kernels/GEMV.swift holds the plain reference these are tested against.
#include "CKernels.h"
#include <immintrin.h>

#if defined(__x86_64__)
__attribute__((target("avx2"), always_inline))
static inline int32_t mpq_g2_hsum(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

__attribute__((target("avx2"), always_inline))
static inline __m256i mpq_g2_s8(__m256i acc, const int8_t *w, const int16_t *x) {
    const __m256i v = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(v, _mm256_loadu_si256((const __m256i *)x)));
}

__attribute__((target("avx2")))
void mpq_gemv_s8_avx2(int64_t j0, int64_t j1, int64_t blocks, const int16_t *x16, const int8_t *w, int64_t ldw, int32_t *y) {
    for (int64_t j = j0; j < j1; j++) {
        const int8_t *row = w + j * ldw;
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t b = 0; b < blocks; b++) {
            const int8_t *wb = row + b * 64;
            const int16_t *xb = x16 + b * 64;
            a0 = mpq_g2_s8(a0, wb, xb);
            a1 = mpq_g2_s8(a1, wb + 16, xb + 16);
            a2 = mpq_g2_s8(a2, wb + 32, xb + 32);
            a3 = mpq_g2_s8(a3, wb + 48, xb + 48);
        }
        y[j] = mpq_g2_hsum(_mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3)));
    }
}

__attribute__((target("avx2"), always_inline))
static inline __m256i mpq_g2_mul(const uint8_t *x, __m256i codes) {
    return _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)x), codes);
}

__attribute__((target("avx2")))
void mpq_gemv_u4_avx2(int64_t j0, int64_t j1, int64_t blocks, const uint8_t *x, const uint8_t *w, int64_t ldw, int32_t *y) {
    const __m256i mask = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    for (int64_t j = j0; j < j1; j++) {
        const uint8_t *row = w + j * ldw;
        __m256i acc = _mm256_setzero_si256();
        for (int64_t b0 = 0; b0 < blocks; b0 += 4) {
            const int64_t b1 = b0 + 4 < blocks ? b0 + 4 : blocks;
            __m256i h0 = _mm256_setzero_si256(), h1 = h0, h2 = h0, h3 = h0;
            for (int64_t b = b0; b < b1; b++) {
                const __m256i v0 = _mm256_loadu_si256((const __m256i *)(row + b * 64));
                const __m256i v1 = _mm256_loadu_si256((const __m256i *)(row + b * 64 + 32));
                const uint8_t *xb = x + b * 128;
                h0 = _mm256_add_epi16(h0, mpq_g2_mul(xb, _mm256_and_si256(v0, mask)));
                h1 = _mm256_add_epi16(h1, mpq_g2_mul(xb + 32, _mm256_and_si256(v1, mask)));
                h2 = _mm256_add_epi16(h2, mpq_g2_mul(xb + 64, _mm256_and_si256(_mm256_srli_epi16(v0, 4), mask)));
                h3 = _mm256_add_epi16(h3, mpq_g2_mul(xb + 96, _mm256_and_si256(_mm256_srli_epi16(v1, 4), mask)));
            }
            acc = _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(h0, ones), _mm256_madd_epi16(h1, ones)));
            acc = _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(h2, ones), _mm256_madd_epi16(h3, ones)));
        }
        y[j] = mpq_g2_hsum(acc);
    }
}

__attribute__((target("avx2")))
void mpq_gemv_u2_avx2(int64_t j0, int64_t j1, int64_t blocks, const uint8_t *x, const uint8_t *w, int64_t ldw, int32_t *y) {
    const __m256i mask = _mm256_set1_epi8(0x03), ones = _mm256_set1_epi16(1);
    for (int64_t j = j0; j < j1; j++) {
        const uint8_t *row = w + j * ldw;
        __m256i acc = _mm256_setzero_si256();
        for (int64_t b0 = 0; b0 < blocks; b0 += 8) {
            const int64_t b1 = b0 + 8 < blocks ? b0 + 8 : blocks;
            // Plane p (bits 2p, 2p + 1) of both halves into h[p]: two pair sums a block, 8 blocks.
            __m256i h0 = _mm256_setzero_si256(), h1 = h0, h2 = h0, h3 = h0;
            for (int64_t b = b0; b < b1; b++) {
                const __m256i v0 = _mm256_loadu_si256((const __m256i *)(row + b * 64));
                const __m256i v1 = _mm256_loadu_si256((const __m256i *)(row + b * 64 + 32));
                const uint8_t *xb = x + b * 256;
                h0 = _mm256_add_epi16(h0, _mm256_add_epi16(mpq_g2_mul(xb, _mm256_and_si256(v0, mask)),
                                                           mpq_g2_mul(xb + 32, _mm256_and_si256(v1, mask))));
                h1 = _mm256_add_epi16(h1, _mm256_add_epi16(mpq_g2_mul(xb + 64, _mm256_and_si256(_mm256_srli_epi16(v0, 2), mask)),
                                                           mpq_g2_mul(xb + 96, _mm256_and_si256(_mm256_srli_epi16(v1, 2), mask))));
                h2 = _mm256_add_epi16(h2, _mm256_add_epi16(mpq_g2_mul(xb + 128, _mm256_and_si256(_mm256_srli_epi16(v0, 4), mask)),
                                                           mpq_g2_mul(xb + 160, _mm256_and_si256(_mm256_srli_epi16(v1, 4), mask))));
                h3 = _mm256_add_epi16(h3, _mm256_add_epi16(mpq_g2_mul(xb + 192, _mm256_and_si256(_mm256_srli_epi16(v0, 6), mask)),
                                                           mpq_g2_mul(xb + 224, _mm256_and_si256(_mm256_srli_epi16(v1, 6), mask))));
            }
            acc = _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(h0, ones), _mm256_madd_epi16(h1, ones)));
            acc = _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(h2, ones), _mm256_madd_epi16(h3, ones)));
        }
        y[j] = mpq_g2_hsum(acc);
    }
}
#else
void mpq_gemv_s8_avx2(int64_t j0, int64_t j1, int64_t blocks, const int16_t *x16, const int8_t *w, int64_t ldw, int32_t *y) {
    (void)j0; (void)j1; (void)blocks; (void)x16; (void)w; (void)ldw; (void)y;
}
void mpq_gemv_u4_avx2(int64_t j0, int64_t j1, int64_t blocks, const uint8_t *x, const uint8_t *w, int64_t ldw, int32_t *y) {
    (void)j0; (void)j1; (void)blocks; (void)x; (void)w; (void)ldw; (void)y;
}
void mpq_gemv_u2_avx2(int64_t j0, int64_t j1, int64_t blocks, const uint8_t *x, const uint8_t *w, int64_t ldw, int32_t *y) {
    (void)j0; (void)j1; (void)blocks; (void)x; (void)w; (void)ldw; (void)y;
}
#endif
