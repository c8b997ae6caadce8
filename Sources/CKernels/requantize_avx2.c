// The integer engine's elementwise steps with AVX2 (those that are not a layer's epilogue): Int32
// sums requantized by per-channel dyadic numbers into sums (a residual add's branches) or into
// codes (a quantize step), and the signs of sums packed 64 to a word (a binary layer's input).
// Kernels/Requantize.swift holds the plain loops these are tested against.
#include "CKernels.h"

#if defined(__x86_64__)
#include "dyadic_avx2.h"

// Lanes 0…n−1 of 8 (all for n ≥ 8).
__attribute__((target("avx2"), always_inline))
static inline __m256i mpq_rq_mask(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n < 8 ? n : 8)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// `form`: 0 leaves y as it is (every m = 1, s = 0), 1 the general dyadic, 2 its short form (every s ≥ 32).
__attribute__((target("avx2"), always_inline))
static inline __m256i mpq_rq_scale(__m256i y, const int32_t *m, const int32_t *s, int64_t c, int32_t form) {
    if (form == 0) return y;
    const __m256i mv = _mm256_loadu_si256((const __m256i *)(m + c)), sv = _mm256_loadu_si256((const __m256i *)(s + c));
    return form == 2 ? mpq_i2_dyadic32(y, mv, sv) : mpq_i2_dyadic(y, mv, sv);
}

// Whole vectors by plain loads and stores (a masked store is slow on AMD cores), the tail masked.
__attribute__((target("avx2"), always_inline))
static inline void mpq_rq_sums_row(const int32_t *x, int32_t *y, int64_t channels, const int32_t *m, const int32_t *s,
                                   int32_t form, int32_t accumulate) {
    int64_t c = 0;
    for (; c + 8 <= channels; c += 8) {
        __m256i q = mpq_rq_scale(_mm256_loadu_si256((const __m256i *)(x + c)), m, s, c, form);
        if (accumulate) q = _mm256_add_epi32(q, _mm256_loadu_si256((const __m256i *)(y + c)));
        _mm256_storeu_si256((__m256i *)(y + c), q);
    }
    if (c < channels) {
        const __m256i live = mpq_rq_mask(channels - c);
        __m256i q = mpq_rq_scale(_mm256_maskload_epi32(x + c, live), m, s, c, form);
        if (accumulate) q = _mm256_add_epi32(q, _mm256_maskload_epi32(y + c, live));
        _mm256_maskstore_epi32(y + c, live, q);
    }
}

__attribute__((target("avx2")))
void mpq_requantize_sums_avx2(int64_t pixels, int64_t channels, const int32_t *src, int64_t src_stride, int32_t *dst,
                              int64_t dst_stride, const int32_t *m, const int32_t *s, int32_t form, int32_t accumulate) {
    for (int64_t p = 0; p < pixels; p++) {
        const int32_t *x = src + p * src_stride;
        int32_t *y = dst + p * dst_stride;
        // The branches are hoisted so each loop has its form and accumulation fixed.
        if (form == 0) {
            if (accumulate) mpq_rq_sums_row(x, y, channels, m, s, 0, 1); else mpq_rq_sums_row(x, y, channels, m, s, 0, 0);
        } else if (form == 1) {
            if (accumulate) mpq_rq_sums_row(x, y, channels, m, s, 1, 1); else mpq_rq_sums_row(x, y, channels, m, s, 1, 0);
        } else {
            if (accumulate) mpq_rq_sums_row(x, y, channels, m, s, 2, 1); else mpq_rq_sums_row(x, y, channels, m, s, 2, 0);
        }
    }
}

__attribute__((target("avx2")))
void mpq_requantize_codes_avx2(int64_t pixels, int64_t channels, const int32_t *src, int64_t src_stride, uint8_t *dst,
                               int64_t dst_stride, const int32_t *m, const int32_t *s, int32_t form, int32_t lo, int32_t hi) {
    const __m256i lov = _mm256_set1_epi32(lo), hiv = _mm256_set1_epi32(hi), byte = _mm256_set1_epi32(0xFF);
    for (int64_t p = 0; p < pixels; p++) {
        const int32_t *x = src + p * src_stride;
        uint8_t *y = dst + p * dst_stride;
        for (int64_t c = 0; c < channels; c += 8) {
            const int64_t n = channels - c < 8 ? channels - c : 8;
            const __m256i v = n == 8 ? _mm256_loadu_si256((const __m256i *)(x + c)) : _mm256_maskload_epi32(x + c, mpq_rq_mask(n));
            __m256i q = mpq_rq_scale(v, m, s, c, form);
            // Clamped, then each lane's low byte (the code's bit pattern), packed without saturation.
            q = _mm256_and_si256(_mm256_min_epi32(_mm256_max_epi32(q, lov), hiv), byte);
            const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
            const __m128i b = _mm_packus_epi16(w, w);
            if (n == 8) _mm_storel_epi64((__m128i *)(y + c), b);
            else {
                uint8_t tmp[16];
                _mm_storeu_si128((__m128i *)tmp, b);
                __builtin_memcpy(y + c, tmp, (size_t)n);
            }
        }
    }
}

// One word's signs: bit t set where element t of x (count ≤ 64 of them) is negative.
__attribute__((target("avx2"), always_inline))
static inline uint64_t mpq_sign_word_i32(const int32_t *x, int64_t count) {
    uint64_t word = 0;
    for (int64_t t = 0; t < count; t += 8) {
        const __m256i v = count - t >= 8 ? _mm256_loadu_si256((const __m256i *)(x + t)) : _mm256_maskload_epi32(x + t, mpq_rq_mask(count - t));
        word |= (uint64_t)(unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(v)) << t;
    }
    return word;
}

__attribute__((target("avx2"), always_inline))
static inline uint64_t mpq_sign_word_u8(const uint8_t *x, int64_t count) {
    uint64_t word = 0;
    int64_t t = 0;
    for (; t + 32 <= count; t += 32) word |= (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_loadu_si256((const __m256i *)(x + t))) << t;
    for (; t + 16 <= count; t += 16) word |= (uint64_t)(uint32_t)_mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(x + t))) << t;
    if (t < count) {
        // The last channels: bytes past them are not read (their bits would be cleared).
        uint8_t tmp[16] = {0};
        __builtin_memcpy(tmp, x + t, (size_t)(count - t));
        word |= (uint64_t)(uint32_t)_mm_movemask_epi8(_mm_loadu_si128((const __m128i *)tmp)) << t;
    }
    return word;
}

// Pixels `stride` elements apart (Int32 sums, or signed codes when `bytes` is 1), ⌈channels/64⌉
// words each.
__attribute__((target("avx2"), always_inline))
static inline void mpq_pack_sign_rows(int64_t pixels, int64_t channels, const void *src, int64_t stride, uint64_t *dst, int bytes) {
    const int64_t words = (channels + 63) / 64;
    for (int64_t p = 0; p < pixels; p++) {
        for (int64_t q = 0; q < words; q++) {
            const int64_t count = channels - q * 64 < 64 ? channels - q * 64 : 64, at = p * stride + q * 64;
            dst[p * words + q] = bytes == 4 ? mpq_sign_word_i32((const int32_t *)src + at, count) : mpq_sign_word_u8((const uint8_t *)src + at, count);
        }
    }
}

__attribute__((target("avx2")))
void mpq_pack_signs_avx2(int64_t pixels, int64_t channels, const int32_t *src, int64_t src_stride, uint64_t *dst) {
    mpq_pack_sign_rows(pixels, channels, src, src_stride, dst, 4);
}

__attribute__((target("avx2")))
void mpq_pack_sign_bytes_avx2(int64_t pixels, int64_t channels, const uint8_t *src, int64_t src_stride, uint64_t *dst) {
    mpq_pack_sign_rows(pixels, channels, src, src_stride, dst, 1);
}
#else
void mpq_pack_sign_bytes_avx2(int64_t pixels, int64_t channels, const uint8_t *src, int64_t src_stride, uint64_t *dst) {
    (void)pixels; (void)channels; (void)src; (void)src_stride; (void)dst;
}
void mpq_requantize_sums_avx2(int64_t pixels, int64_t channels, const int32_t *src, int64_t src_stride, int32_t *dst,
                              int64_t dst_stride, const int32_t *m, const int32_t *s, int32_t form, int32_t accumulate) {
    (void)pixels; (void)channels; (void)src; (void)src_stride; (void)dst; (void)dst_stride; (void)m; (void)s; (void)form; (void)accumulate;
}
void mpq_requantize_codes_avx2(int64_t pixels, int64_t channels, const int32_t *src, int64_t src_stride, uint8_t *dst,
                               int64_t dst_stride, const int32_t *m, const int32_t *s, int32_t form, int32_t lo, int32_t hi) {
    (void)pixels; (void)channels; (void)src; (void)src_stride; (void)dst; (void)dst_stride; (void)m; (void)s; (void)form; (void)lo; (void)hi;
}
void mpq_pack_signs_avx2(int64_t pixels, int64_t channels, const int32_t *src, int64_t src_stride, uint64_t *dst) {
    (void)pixels; (void)channels; (void)src; (void)src_stride; (void)dst;
}
#endif
