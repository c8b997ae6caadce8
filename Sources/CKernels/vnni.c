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

int mpq_cpu_has_avx512_vbmi(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512bw");
#else
    return 0;
#endif
}

#if defined(__x86_64__)
#include "epilogue_avx512.h"

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

// The tile's inner loop, with the 12 row pointers and 24 accumulators as named locals so they
// stay in registers (an accumulator array would be reloaded around every byte load, which may
// alias it). FLIP XORs each broadcast (signed input codes); NB is the number of 16-column blocks.
#define MPQ_ROW2(i, X) { const __m512i av = X(_mm512_set1_epi32(*(const int32_t *)(p##i + o))); \
    c##i##a = _mm512_dpbusd_epi32(c##i##a, av, v0); c##i##b = _mm512_dpbusd_epi32(c##i##b, av, v1); }
#define MPQ_ROW1(i, X) { const __m512i av = X(_mm512_set1_epi32(*(const int32_t *)(p##i + o))); \
    c##i##a = _mm512_dpbusd_epi32(c##i##a, av, v0); }
#define MPQ_PLAIN(v) (v)
#define MPQ_FLIP(v) mpq_flip((v), x)

// The XOR after the broadcast: the empty asm keeps clang from moving it before (a scalar load,
// an XOR and a broadcast from a register, where a broadcast load and a vector XOR are two
// operations and only one of them on a vector port).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
static inline __m512i mpq_flip(__m512i v, __m512i x) {
    __asm__("" : "+v"(v));
    return _mm512_xor_si512(v, x);
}
#define MPQ_LOOP(ROW, X, LOAD1) \
    for (int64_t t = 0; t < ntaps; t++) { \
        const int64_t off = taps[t]; \
        for (int64_t g = 0; g < gpp; g++) { \
            const int64_t o = off + 4 * g, k = (t * gpp + g) * 64; \
            const __m512i v0 = _mm512_loadu_si512((const void *)(b + k)); \
            LOAD1 \
            ROW(0, X) ROW(1, X) ROW(2, X) ROW(3, X) ROW(4, X) ROW(5, X) \
            ROW(6, X) ROW(7, X) ROW(8, X) ROW(9, X) ROW(10, X) ROW(11, X) \
        } \
    }
#define MPQ_V1 const __m512i v1 = _mm512_loadu_si512((const void *)(b1 + k));

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
void mpq_conv_vnni(int64_t rows, int64_t cols, const uint8_t *const *a, const int64_t *taps, int64_t ntaps, int64_t gpp,
                   uint32_t flip, const int8_t *b, int64_t bstride, const mpq_epilogue *e, int64_t column,
                   void *const *out, const void *const *res) {
    const __m512i x = _mm512_set1_epi32((int32_t)flip);
    const uint8_t *p0 = a[0], *p1 = a[rows > 1 ? 1 : 0], *p2 = a[rows > 2 ? 2 : 0], *p3 = a[rows > 3 ? 3 : 0];
    const uint8_t *p4 = a[rows > 4 ? 4 : 0], *p5 = a[rows > 5 ? 5 : 0], *p6 = a[rows > 6 ? 6 : 0], *p7 = a[rows > 7 ? 7 : 0];
    const uint8_t *p8 = a[rows > 8 ? 8 : 0], *p9 = a[rows > 9 ? 9 : 0], *p10 = a[rows > 10 ? 10 : 0], *p11 = a[rows > 11 ? 11 : 0];
    __m512i c0a = _mm512_setzero_si512(), c1a = c0a, c2a = c0a, c3a = c0a, c4a = c0a, c5a = c0a;
    __m512i c6a = c0a, c7a = c0a, c8a = c0a, c9a = c0a, c10a = c0a, c11a = c0a;
    __m512i c0b = c0a, c1b = c0a, c2b = c0a, c3b = c0a, c4b = c0a, c5b = c0a;
    __m512i c6b = c0a, c7b = c0a, c8b = c0a, c9b = c0a, c10b = c0a, c11b = c0a;
    const int8_t *b1 = b + bstride;
    if (cols > 16) {
        if (flip) { MPQ_LOOP(MPQ_ROW2, MPQ_FLIP, MPQ_V1) } else { MPQ_LOOP(MPQ_ROW2, MPQ_PLAIN, MPQ_V1) }
    } else {
        if (flip) { MPQ_LOOP(MPQ_ROW1, MPQ_FLIP, ) } else { MPQ_LOOP(MPQ_ROW1, MPQ_PLAIN, ) }
    }
    const __m512i acc[12][2] = {{c0a, c0b}, {c1a, c1b}, {c2a, c2b}, {c3a, c3b}, {c4a, c4b}, {c5a, c5b},
                                {c6a, c6b}, {c7a, c7b}, {c8a, c8b}, {c9a, c9b}, {c10a, c10b}, {c11a, c11b}};
    const int64_t bytes = e->mode == 2 ? 1 : 4, rbytes = mpq_residual_bytes(e);
    if (cols == 32 && mpq_codes32(e)) {
        // Codes for 32 columns: both blocks of a row through mpq_store_codes32.
        const mpq_ep16 k0 = mpq_epilogue_load(e, column, 0xFFFF), k1 = mpq_epilogue_load(e, column + 16, 0xFFFF);
        const int32_t lo = e->lo, hi = e->hi, residual = e->residual;
        for (int64_t i = 0; i < rows; i++) {
            const char *r = residual ? (const char *)res[i] + column * rbytes : 0;
            mpq_store_codes32(mpq_epilogue_q(acc[i][0], &k0, 0xFFFF, r), mpq_epilogue_q(acc[i][1], &k1, 0xFFFF, r ? r + 16 * rbytes : 0),
                              lo, hi, (char *)out[i] + column);
        }
        return;
    }
    for (int64_t j = 0; j < 2; j++) {
        const int64_t left = cols - 16 * j;
        if (left <= 0) break;
        const __mmask16 mask = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        const mpq_ep16 k = mpq_epilogue_load(e, column + 16 * j, mask);
        for (int64_t i = 0; i < rows; i++) {
            mpq_epilogue_apply(acc[i][j], &k, mask, (char *)out[i] + (column + 16 * j) * bytes,
                               e->residual ? (const char *)res[i] + (column + 16 * j) * rbytes : 0);
        }
    }
}

// A whole layer of tiles: output pixels twelve at a time, 32 output columns at a time (see the
// declaration in CKernels.h).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
void mpq_conv_vnni_layer(int64_t pixels, const int64_t *starts, const int64_t *outs, const int64_t *res_starts,
                         const uint8_t *in, char *out, int64_t out_bytes, const char *res, int64_t res_bytes,
                         const int64_t *taps, int64_t ntaps, int64_t gpp, uint32_t flip, const int8_t *b, int64_t bstride,
                         const mpq_epilogue *e, int64_t col_begin, int64_t col_end) {
    const uint8_t *a[12];
    void *o[12];
    const void *r[12];
    for (int64_t p0 = 0; p0 < pixels; p0 += 12) {
        const int64_t rows = pixels - p0 < 12 ? pixels - p0 : 12;
        for (int64_t i = 0; i < rows; i++) {
            a[i] = in + starts[p0 + i];
            o[i] = out + outs[p0 + i] * out_bytes;
            r[i] = res ? (const void *)(res + res_starts[p0 + i] * res_bytes) : (const void *)in;
        }
        for (int64_t column = col_begin; column < col_end; column += 32)
            mpq_conv_vnni(rows, col_end - column < 32 ? col_end - column : 32, a, taps, ntaps, gpp, flip, b + column / 16 * bstride, bstride, e,
                          column, o, r);
    }
}

// Depthwise convolution with its epilogue: for each of `pixels` output pixels (receptive field
// at in + starts[p], output at out + outs[p]·out_bytes), 16 channels at a time: codes widened
// to Int32 (signed or unsigned, masked past `channels`), times each tap's weights
// w[t·ldw + c], summed, then the same epilogue as the tile (bias, dyadic, clamp, store).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
void mpq_depthwise_avx512(int64_t pixels, const int64_t *starts, const int64_t *outs, const uint8_t *in, char *out, int64_t out_bytes,
                          const int64_t *taps, int64_t ntaps, const int32_t *w, int64_t ldw, int64_t channels, int32_t is_signed,
                          const mpq_epilogue *e) {
    // Channels outside, pixels inside: the block's weights and epilogue constants stay in
    // registers across the pixels.
    for (int64_t c = 0; c < channels; c += 16) {
        const __mmask16 mask = channels - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (channels - c)) - 1);
        const mpq_ep16 k = mpq_epilogue_load(e, c, mask);
        for (int64_t p = 0; p < pixels; p++) {
            const uint8_t *x = in + starts[p] + c;
            __m512i acc = _mm512_setzero_si512();
            if (is_signed) {
                for (int64_t t = 0; t < ntaps; t++)
                    acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, x + taps[t])),
                                                                   _mm512_loadu_si512((const void *)(w + t * ldw + c))));
            } else {
                for (int64_t t = 0; t < ntaps; t++)
                    acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, x + taps[t])),
                                                                   _mm512_loadu_si512((const void *)(w + t * ldw + c))));
            }
            mpq_epilogue_apply(acc, &k, mask, out + (outs[p] + c) * out_bytes, 0);
        }
    }
}
// The 3×3 depthwise convolution (dilation 1, any stride) on pairs of horizontal neighbours, one
// row of output pixels at a time. `mpq_depthwise_pairs_avx512` writes one row of the padded input
// grid (`cols` pixels, `px` bytes apart, from `in`) as pairs: at each listed column j (a stride of
// 2 reads every other one) the Int32 of channel c holding its code in the low 16 bits and its
// right neighbour's (0 past the last column) in the high 16 — dst[j·ldp + c], widened signed or
// unsigned, zero past `channels`. The caller keeps the three grid rows a row of windows reads in
// a ring (Kernels/DepthwiseConv), small enough to stay in L1 where the whole grid did not: built
// whole before the layer, its stores went to L2 and took 12% of MobileNetV2's time.
// `mpq_depthwise3x3_pairs_avx512` then takes the windows whose top rows are r0, r1, r2 (window p's
// left column lefts[p]): each tap row ky costs two vpmaddwd on 16 channels — the pair at the
// window's column against (w[ky][0], w[ky][1]), the pair two columns on against (w[ky][2], 0) —
// six multiply-adds for nine taps, no widening per tap. `pw`: those weight pairs as Int16 pairs,
// pw[(2·ky + h)·ldp + c] for h = 0, 1. Sums are the same integers as mpq_depthwise_avx512's.
// With `form` 1 (AVX512-VBMI): 64 channels' codes and their right neighbours' in two loads, and
// each 16 channels' pairs one byte permutation — the code to byte 1 of the Int32, the neighbour's
// to byte 3, bytes 0 and 2 zero — and one 16-bit shift right by 8, arithmetic for signed codes:
// the widened pair, where the plain form spends two widenings on the same port.
// `form` 2, triples (unsigned codes): the Int32 of channel c holds the codes at columns j, j + 1, j + 2 in
// bytes 0, 1, 2 (0 past the last column) and 0 in byte 3 — a permutation of the first two, a
// merging one of the third; the 3×3 kernel then spends one vpdpbusd per tap row.
__attribute__((target("avx512f,avx512bw,avx512vbmi")))
static void mpq_pairs_row_vbmi(const int64_t *columns, int64_t ncolumns, int64_t cols, const uint8_t *in, int64_t px,
                               int64_t channels, int32_t is_signed, int32_t *dst, int64_t ldp, int triples) {
    __m512i index[4], third[4];
    for (int h = 0; h < 4; h++) {
        uint8_t t[64] = {0}, u[64] = {0};
        for (int i = 0; i < 16; i++) {
            if (triples) {
                t[4 * i] = (uint8_t)(16 * h + i); t[4 * i + 1] = (uint8_t)(64 + 16 * h + i); u[4 * i + 2] = (uint8_t)(16 * h + i);
            } else {
                t[4 * i + 1] = (uint8_t)(16 * h + i); t[4 * i + 3] = (uint8_t)(64 + 16 * h + i);
            }
        }
        index[h] = _mm512_loadu_si512((const void *)t);
        third[h] = _mm512_loadu_si512((const void *)u);
    }
    const __mmask64 first = triples ? 0x3333333333333333ull : 0xAAAAAAAAAAAAAAAAull, byte2 = 0x4444444444444444ull;
    for (int64_t i = 0; i < ncolumns; i++) {
        const int64_t j = columns[i];
        const uint8_t *x = in + j * px;
        int32_t *z = dst + j * ldp;
        for (int64_t c = 0; c < ldp; c += 64) {
            const int64_t left = channels - c;
            const __mmask64 mask = left >= 64 ? ~0ull : left > 0 ? (1ull << left) - 1 : 0;
            const __m512i a = _mm512_maskz_loadu_epi8(mask, x + c), b = _mm512_maskz_loadu_epi8(j + 1 < cols ? mask : 0, x + px + c);
            if (triples) {
                const __m512i d = _mm512_maskz_loadu_epi8(j + 2 < cols ? mask : 0, x + 2 * px + c);
                for (int h = 0; h < 4 && c + 16 * h < ldp; h++) {
                    const __m512i q = _mm512_maskz_permutex2var_epi8(first, a, index[h], b);
                    _mm512_storeu_si512((void *)(z + c + 16 * h), _mm512_mask_permutexvar_epi8(q, byte2, third[h], d));
                }
                continue;
            }
            for (int h = 0; h < 4 && c + 16 * h < ldp; h++) {
                const __m512i q = _mm512_maskz_permutex2var_epi8(first, a, index[h], b);
                _mm512_storeu_si512((void *)(z + c + 16 * h), is_signed ? _mm512_srai_epi16(q, 8) : _mm512_srli_epi16(q, 8));
            }
        }
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
void mpq_depthwise_pairs_avx512(const int64_t *columns, int64_t ncolumns, int64_t cols, const uint8_t *in, int64_t px,
                                int64_t channels, int32_t is_signed, int32_t *dst, int64_t ldp, int32_t form) {
    if (form) {
        mpq_pairs_row_vbmi(columns, ncolumns, cols, in, px, channels, is_signed, dst, ldp, form == 2);
        return;
    }
    const __m512i low = _mm512_set1_epi32(0xFFFF);
    for (int64_t i = 0; i < ncolumns; i++) {
        const int64_t j = columns[i];
        const uint8_t *x = in + j * px;
        int32_t *z = dst + j * ldp;
        for (int64_t c = 0; c < ldp; c += 16) {
            const __mmask16 mask = channels - c >= 16 ? (__mmask16)0xFFFF : channels > c ? (__mmask16)((1u << (channels - c)) - 1) : 0;
            const __mmask16 next = j + 1 < cols ? mask : 0;
            __m512i a, b;
            if (is_signed) {
                a = _mm512_and_si512(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, x + c)), low);
                b = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(next, x + px + c));
            } else {
                a = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, x + c));
                b = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(next, x + px + c));
            }
            _mm512_storeu_si512((void *)(z + c), _mm512_or_si512(a, _mm512_slli_epi32(b, 16)));
        }
    }
}

// One 16-channel block's sum for the window whose tap rows' pairs start at z0, z1, z2: two 16-bit
// multiply-adds per tap row against the weight pairs w[0…5], the last four accumulating in place
// (vpdpwssd: the same wrapping Int32 sums as vpmaddwd then vpaddd, one instruction fewer each).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
static inline __m512i mpq_window3x3(const int32_t *z0, const int32_t *z1, const int32_t *z2, int64_t ldp, const __m512i *w) {
    __m512i a0 = _mm512_madd_epi16(_mm512_loadu_si512((const void *)z0), w[0]);
    __m512i a1 = _mm512_madd_epi16(_mm512_loadu_si512((const void *)(z0 + 2 * ldp)), w[1]);
    a0 = _mm512_dpwssd_epi32(a0, _mm512_loadu_si512((const void *)z1), w[2]);
    a1 = _mm512_dpwssd_epi32(a1, _mm512_loadu_si512((const void *)(z1 + 2 * ldp)), w[3]);
    a0 = _mm512_dpwssd_epi32(a0, _mm512_loadu_si512((const void *)z2), w[4]);
    a1 = _mm512_dpwssd_epi32(a1, _mm512_loadu_si512((const void *)(z2 + 2 * ldp)), w[5]);
    return _mm512_add_epi32(a0, a1);
}

// The same window on triples: one u8 × s8 multiply-add of four bytes per tap row against
// (w[ky][0], w[ky][1], w[ky][2], 0) — w[0…2].
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
static inline __m512i mpq_window3x3_triples(const int32_t *z0, const int32_t *z1, const int32_t *z2, const __m512i *w) {
    __m512i a = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_loadu_si512((const void *)z0), w[0]);
    a = _mm512_dpbusd_epi32(a, _mm512_loadu_si512((const void *)z1), w[1]);
    return _mm512_dpbusd_epi32(a, _mm512_loadu_si512((const void *)z2), w[2]);
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"), always_inline))
static inline __m512i mpq_window(const int triples, const int32_t *z0, const int32_t *z1, const int32_t *z2, int64_t ldp, const __m512i *w) {
    return triples ? mpq_window3x3_triples(z0, z1, z2, w) : mpq_window3x3(z0, z1, z2, ldp, w);
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"), always_inline))
static inline void mpq_depthwise3x3_rows(const int triples, int64_t pixels, const int64_t *lefts, const int64_t *outs, const int32_t *r0,
                                         const int32_t *r1, const int32_t *r2, int64_t ldp, char *out, int64_t out_bytes, const int32_t *pw,
                                         int64_t channels, const mpq_epilogue *e) {
    // Channels outside, pixels inside: a block's weights and epilogue constants stay in
    // registers across the row's pixels.
    const int nw = triples ? 3 : 6;
    int64_t c = 0;
    if (mpq_codes32(e)) {
        // Codes, 32 channels at a time while whole blocks of 32 remain: both blocks of a pixel
        // through mpq_store_codes32 (one 32-byte store).
        for (; c + 32 <= channels; c += 32) {
            const mpq_ep16 k0 = mpq_epilogue_load(e, c, 0xFFFF), k1 = mpq_epilogue_load(e, c + 16, 0xFFFF);
            __m512i w[2][6];
            for (int h = 0; h < 2; h++)
                for (int t = 0; t < nw; t++) w[h][t] = _mm512_loadu_si512((const void *)(pw + t * ldp + c + 16 * h));
            const int32_t lo = e->lo, hi = e->hi;
            for (int64_t p = 0; p < pixels; p++) {
                const int64_t at = lefts[p] * ldp + c;
                mpq_store_codes32(mpq_epilogue_q(mpq_window(triples, r0 + at, r1 + at, r2 + at, ldp, w[0]), &k0, 0xFFFF, 0),
                                  mpq_epilogue_q(mpq_window(triples, r0 + at + 16, r1 + at + 16, r2 + at + 16, ldp, w[1]), &k1, 0xFFFF, 0),
                                  lo, hi, out + outs[p] + c);
            }
        }
    }
    for (; c < channels; c += 16) {
        const __mmask16 mask = channels - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (channels - c)) - 1);
        const mpq_ep16 k = mpq_epilogue_load(e, c, mask);
        __m512i w[6];
        for (int t = 0; t < nw; t++) w[t] = _mm512_loadu_si512((const void *)(pw + t * ldp + c));
        for (int64_t p = 0; p < pixels; p++) {
            const int64_t at = lefts[p] * ldp + c;
            mpq_epilogue_apply(mpq_window(triples, r0 + at, r1 + at, r2 + at, ldp, w), &k, mask, out + (outs[p] + c) * out_bytes, 0);
        }
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
void mpq_depthwise3x3_pairs_avx512(int64_t pixels, const int64_t *lefts, const int64_t *outs, const int32_t *r0, const int32_t *r1,
                                   const int32_t *r2, int64_t ldp, char *out, int64_t out_bytes, const int32_t *pw, int64_t channels,
                                   const mpq_epilogue *e, int32_t triples) {
    if (triples) mpq_depthwise3x3_rows(1, pixels, lefts, outs, r0, r1, r2, ldp, out, out_bytes, pw, channels, e);
    else mpq_depthwise3x3_rows(0, pixels, lefts, outs, r0, r1, r2, ldp, out, out_bytes, pw, channels, e);
}
#else
void mpq_depthwise_avx512(int64_t pixels, const int64_t *starts, const int64_t *outs, const uint8_t *in, char *out, int64_t out_bytes,
                          const int64_t *taps, int64_t ntaps, const int32_t *w, int64_t ldw, int64_t channels, int32_t is_signed,
                          const mpq_epilogue *e) {
    (void)pixels; (void)starts; (void)outs; (void)in; (void)out; (void)out_bytes; (void)taps; (void)ntaps; (void)w; (void)ldw;
    (void)channels; (void)is_signed; (void)e;
}
void mpq_depthwise_pairs_avx512(const int64_t *columns, int64_t ncolumns, int64_t cols, const uint8_t *in, int64_t px,
                                int64_t channels, int32_t is_signed, int32_t *dst, int64_t ldp, int32_t form) {
    (void)form; (void)columns; (void)ncolumns; (void)cols; (void)in; (void)px; (void)channels; (void)is_signed; (void)dst; (void)ldp;
}
void mpq_depthwise3x3_pairs_avx512(int64_t pixels, const int64_t *lefts, const int64_t *outs, const int32_t *r0, const int32_t *r1,
                                   const int32_t *r2, int64_t ldp, char *out, int64_t out_bytes, const int32_t *pw, int64_t channels,
                                   const mpq_epilogue *e, int32_t triples) {
    (void)triples; (void)pixels; (void)lefts; (void)outs; (void)r0; (void)r1; (void)r2; (void)ldp; (void)out; (void)out_bytes; (void)pw; (void)channels; (void)e;
}
void mpq_conv_vnni(int64_t rows, int64_t cols, const uint8_t *const *a, const int64_t *taps, int64_t ntaps, int64_t gpp,
                   uint32_t flip, const int8_t *b, int64_t bstride, const mpq_epilogue *e, int64_t column,
                   void *const *out, const void *const *res) {
    (void)rows; (void)cols; (void)a; (void)taps; (void)ntaps; (void)gpp; (void)flip; (void)b; (void)bstride;
    (void)e; (void)column; (void)out; (void)res;
}
void mpq_conv_vnni_layer(int64_t pixels, const int64_t *starts, const int64_t *outs, const int64_t *res_starts,
                         const uint8_t *in, char *out, int64_t out_bytes, const char *res, int64_t res_bytes,
                         const int64_t *taps, int64_t ntaps, int64_t gpp, uint32_t flip, const int8_t *b, int64_t bstride,
                         const mpq_epilogue *e, int64_t col_begin, int64_t col_end) {
    (void)pixels; (void)starts; (void)outs; (void)res_starts; (void)in; (void)out; (void)out_bytes; (void)res; (void)res_bytes;
    (void)taps; (void)ntaps; (void)gpp; (void)flip; (void)b; (void)bstride; (void)e; (void)col_begin; (void)col_end;
}
void mpq_igemm_u8s8_vnni_12x32(int64_t kgroups, const uint8_t *a, const int8_t *b,
                                int32_t *c, int64_t ldc, int accumulate) {
    (void)kgroups; (void)a; (void)b; (void)c; (void)ldc; (void)accumulate;
}
#endif

#if defined(__x86_64__)
// Matrix–vector products for one image (batch 1), where reading the weights bounds the time:
// y[j] = Σ_k x[k]·w'[j][k] over rows j in [j0, j1), x u8 codes padded with zeros to whole
// blocks. s8: w' = the Int8 codes, 64 per load. u4 / u2: codes stored offset-binary (w + 8,
// w + 2) and packed 128 / 256 per 64-byte block — byte t of a block holds the codes of elements
// t, 64 + t (u4: low, high nibble) or t, 64 + t, 128 + t, 192 + t (u2: bits 0–1 … 6–7) — so each
// plane widened with one shift and mask meets a contiguous 64 bytes of x; the caller subtracts
// the offset times Σx. Kernels/GEMV.swift holds the plain reference these are tested against.
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static inline int32_t mpq_hsum(__m512i v) { return _mm512_reduce_add_epi32(v); }

__attribute__((target("avx512f,avx512bw,avx512vnni")))
void mpq_gemv_s8_vnni(int64_t j0, int64_t j1, int64_t blocks, const uint8_t *x, const int8_t *w, int64_t ldw, int32_t *y) {
    for (int64_t j = j0; j < j1; j++) {
        const int8_t *row = w + j * ldw;
        __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
        int64_t b = 0;
        for (; b + 2 <= blocks; b += 2) {
            a0 = _mm512_dpbusd_epi32(a0, _mm512_loadu_si512(x + b * 64), _mm512_loadu_si512(row + b * 64));
            a1 = _mm512_dpbusd_epi32(a1, _mm512_loadu_si512(x + b * 64 + 64), _mm512_loadu_si512(row + b * 64 + 64));
        }
        if (b < blocks) a0 = _mm512_dpbusd_epi32(a0, _mm512_loadu_si512(x + b * 64), _mm512_loadu_si512(row + b * 64));
        y[j] = mpq_hsum(_mm512_add_epi32(a0, a1));
    }
}

__attribute__((target("avx512f,avx512bw,avx512vnni")))
void mpq_gemv_u4_vnni(int64_t j0, int64_t j1, int64_t blocks, const uint8_t *x, const uint8_t *w, int64_t ldw, int32_t *y) {
    const __m512i mask = _mm512_set1_epi8(0x0F);
    for (int64_t j = j0; j < j1; j++) {
        const uint8_t *row = w + j * ldw;
        __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
        for (int64_t b = 0; b < blocks; b++) {
            __m512i v = _mm512_loadu_si512(row + b * 64);
            const uint8_t *xb = x + b * 128;
            a0 = _mm512_dpbusd_epi32(a0, _mm512_loadu_si512(xb), _mm512_and_si512(v, mask));
            a1 = _mm512_dpbusd_epi32(a1, _mm512_loadu_si512(xb + 64), _mm512_and_si512(_mm512_srli_epi16(v, 4), mask));
        }
        y[j] = mpq_hsum(_mm512_add_epi32(a0, a1));
    }
}

__attribute__((target("avx512f,avx512bw,avx512vnni")))
void mpq_gemv_u2_vnni(int64_t j0, int64_t j1, int64_t blocks, const uint8_t *x, const uint8_t *w, int64_t ldw, int32_t *y) {
    const __m512i mask = _mm512_set1_epi8(0x03);
    for (int64_t j = j0; j < j1; j++) {
        const uint8_t *row = w + j * ldw;
        __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
        for (int64_t b = 0; b < blocks; b++) {
            __m512i v = _mm512_loadu_si512(row + b * 64);
            const uint8_t *xb = x + b * 256;
            a0 = _mm512_dpbusd_epi32(a0, _mm512_loadu_si512(xb), _mm512_and_si512(v, mask));
            a1 = _mm512_dpbusd_epi32(a1, _mm512_loadu_si512(xb + 64), _mm512_and_si512(_mm512_srli_epi16(v, 2), mask));
            a0 = _mm512_dpbusd_epi32(a0, _mm512_loadu_si512(xb + 128), _mm512_and_si512(_mm512_srli_epi16(v, 4), mask));
            a1 = _mm512_dpbusd_epi32(a1, _mm512_loadu_si512(xb + 192), _mm512_and_si512(_mm512_srli_epi16(v, 6), mask));
        }
        y[j] = mpq_hsum(_mm512_add_epi32(a0, a1));
    }
}
#else
void mpq_gemv_s8_vnni(int64_t j0, int64_t j1, int64_t blocks, const uint8_t *x, const int8_t *w, int64_t ldw, int32_t *y) {
    (void)j0; (void)j1; (void)blocks; (void)x; (void)w; (void)ldw; (void)y;
}
void mpq_gemv_u4_vnni(int64_t j0, int64_t j1, int64_t blocks, const uint8_t *x, const uint8_t *w, int64_t ldw, int32_t *y) {
    (void)j0; (void)j1; (void)blocks; (void)x; (void)w; (void)ldw; (void)y;
}
void mpq_gemv_u2_vnni(int64_t j0, int64_t j1, int64_t blocks, const uint8_t *x, const uint8_t *w, int64_t ldw, int32_t *y) {
    (void)j0; (void)j1; (void)blocks; (void)x; (void)w; (void)ldw; (void)y;
}
#endif
