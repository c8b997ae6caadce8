// The integer engine's elementwise requantization with AVX-512 (requantize_avx2.c's first two
// kernels, 16 lanes): Int32 sums rescaled by per-channel dyadic numbers into sums or into codes.
// Channels go 16 at a time with their multipliers, rounding terms and shifts made once, pixels
// inside. Kernels/Requantize.swift holds the plain loops these are tested against.
#include "CKernels.h"

#if defined(__x86_64__)
#include "epilogue_avx512.h"

#define MPQ_RQ512 target("avx512f,avx512bw,avx512vl,avx512vnni")

// One block's constants for mpq_dyadic: `form` 0 leaves y as it is (every m = 1, s = 0), 1 the
// general multiply, 2 its short form (every s ≥ 32: the odd lanes' quotient is the high half of
// (y·m + 2^(s−1)) >> (s − 32)).
typedef struct { __m512i m, mo, re, ro, se, so; } mpq_rq16;

__attribute__((MPQ_RQ512, always_inline))
static inline mpq_rq16 mpq_rq16_load(const int32_t *m, const int32_t *s, int64_t c, __mmask16 lanes, int32_t form) {
    const __m512i low = _mm512_set1_epi64(0xFFFFFFFFll), one = _mm512_set1_epi64(1);
    mpq_rq16 k;
    k.m = _mm512_maskz_loadu_epi32(lanes, m + c);
    k.mo = _mm512_srli_epi64(k.m, 32);
    const __m512i sv = _mm512_maskz_loadu_epi32(lanes, s + c);
    k.se = _mm512_and_si512(sv, low);
    k.so = _mm512_srli_epi64(sv, 32);
    // 2^(s−1), 0 where s = 0 (a shift count past 63 gives 0).
    k.re = _mm512_sllv_epi64(one, _mm512_sub_epi64(k.se, one));
    k.ro = _mm512_sllv_epi64(one, _mm512_sub_epi64(k.so, one));
    if (form == 2) k.so = _mm512_sub_epi64(k.so, _mm512_set1_epi64(32));
    return k;
}

__attribute__((MPQ_RQ512, always_inline))
static inline __m512i mpq_rq16_apply(__m512i y, const mpq_rq16 *k, int32_t form) {
    if (form == 0) return y;
    if (form == 1) return mpq_dyadic(y, k->m, k->mo, k->re, k->ro, k->se, k->so, 1);
    const __m512i pe = _mm512_srav_epi64(_mm512_add_epi64(_mm512_mul_epi32(y, k->m), k->re), k->se);
    const __m512i po = _mm512_srav_epi64(_mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(y, 32), k->mo), k->ro), k->so);
    return _mm512_ternarylogic_epi64(_mm512_set1_epi64((long long)0xFFFFFFFF00000000ull), po, pe, 0xCA);
}

__attribute__((MPQ_RQ512, always_inline))
static inline void mpq_rq_sums512(int64_t pixels, int64_t channels, const int32_t *src, int64_t src_stride, int32_t *dst,
                                  int64_t dst_stride, const int32_t *m, const int32_t *s, int32_t form, int32_t accumulate) {
    for (int64_t c = 0; c < channels; c += 16) {
        const __mmask16 lanes = (__mmask16)(channels - c >= 16 ? 0xFFFF : (1u << (channels - c)) - 1);
        const mpq_rq16 k = mpq_rq16_load(m, s, c, lanes, form);
        for (int64_t p = 0; p < pixels; p++) {
            __m512i q = mpq_rq16_apply(_mm512_maskz_loadu_epi32(lanes, src + p * src_stride + c), &k, form);
            if (accumulate) q = _mm512_add_epi32(q, _mm512_maskz_loadu_epi32(lanes, dst + p * dst_stride + c));
            _mm512_mask_storeu_epi32(dst + p * dst_stride + c, lanes, q);
        }
    }
}

__attribute__((MPQ_RQ512))
void mpq_requantize_sums_avx512(int64_t pixels, int64_t channels, const int32_t *src, int64_t src_stride, int32_t *dst,
                                int64_t dst_stride, const int32_t *m, const int32_t *s, int32_t form, int32_t accumulate) {
    // The branches are hoisted so each loop has its form and accumulation fixed.
#define MPQ_RQ_SUMS(F) { if (accumulate) mpq_rq_sums512(pixels, channels, src, src_stride, dst, dst_stride, m, s, F, 1); \
                         else mpq_rq_sums512(pixels, channels, src, src_stride, dst, dst_stride, m, s, F, 0); }
    if (form == 0) MPQ_RQ_SUMS(0) else if (form == 1) MPQ_RQ_SUMS(1) else MPQ_RQ_SUMS(2)
#undef MPQ_RQ_SUMS
}

__attribute__((MPQ_RQ512))
void mpq_requantize_codes_avx512(int64_t pixels, int64_t channels, const int32_t *src, int64_t src_stride, uint8_t *dst,
                                 int64_t dst_stride, const int32_t *m, const int32_t *s, int32_t form, int32_t lo, int32_t hi) {
    const __m512i lov = _mm512_set1_epi32(lo), hiv = _mm512_set1_epi32(hi);
    for (int64_t c = 0; c < channels; c += 16) {
        const __mmask16 lanes = (__mmask16)(channels - c >= 16 ? 0xFFFF : (1u << (channels - c)) - 1);
        const mpq_rq16 k = mpq_rq16_load(m, s, c, lanes, form);
        for (int64_t p = 0; p < pixels; p++) {
            const __m512i y = _mm512_maskz_loadu_epi32(lanes, src + p * src_stride + c);
            const __m512i q = form == 0 ? y : form == 1 ? mpq_rq16_apply(y, &k, 1) : mpq_rq16_apply(y, &k, 2);
            // Clamped, then each lane's low byte (the code's bit pattern).
            _mm_mask_storeu_epi8(dst + p * dst_stride + c, lanes, _mm512_cvtepi32_epi8(_mm512_min_epi32(_mm512_max_epi32(q, lov), hiv)));
        }
    }
}
#else
void mpq_requantize_sums_avx512(int64_t pixels, int64_t channels, const int32_t *src, int64_t src_stride, int32_t *dst,
                                int64_t dst_stride, const int32_t *m, const int32_t *s, int32_t form, int32_t accumulate) {
    (void)pixels; (void)channels; (void)src; (void)src_stride; (void)dst; (void)dst_stride; (void)m; (void)s; (void)form; (void)accumulate;
}
void mpq_requantize_codes_avx512(int64_t pixels, int64_t channels, const int32_t *src, int64_t src_stride, uint8_t *dst,
                                 int64_t dst_stride, const int32_t *m, const int32_t *s, int32_t form, int32_t lo, int32_t hi) {
    (void)pixels; (void)channels; (void)src; (void)src_stride; (void)dst; (void)dst_stride; (void)m; (void)s; (void)form; (void)lo; (void)hi;
}
#endif
