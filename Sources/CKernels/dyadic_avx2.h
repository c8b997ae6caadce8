// The dyadic requantization of Int32 lanes with AVX2, shared by the engine's convolution tile
// (conv_avx2.c) and its elementwise steps (requantize_avx2.c): (y·m + 2^(s−1)) >> s computed in
// Int64 and saturated to Int32, exactly as Dyadic.apply in Swift followed by the clamp.
#ifndef MPQ_DYADIC_AVX2_H
#define MPQ_DYADIC_AVX2_H
#include <immintrin.h>
#include <stdint.h>

// Arithmetic right shift of 64-bit lanes by per-lane counts 1…63 (AVX2 has only the logical one).
__attribute__((target("avx2"), always_inline))
static inline __m256i mpq_i2_sra64(__m256i x, __m256i s) {
    const __m256i sign = _mm256_cmpgt_epi64(_mm256_setzero_si256(), x);
    return _mm256_xor_si256(_mm256_srlv_epi64(_mm256_xor_si256(x, sign), s), sign);
}

__attribute__((target("avx2"), always_inline))
static inline __m256i mpq_i2_clamp64(__m256i x, __m256i lo, __m256i hi) {
    x = _mm256_blendv_epi8(x, lo, _mm256_cmpgt_epi64(lo, x));
    return _mm256_blendv_epi8(x, hi, _mm256_cmpgt_epi64(x, hi));
}

// Dyadic requantization of 8 Int32 lanes, (y·m + 2^(s−1)) >> s in Int64 saturated to Int32, as
// even and odd 64-bit lanes (vpmuldq multiplies the low halves), packed back to 8 Int32 lanes.
__attribute__((target("avx2"), always_inline))
static inline __m256i mpq_i2_dyadic(__m256i y, __m256i m, __m256i s) {
    const __m256i low = _mm256_set1_epi64x(0xFFFFFFFFll), one = _mm256_set1_epi64x(1);
    const __m256i i32min = _mm256_set1_epi64x(INT32_MIN), i32max = _mm256_set1_epi64x(INT32_MAX);
    const __m256i se = _mm256_and_si256(s, low), so = _mm256_srli_epi64(s, 32);
    __m256i pe = _mm256_mul_epi32(y, m);
    __m256i po = _mm256_mul_epi32(_mm256_srli_epi64(y, 32), _mm256_srli_epi64(m, 32));
    pe = mpq_i2_sra64(_mm256_add_epi64(pe, _mm256_sllv_epi64(one, _mm256_sub_epi64(se, one))), se);
    po = mpq_i2_sra64(_mm256_add_epi64(po, _mm256_sllv_epi64(one, _mm256_sub_epi64(so, one))), so);
    pe = mpq_i2_clamp64(pe, i32min, i32max);
    po = mpq_i2_clamp64(po, i32min, i32max);
    return _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
}

// The same for shifts of 32 or more and multipliers other than INT32_MIN (e->shift32; every
// layer whose scale ratio is below one half): v = y·m has |v| < 2^62, so t = v >> 31 fits in
// Int32 and (v + 2^(s−1)) >> s = (t >> u) + bit u−1 of t with u = s − 31 (rounding half up,
// shifts of 32 and more in vpsravd filling with the sign); |result| ≤ |y|, so nothing saturates.
__attribute__((target("avx2"), always_inline))
static inline __m256i mpq_i2_dyadic32(__m256i y, __m256i m, __m256i s) {
    const __m256i pe = _mm256_mul_epi32(y, m);
    const __m256i po = _mm256_mul_epi32(_mm256_srli_epi64(y, 32), _mm256_srli_epi64(m, 32));
    // Bits 31…62 of each product: even lanes shifted down, odd lanes' moved up into the high dword.
    const __m256i t = _mm256_blend_epi32(_mm256_srli_epi64(pe, 31), _mm256_slli_epi64(po, 1), 0xAA);
    const __m256i u = _mm256_sub_epi32(s, _mm256_set1_epi32(31));
    const __m256i half = _mm256_and_si256(_mm256_srav_epi32(t, _mm256_sub_epi32(u, _mm256_set1_epi32(1))), _mm256_set1_epi32(1));
    return _mm256_add_epi32(_mm256_srav_epi32(t, u), half);
}

#endif
