// The integer engine's convolution tile for CPUs with AVX2 but no AVX-512 VNNI: the same sums
// and epilogue as mpq_conv_vnni (vnni.c), exactly. Without vpdpbusd, and since vpmaddubsw
// saturates 16-bit pair sums (255·127·2 > 32,767), 8-bit weights go through vpmaddwd on 16-bit
// values: the weights are widened once when the layer is compiled (IntegerWeights.widened, the
// VNNI layout with Int16 codes: b[block][group][16 columns][4]), the activations once per layer
// (mpq_widen_codes_avx2: the engine widens a layer's whole input, so each code is widened once
// instead of once per tap and column block — that took a quarter of the tile's time). One
// 256-bit vpmaddwd is 16 exact multiply-adds. A sub-tile is 2 pixels × 16 columns: 8
// accumulators, four weight vectors and the two pixels' broadcast codes in registers (3 × 16
// spilled accumulators). Narrow weights (≤ 7 bits) take mpq_conv_avx2_narrow on bytes.
#include "CKernels.h"
#include <immintrin.h>

#if defined(__x86_64__)
#include "dyadic_avx2.h"

// Columns 0…count−1 of two vectors of 8 Int32 to out: whole by plain stores (a masked store is
// slow on AMD cores), a partial block masked.
__attribute__((target("avx2"), always_inline))
static inline void mpq_i2_store16(void *out, int64_t count, __m256i m0, __m256i m1, __m256i q0, __m256i q1) {
    if (count == 16) {
        _mm256_storeu_si256((__m256i *)out, q0);
        _mm256_storeu_si256((__m256i *)out + 1, q1);
    } else {
        _mm256_maskstore_epi32((int *)out, m0, q0);
        _mm256_maskstore_epi32((int *)out + 8, m1, q1);
    }
}

// The epilogue on one row's sums, columns col…col+count (count ≤ 16) as two vectors of 8: bias;
// for modes 1 and 2 the dyadic multiply, a residual branch added with Int32 wrap-around, clamp;
// store (codes: the 16 lanes packed to bytes, one store).
__attribute__((target("avx2"), always_inline))
static inline void mpq_i2_epilogue(__m256i acc0, __m256i acc1, const mpq_epilogue *e, int64_t col, int64_t count, void *out, const void *res) {
    // bias, mult and shift are padded to whole blocks of 16 columns: full loads stay in bounds.
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), lane);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count - 8), lane);
    __m256i q0 = _mm256_add_epi32(acc0, _mm256_loadu_si256((const __m256i *)(e->bias + col)));
    __m256i q1 = _mm256_add_epi32(acc1, _mm256_loadu_si256((const __m256i *)(e->bias + col + 8)));
    if (e->mode == 0) {
        mpq_i2_store16(out, count, m0, m1, q0, q1);
        return;
    }
    const __m256i mu0 = _mm256_loadu_si256((const __m256i *)(e->mult + col)), mu1 = _mm256_loadu_si256((const __m256i *)(e->mult + col + 8));
    const __m256i s0 = _mm256_loadu_si256((const __m256i *)(e->shift + col)), s1 = _mm256_loadu_si256((const __m256i *)(e->shift + col + 8));
    if (e->shift32) {
        q0 = mpq_i2_dyadic32(q0, mu0, s0); q1 = mpq_i2_dyadic32(q1, mu1, s1);
    } else {
        q0 = mpq_i2_dyadic(q0, mu0, s0); q1 = mpq_i2_dyadic(q1, mu1, s1);
    }
    if (e->residual == 1) {
        q0 = _mm256_add_epi32(q0, _mm256_maskload_epi32((const int *)res, m0));
        q1 = _mm256_add_epi32(q1, _mm256_maskload_epi32((const int *)res + 8, m1));
    } else if (e->residual) {
        // Codes (2, 3) or Int32 at another scale (4), through the branch's own dyadic.
        __m256i c0, c1;
        if (e->residual == 4) {
            c0 = _mm256_maskload_epi32((const int *)res, m0);
            c1 = _mm256_maskload_epi32((const int *)res + 8, m1);
        } else {
            uint8_t bytes[16] = {0};
            __builtin_memcpy(bytes, res, (size_t)count);
            const __m128i b8 = _mm_loadu_si128((const __m128i *)bytes);
            c0 = e->residual == 2 ? _mm256_cvtepu8_epi32(b8) : _mm256_cvtepi8_epi32(b8);
            c1 = e->residual == 2 ? _mm256_cvtepu8_epi32(_mm_srli_si128(b8, 8)) : _mm256_cvtepi8_epi32(_mm_srli_si128(b8, 8));
        }
        const __m256i rm = _mm256_set1_epi32(e->rmult), rs = _mm256_set1_epi32(e->rshift);
        if (e->rshift >= 32 && e->rmult != INT32_MIN) {
            q0 = _mm256_add_epi32(q0, mpq_i2_dyadic32(c0, rm, rs)); q1 = _mm256_add_epi32(q1, mpq_i2_dyadic32(c1, rm, rs));
        } else {
            q0 = _mm256_add_epi32(q0, mpq_i2_dyadic(c0, rm, rs)); q1 = _mm256_add_epi32(q1, mpq_i2_dyadic(c1, rm, rs));
        }
    }
    const __m256i lo = _mm256_set1_epi32(e->lo), hi = _mm256_set1_epi32(e->hi);
    q0 = _mm256_min_epi32(_mm256_max_epi32(q0, lo), hi);
    q1 = _mm256_min_epi32(_mm256_max_epi32(q1, lo), hi);
    if (e->mode == 1) {
        mpq_i2_store16(out, count, m0, m1, q0, q1);
        return;
    }
    // Codes: the low byte of each lane (as the Swift tile stores them), packed without saturation
    // (0…255 fits both packs): 32 → 16 bits within each 128-bit half ([q0 0–3, q1 0–3 | q0 4–7,
    // q1 4–7]), the 64-bit quarters put in order (q0 then q1), 16 → 8 bits.
    const __m256i byte = _mm256_set1_epi32(0xFF);
    const __m256i w = _mm256_permute4x64_epi64(_mm256_packus_epi32(_mm256_and_si256(q0, byte), _mm256_and_si256(q1, byte)), 0xD8);
    const __m128i b = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
    if (count == 16) _mm_storeu_si128((__m128i *)out, b);
    else {
        uint8_t tmp[16];
        _mm_storeu_si128((__m128i *)tmp, b);
        __builtin_memcpy(out, tmp, (size_t)count);
    }
}

// A sub-tile's (≤ 2 rows × ≤ 16 columns) column sums, row 0 as r0a (columns 0–7) and r0b (8–15),
// row 1 as r1a, r1b, through the epilogue into out[i] (and its residual from res[i]) at `column`.
__attribute__((target("avx2"), always_inline))
static inline void mpq_i2_finish(int64_t rows, int64_t cols, __m256i r0a, __m256i r0b, __m256i r1a, __m256i r1b,
                                 const mpq_epilogue *e, int64_t column, void *const *out, const void *const *res) {
    const int64_t bytes = e->mode == 2 ? 1 : 4, rbytes = mpq_residual_bytes(e);
    mpq_i2_epilogue(r0a, r0b, e, column, cols, (char *)out[0] + column * bytes, e->residual ? (const char *)res[0] + column * rbytes : 0);
    if (rows > 1)
        mpq_i2_epilogue(r1a, r1b, e, column, cols, (char *)out[1] + column * bytes, e->residual ? (const char *)res[1] + column * rbytes : 0);
}

// Sums of a sub-tile, pair sums folded and columns put in order: 8 Int32 columns.
__attribute__((target("avx2"), always_inline))
static inline __m256i mpq_i2_fold(__m256i lo4, __m256i hi4) {
    // hadd: [c0 c1 c4 c5 | c2 c3 c6 c7]; 64-bit elements (0, 2, 1, 3) put them in order.
    return _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo4, hi4), 0xD8);
}

// Codes src[0…n) XORed with `flip` (0, or 0x80 for signed codes read as unsigned), widened to
// Int16 into dst, 16 at a time.
__attribute__((target("avx2")))
void mpq_widen_codes_avx2(const uint8_t *src, int64_t n, uint8_t flip, int16_t *dst) {
    const __m128i x = _mm_set1_epi8((char)flip);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_cvtepu8_epi16(_mm_xor_si128(_mm_loadu_si128((const __m128i *)(src + i)), x)));
    for (; i < n; i++) dst[i] = (int16_t)(uint8_t)(src[i] ^ flip);
}

// Up to 2 pixels × up to 16 columns (one block of the widened weights, `b` at its start), the
// pixels' codes already Int16: per step (tap t, group g of 4 channels) two 8-byte broadcasts,
// four weight loads and 8 multiply-adds into 8 accumulators (each 4 columns × two pair sums).
__attribute__((target("avx2"), always_inline))
static inline void mpq_i2_tile(int64_t rows, int64_t cols, const int16_t *p0, const int16_t *p1,
                               const int64_t *taps, int64_t ntaps, int64_t gpp, const int16_t *b,
                               const mpq_epilogue *e, int64_t column, void *const *out, const void *const *res) {
    __m256i c0a = _mm256_setzero_si256(), c0b = c0a, c0c = c0a, c0d = c0a;
    __m256i c1a = c0a, c1b = c0a, c1c = c0a, c1d = c0a;
    const int16_t *w = b;
    for (int64_t t = 0; t < ntaps; t++) {
        const int16_t *q0 = p0 + taps[t], *q1 = p1 + taps[t];
        for (int64_t g = 0; g < gpp; g++, w += 64) {
            int64_t x0, x1;
            __builtin_memcpy(&x0, q0 + 4 * g, 8);
            __builtin_memcpy(&x1, q1 + 4 * g, 8);
            const __m256i a0 = _mm256_set1_epi64x(x0), a1 = _mm256_set1_epi64x(x1);
            const __m256i v0 = _mm256_loadu_si256((const __m256i *)w), v1 = _mm256_loadu_si256((const __m256i *)(w + 16));
            const __m256i v2 = _mm256_loadu_si256((const __m256i *)(w + 32)), v3 = _mm256_loadu_si256((const __m256i *)(w + 48));
            c0a = _mm256_add_epi32(c0a, _mm256_madd_epi16(a0, v0)); c1a = _mm256_add_epi32(c1a, _mm256_madd_epi16(a1, v0));
            c0b = _mm256_add_epi32(c0b, _mm256_madd_epi16(a0, v1)); c1b = _mm256_add_epi32(c1b, _mm256_madd_epi16(a1, v1));
            c0c = _mm256_add_epi32(c0c, _mm256_madd_epi16(a0, v2)); c1c = _mm256_add_epi32(c1c, _mm256_madd_epi16(a1, v2));
            c0d = _mm256_add_epi32(c0d, _mm256_madd_epi16(a0, v3)); c1d = _mm256_add_epi32(c1d, _mm256_madd_epi16(a1, v3));
        }
    }
    mpq_i2_finish(rows, cols, mpq_i2_fold(c0a, c0b), mpq_i2_fold(c0c, c0d), mpq_i2_fold(c1a, c1b), mpq_i2_fold(c1c, c1d),
                  e, column, out, res);
}

__attribute__((target("avx2")))
void mpq_conv_avx2(int64_t rows, int64_t cols, const int16_t *const *a, const int64_t *taps, int64_t ntaps, int64_t gpp,
                   const int16_t *b, int64_t bstride, const mpq_epilogue *e, int64_t column,
                   void *const *out, const void *const *res) {
    for (int64_t c = 0; c < cols; c += 16) {
        const int16_t *bc = b + c / 16 * bstride;
        for (int64_t r = 0; r < rows; r += 2) {
            const int64_t n = rows - r < 2 ? rows - r : 2;
            const int16_t *const *ar = a + r;
            mpq_i2_tile(n, cols - c < 16 ? cols - c : 16, ar[0], ar[n > 1 ? 1 : 0], taps, ntaps, gpp,
                        bc, e, column + c, out + r, res ? res + r : 0);
        }
    }
}

// The tile on weights whose codes all lie in −m…m−1 with m ≤ 64, in the VNNI layout as bytes
// (b[block][group][16 columns][4]): vpmaddubsw multiplies a pixel's 4 codes by a column's 4
// weights into two pair sums, each at most 2·255·m ≤ 32,640 in magnitude — exact. `steps`
// (⌊32,767 / (510·m)⌋: 1 for 7-bit weights, 8 for 4-bit, 32 for 2-bit) pair sums are added in
// Int16 before vpmaddwd with ones widens them to Int32 (4 products a column): narrower weights
// are fewer multiplies. 2 pixels × 16 columns: 4 Int16 and 4 Int32 accumulators.
__attribute__((target("avx2"), always_inline))
static inline void mpq_i2_narrow_tile(int64_t rows, int64_t cols, const uint8_t *p0, const uint8_t *p1,
                                      const int64_t *taps, int64_t ntaps, int64_t gpp, uint32_t flip, const int8_t *b,
                                      int64_t steps, const mpq_epilogue *e, int64_t column, void *const *out,
                                      const void *const *res) {
    const __m256i ones = _mm256_set1_epi16(1), fx = _mm256_set1_epi32((int32_t)flip);
    __m256i s0a = _mm256_setzero_si256(), s0b = s0a, s1a = s0a, s1b = s0a;
    __m256i h0a = s0a, h0b = s0a, h1a = s0a, h1b = s0a;
    const int8_t *w = b;
    int64_t pending = 0;
    for (int64_t t = 0; t < ntaps; t++) {
        const uint8_t *q0 = p0 + taps[t], *q1 = p1 + taps[t];
        for (int64_t g = 0; g < gpp; g++, w += 64) {
            int32_t c0, c1;
            __builtin_memcpy(&c0, q0 + 4 * g, 4);
            __builtin_memcpy(&c1, q1 + 4 * g, 4);
            const __m256i a0 = _mm256_xor_si256(_mm256_set1_epi32(c0), fx), a1 = _mm256_xor_si256(_mm256_set1_epi32(c1), fx);
            const __m256i v0 = _mm256_loadu_si256((const __m256i *)w), v1 = _mm256_loadu_si256((const __m256i *)(w + 32));
            h0a = _mm256_add_epi16(h0a, _mm256_maddubs_epi16(a0, v0)); h0b = _mm256_add_epi16(h0b, _mm256_maddubs_epi16(a0, v1));
            h1a = _mm256_add_epi16(h1a, _mm256_maddubs_epi16(a1, v0)); h1b = _mm256_add_epi16(h1b, _mm256_maddubs_epi16(a1, v1));
            if (++pending == steps) {
                s0a = _mm256_add_epi32(s0a, _mm256_madd_epi16(h0a, ones)); s0b = _mm256_add_epi32(s0b, _mm256_madd_epi16(h0b, ones));
                s1a = _mm256_add_epi32(s1a, _mm256_madd_epi16(h1a, ones)); s1b = _mm256_add_epi32(s1b, _mm256_madd_epi16(h1b, ones));
                h0a = h0b = h1a = h1b = _mm256_setzero_si256();
                pending = 0;
            }
        }
    }
    s0a = _mm256_add_epi32(s0a, _mm256_madd_epi16(h0a, ones)); s0b = _mm256_add_epi32(s0b, _mm256_madd_epi16(h0b, ones));
    s1a = _mm256_add_epi32(s1a, _mm256_madd_epi16(h1a, ones)); s1b = _mm256_add_epi32(s1b, _mm256_madd_epi16(h1b, ones));
    mpq_i2_finish(rows, cols, s0a, s0b, s1a, s1b, e, column, out, res);
}

__attribute__((target("avx2")))
void mpq_conv_avx2_narrow(int64_t rows, int64_t cols, const uint8_t *const *a, const int64_t *taps, int64_t ntaps, int64_t gpp,
                          uint32_t flip, const int8_t *b, int64_t bstride, int64_t steps, const mpq_epilogue *e, int64_t column,
                          void *const *out, const void *const *res) {
    for (int64_t c = 0; c < cols; c += 16) {
        const int8_t *bc = b + c / 16 * bstride;
        for (int64_t r = 0; r < rows; r += 2) {
            const int64_t n = rows - r < 2 ? rows - r : 2;
            const uint8_t *const *ar = a + r;
            mpq_i2_narrow_tile(n, cols - c < 16 ? cols - c : 16, ar[0], ar[n > 1 ? 1 : 0], taps, ntaps, gpp, flip,
                               bc, steps, e, column + c, out + r, res ? res + r : 0);
        }
    }
}

// Depthwise convolution with the tile's epilogue, as mpq_depthwise_avx512 (vnni.c): per output
// pixel, 16 channels at a time in two 8-lane halves, codes widened to Int32 (signed or
// unsigned) times each tap's Int32 weights (vpmulld: exact, 8-bit codes by 8-bit weights).
// The 16-byte code loads may read up to 15 bytes past the last channel of a tap (the engine's
// buffers allow it; DepthwiseConv.pixel reads the same); weights past `channels` are zero.
__attribute__((target("avx2")))
void mpq_depthwise_avx2(int64_t pixels, const int64_t *starts, const int64_t *outs, const uint8_t *in, char *out, int64_t out_bytes,
                        const int64_t *taps, int64_t ntaps, const int32_t *w, int64_t ldw, int64_t channels, int32_t is_signed,
                        const mpq_epilogue *e) {
    for (int64_t p = 0; p < pixels; p++) {
        const uint8_t *x = in + starts[p];
        char *o = out + outs[p] * out_bytes;
        for (int64_t c = 0; c < channels; c += 16) {
            __m256i a0 = _mm256_setzero_si256(), a1 = a0;
            for (int64_t t = 0; t < ntaps; t++) {
                const __m128i v = _mm_loadu_si128((const __m128i *)(x + taps[t] + c));
                const __m256i c0 = is_signed ? _mm256_cvtepi8_epi32(v) : _mm256_cvtepu8_epi32(v);
                const __m256i c1 = is_signed ? _mm256_cvtepi8_epi32(_mm_srli_si128(v, 8)) : _mm256_cvtepu8_epi32(_mm_srli_si128(v, 8));
                const int32_t *wt = w + t * ldw + c;
                a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(c0, _mm256_loadu_si256((const __m256i *)wt)));
                a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(c1, _mm256_loadu_si256((const __m256i *)(wt + 8))));
            }
            mpq_i2_epilogue(a0, a1, e, c, channels - c < 16 ? channels - c : 16, o + c * out_bytes, 0);
        }
    }
}
// One row of `n` Int32 sums through the epilogue, 16 columns at a time (a binary layer's pixel on
// CPUs without vpopcntq: Kernels/BinaryConv+Layer.swift).
__attribute__((target("avx2")))
void mpq_epilogue_row_avx2(const int32_t *sums, int64_t n, const mpq_epilogue *e, char *out, const char *res) {
    const int64_t bytes = e->mode == 2 ? 1 : 4, rbytes = mpq_residual_bytes(e);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t c = 0; c < n; c += 16) {
        const int64_t count = n - c < 16 ? n - c : 16;
        const __m256i a0 = _mm256_maskload_epi32(sums + c, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), lane));
        const __m256i a1 = _mm256_maskload_epi32(sums + c + 8, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count - 8), lane));
        mpq_i2_epilogue(a0, a1, e, c, count, out + c * bytes, e->residual ? res + c * rbytes : 0);
    }
}
#else
void mpq_epilogue_row_avx2(const int32_t *sums, int64_t n, const mpq_epilogue *e, char *out, const char *res) {
    (void)sums; (void)n; (void)e; (void)out; (void)res;
}
void mpq_widen_codes_avx2(const uint8_t *src, int64_t n, uint8_t flip, int16_t *dst) {
    (void)src; (void)n; (void)flip; (void)dst;
}
void mpq_conv_avx2(int64_t rows, int64_t cols, const int16_t *const *a, const int64_t *taps, int64_t ntaps, int64_t gpp,
                   const int16_t *b, int64_t bstride, const mpq_epilogue *e, int64_t column,
                   void *const *out, const void *const *res) {
    (void)rows; (void)cols; (void)a; (void)taps; (void)ntaps; (void)gpp; (void)b; (void)bstride; (void)e;
    (void)column; (void)out; (void)res;
}
void mpq_conv_avx2_narrow(int64_t rows, int64_t cols, const uint8_t *const *a, const int64_t *taps, int64_t ntaps, int64_t gpp,
                          uint32_t flip, const int8_t *b, int64_t bstride, int64_t steps, const mpq_epilogue *e, int64_t column,
                          void *const *out, const void *const *res) {
    (void)rows; (void)cols; (void)a; (void)taps; (void)ntaps; (void)gpp; (void)flip; (void)b; (void)bstride; (void)steps;
    (void)e; (void)column; (void)out; (void)res;
}
void mpq_depthwise_avx2(int64_t pixels, const int64_t *starts, const int64_t *outs, const uint8_t *in, char *out, int64_t out_bytes,
                        const int64_t *taps, int64_t ntaps, const int32_t *w, int64_t ldw, int64_t channels, int32_t is_signed,
                        const mpq_epilogue *e) {
    (void)pixels; (void)starts; (void)outs; (void)in; (void)out; (void)out_bytes; (void)taps; (void)ntaps; (void)w; (void)ldw;
    (void)channels; (void)is_signed; (void)e;
}
#endif
