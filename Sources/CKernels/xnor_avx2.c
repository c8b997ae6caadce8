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

// The blocks b0 … b0 + NB − 1 (NB constant: 1, 2 or 4) for one-word pixels (≤ 64 channels, as
// every layer of the zoo's binary networks): every accumulator stays in a register; bytes are
// summed after each run of 31 taps.
__attribute__((target("avx2"), always_inline))
static inline void mpq_x2_one_word(const int NB, const uint64_t *start, const int64_t *offsets, const int64_t *tap_index,
                                   int64_t valid, const uint64_t *w, int64_t block_words, __m256i sums[8]) {
    const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                           0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i nibble = _mm256_set1_epi8(0x0F), zero = _mm256_setzero_si256();
    for (int64_t t0 = 0; t0 < valid; t0 += 31) {
        const int64_t t1 = valid - t0 < 31 ? valid : t0 + 31;
        __m256i c0 = zero, c1 = zero, c2 = zero, c3 = zero, c4 = zero, c5 = zero, c6 = zero, c7 = zero;
        for (int64_t t = t0; t < t1; t++) {
            const __m256i v = _mm256_set1_epi64x((long long)start[offsets[t]]);
            const uint64_t *wt = w + (tap_index ? tap_index[t] : t) * 8;
            c0 = mpq_x2_count(c0, _mm256_xor_si256(v, _mm256_loadu_si256((const __m256i *)wt)), table, nibble);
            c1 = mpq_x2_count(c1, _mm256_xor_si256(v, _mm256_loadu_si256((const __m256i *)(wt + 4))), table, nibble);
            if (NB > 1) {
                c2 = mpq_x2_count(c2, _mm256_xor_si256(v, _mm256_loadu_si256((const __m256i *)(wt + block_words))), table, nibble);
                c3 = mpq_x2_count(c3, _mm256_xor_si256(v, _mm256_loadu_si256((const __m256i *)(wt + block_words + 4))), table, nibble);
            }
            if (NB > 2) {
                c4 = mpq_x2_count(c4, _mm256_xor_si256(v, _mm256_loadu_si256((const __m256i *)(wt + 2 * block_words))), table, nibble);
                c5 = mpq_x2_count(c5, _mm256_xor_si256(v, _mm256_loadu_si256((const __m256i *)(wt + 2 * block_words + 4))), table, nibble);
                c6 = mpq_x2_count(c6, _mm256_xor_si256(v, _mm256_loadu_si256((const __m256i *)(wt + 3 * block_words))), table, nibble);
                c7 = mpq_x2_count(c7, _mm256_xor_si256(v, _mm256_loadu_si256((const __m256i *)(wt + 3 * block_words + 4))), table, nibble);
            }
        }
        sums[0] = _mm256_add_epi64(sums[0], _mm256_sad_epu8(c0, zero)); sums[1] = _mm256_add_epi64(sums[1], _mm256_sad_epu8(c1, zero));
        if (NB > 1) { sums[2] = _mm256_add_epi64(sums[2], _mm256_sad_epu8(c2, zero)); sums[3] = _mm256_add_epi64(sums[3], _mm256_sad_epu8(c3, zero)); }
        if (NB > 2) {
            sums[4] = _mm256_add_epi64(sums[4], _mm256_sad_epu8(c4, zero)); sums[5] = _mm256_add_epi64(sums[5], _mm256_sad_epu8(c5, zero));
            sums[6] = _mm256_add_epi64(sums[6], _mm256_sad_epu8(c6, zero)); sums[7] = _mm256_add_epi64(sums[7], _mm256_sad_epu8(c7, zero));
        }
    }
}

__attribute__((target("avx2")))
void mpq_xnor_pixel_avx2(const uint64_t *start, const int64_t *offsets, const int64_t *tap_index, int64_t valid, int64_t words,
                         int64_t channels, const uint64_t *weights, int64_t blocks, int64_t taps, const int32_t *bias,
                         const int32_t *mask, int64_t cout, int64_t shift, int32_t *out) {
    const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                           0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i nibble = _mm256_set1_epi8(0x0F), zero = _mm256_setzero_si256();
    const int64_t block_words = taps * words * 8;  // UInt64 words from one 8-channel block to the next
    const __m256i base = _mm256_set1_epi32((int32_t)(valid * channels));
    const __m128i count_shift = _mm_cvtsi64_si128(shift);
    for (int64_t b0 = 0; b0 < blocks; b0 += 4) {
        const int64_t nb = blocks - b0 < 4 ? blocks - b0 : 4;
        const uint64_t *w = weights + b0 * block_words;
        __m256i c[8], s[8];
        for (int i = 0; i < 8; i++) { c[i] = zero; s[i] = zero; }
        int64_t pending = 0;
        if (words == 1) {
            // Counted into s; c stays zero.
            if (nb == 4) mpq_x2_one_word(4, start, offsets, tap_index, valid, w, block_words, s);
            else if (nb == 3) {
                mpq_x2_one_word(2, start, offsets, tap_index, valid, w, block_words, s);
                mpq_x2_one_word(1, start, offsets, tap_index, valid, w + 2 * block_words, block_words, s + 4);
            } else if (nb == 2) mpq_x2_one_word(2, start, offsets, tap_index, valid, w, block_words, s);
            else mpq_x2_one_word(1, start, offsets, tap_index, valid, w, block_words, s);
        }
        for (int64_t t = 0; t < (words == 1 ? 0 : valid); t++) {
            const uint64_t *x = start + offsets[t];
            const uint64_t *wt = w + (tap_index ? tap_index[t] : t) * words * 8;
            for (int64_t q = 0; q < words; q++) {
                const __m256i v = _mm256_set1_epi64x((long long)x[q]);
                const uint64_t *wq = wt + q * 8;
                // nb is 1…4: the unused accumulators stay zero and are not stored.
                c[0] = mpq_x2_count(c[0], _mm256_xor_si256(v, _mm256_loadu_si256((const __m256i *)wq)), table, nibble);
                c[1] = mpq_x2_count(c[1], _mm256_xor_si256(v, _mm256_loadu_si256((const __m256i *)(wq + 4))), table, nibble);
                if (nb > 1) {
                    c[2] = mpq_x2_count(c[2], _mm256_xor_si256(v, _mm256_loadu_si256((const __m256i *)(wq + block_words))), table, nibble);
                    c[3] = mpq_x2_count(c[3], _mm256_xor_si256(v, _mm256_loadu_si256((const __m256i *)(wq + block_words + 4))), table, nibble);
                }
                if (nb > 2) {
                    c[4] = mpq_x2_count(c[4], _mm256_xor_si256(v, _mm256_loadu_si256((const __m256i *)(wq + 2 * block_words))), table, nibble);
                    c[5] = mpq_x2_count(c[5], _mm256_xor_si256(v, _mm256_loadu_si256((const __m256i *)(wq + 2 * block_words + 4))), table, nibble);
                }
                if (nb > 3) {
                    c[6] = mpq_x2_count(c[6], _mm256_xor_si256(v, _mm256_loadu_si256((const __m256i *)(wq + 3 * block_words))), table, nibble);
                    c[7] = mpq_x2_count(c[7], _mm256_xor_si256(v, _mm256_loadu_si256((const __m256i *)(wq + 3 * block_words + 4))), table, nibble);
                }
                if (++pending == 31) {
                    for (int i = 0; i < 8; i++) { s[i] = _mm256_add_epi64(s[i], _mm256_sad_epu8(c[i], zero)); c[i] = zero; }
                    pending = 0;
                }
            }
        }
        for (int64_t k = 0; k < nb; k++) {
            const __m256i a = _mm256_add_epi64(s[2 * k], _mm256_sad_epu8(c[2 * k], zero));
            const __m256i b = _mm256_add_epi64(s[2 * k + 1], _mm256_sad_epu8(c[2 * k + 1], zero));
            const int64_t block = b0 + k;
            __m256i dots = _mm256_sub_epi32(base, _mm256_slli_epi32(mpq_x2_narrow(a, b), 1));
            dots = _mm256_and_si256(_mm256_sll_epi32(dots, count_shift), _mm256_loadu_si256((const __m256i *)(mask + block * 8)));
            dots = _mm256_add_epi32(dots, _mm256_loadu_si256((const __m256i *)(bias + block * 8)));
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
                         int64_t channels, const uint64_t *weights, int64_t blocks, int64_t taps, const int32_t *bias,
                         const int32_t *mask, int64_t cout, int64_t shift, int32_t *out) {
    (void)start; (void)offsets; (void)tap_index; (void)valid; (void)words; (void)channels; (void)weights; (void)blocks; (void)taps;
    (void)bias; (void)mask; (void)cout; (void)shift; (void)out;
}
#endif
