// One output pixel of the binary (XNOR-popcount) convolution with AVX2, for CPUs without AVX-512's
// vpopcntq: the same sums as BinaryConv.pixel in Swift (Kernels/BinaryConv.swift, whose plain
// `reference` both are tested against). Each input word, broadcast, meets the same word of 8
// output channels (two ymm per 8-channel block, up to four blocks per pass); popcount(x ⊕ w) per
// byte by two 16-entry table look-ups (vpshufb on the nibbles), added in bytes — at most 8 per
// byte per word, so 31 words fit before the bytes are summed into 64-bit lanes (vpsadbw) — where
// a popcount per word and lane would sum bytes at every step.
#include "CKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2"), always_inline))
static inline __m256i mpq_x2_count(__m256i acc, __m256i d, __m256i table, __m256i nibble) {
    const __m256i lo = _mm256_shuffle_epi8(table, _mm256_and_si256(d, nibble));
    const __m256i hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(d, 4), nibble));
    return _mm256_add_epi8(acc, _mm256_add_epi8(lo, hi));
}

// 4 × 64-bit lanes of a and of b → their low halves as 8 × Int32 (a's four, then b's).
__attribute__((target("avx2"), always_inline))
static inline __m256i mpq_x2_narrow(__m256i a, __m256i b) {
    const __m256i pick = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    const __m128i lo = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(a, pick));
    const __m128i hi = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(b, pick));
    return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

// Blocks 0 … NB − 1 of w (NB constant: 1, 2 or 4; every accumulator in a register) over the
// valid taps and their words: the 64-bit lane sums added into sums[0 … 2·NB).
__attribute__((target("avx2"), always_inline))
static inline void mpq_x2_blocks(const int NB, const uint64_t *start, const int64_t *offsets, const int64_t *tap_index,
                                 int64_t valid, int64_t words, const uint64_t *w, int64_t block_words, __m256i *sums) {
    const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                           0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i nibble = _mm256_set1_epi8(0x0F), zero = _mm256_setzero_si256();
    __m256i c0 = zero, c1 = zero, c2 = zero, c3 = zero, c4 = zero, c5 = zero, c6 = zero, c7 = zero;
    int64_t pending = 0;
#define MPQ_X2_FLUSH \
    sums[0] = _mm256_add_epi64(sums[0], _mm256_sad_epu8(c0, zero)); sums[1] = _mm256_add_epi64(sums[1], _mm256_sad_epu8(c1, zero)); \
    if (NB > 1) { sums[2] = _mm256_add_epi64(sums[2], _mm256_sad_epu8(c2, zero)); sums[3] = _mm256_add_epi64(sums[3], _mm256_sad_epu8(c3, zero)); } \
    if (NB > 2) { sums[4] = _mm256_add_epi64(sums[4], _mm256_sad_epu8(c4, zero)); sums[5] = _mm256_add_epi64(sums[5], _mm256_sad_epu8(c5, zero)); \
                  sums[6] = _mm256_add_epi64(sums[6], _mm256_sad_epu8(c6, zero)); sums[7] = _mm256_add_epi64(sums[7], _mm256_sad_epu8(c7, zero)); } \
    c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = zero;
#define MPQ_X2_COUNT(acc, at) acc = mpq_x2_count(acc, _mm256_xor_si256(v, _mm256_loadu_si256((const __m256i *)(at))), table, nibble);
    for (int64_t t = 0; t < valid; t++) {
        const uint64_t *x = start + offsets[t];
        const uint64_t *wt = w + (tap_index ? tap_index[t] : t) * words * 8;
        for (int64_t q = 0; q < words; q++) {
            const __m256i v = _mm256_set1_epi64x((long long)x[q]);
            const uint64_t *wq = wt + q * 8;
            MPQ_X2_COUNT(c0, wq) MPQ_X2_COUNT(c1, wq + 4)
            if (NB > 1) { MPQ_X2_COUNT(c2, wq + block_words) MPQ_X2_COUNT(c3, wq + block_words + 4) }
            if (NB > 2) {
                MPQ_X2_COUNT(c4, wq + 2 * block_words) MPQ_X2_COUNT(c5, wq + 2 * block_words + 4)
                MPQ_X2_COUNT(c6, wq + 3 * block_words) MPQ_X2_COUNT(c7, wq + 3 * block_words + 4)
            }
            // At most 8 a byte per word: 31 words fit in a byte.
            if (++pending == 31) { MPQ_X2_FLUSH pending = 0; }
        }
    }
    MPQ_X2_FLUSH
#undef MPQ_X2_COUNT
#undef MPQ_X2_FLUSH
}

__attribute__((target("avx2")))
void mpq_xnor_pixel_avx2(const uint64_t *start, const int64_t *offsets, const int64_t *tap_index, int64_t valid, int64_t words,
                         int64_t channels, const uint64_t *weights, int64_t blocks, int64_t taps,
                         const int32_t *mask, int64_t cout, int64_t shift, int32_t *out) {
    const __m256i zero = _mm256_setzero_si256();
    const int64_t block_words = taps * words * 8;  // UInt64 words from one 8-channel block to the next
    const __m256i base = _mm256_set1_epi32((int32_t)(valid * channels));
    const __m128i count_shift = _mm_cvtsi64_si128(shift);
    for (int64_t b0 = 0; b0 < blocks; b0 += 4) {
        const int64_t nb = blocks - b0 < 4 ? blocks - b0 : 4;
        const uint64_t *w = weights + b0 * block_words;
        __m256i s[8] = {zero, zero, zero, zero, zero, zero, zero, zero};
        if (nb == 4) mpq_x2_blocks(4, start, offsets, tap_index, valid, words, w, block_words, s);
        else if (nb == 2) mpq_x2_blocks(2, start, offsets, tap_index, valid, words, w, block_words, s);
        else {
            if (nb == 3) mpq_x2_blocks(2, start, offsets, tap_index, valid, words, w, block_words, s);
            mpq_x2_blocks(1, start, offsets, tap_index, valid, words, w + (nb - 1) * block_words, block_words, s + 2 * (nb - 1));
        }
        for (int64_t k = 0; k < nb; k++) {
            const int64_t block = b0 + k;
            __m256i dots = _mm256_sub_epi32(base, _mm256_slli_epi32(mpq_x2_narrow(s[2 * k], s[2 * k + 1]), 1));
            dots = _mm256_and_si256(_mm256_sll_epi32(dots, count_shift), _mm256_loadu_si256((const __m256i *)(mask + block * 8)));
            const int64_t n = cout - block * 8 < 8 ? cout - block * 8 : 8;
            if (n == 8) _mm256_storeu_si256((__m256i *)(out + block * 8), dots);
            else {
                int32_t tmp[8];
                _mm256_storeu_si256((__m256i *)tmp, dots);
                for (int64_t i = 0; i < n; i++) out[block * 8 + i] = tmp[i];
            }
        }
    }
}
#else
void mpq_xnor_pixel_avx2(const uint64_t *start, const int64_t *offsets, const int64_t *tap_index, int64_t valid, int64_t words,
                         int64_t channels, const uint64_t *weights, int64_t blocks, int64_t taps,
                         const int32_t *mask, int64_t cout, int64_t shift, int32_t *out) {
    (void)start; (void)offsets; (void)tap_index; (void)valid; (void)words; (void)channels; (void)weights; (void)blocks; (void)taps;
    (void)mask; (void)cout; (void)shift; (void)out;
}
#endif
