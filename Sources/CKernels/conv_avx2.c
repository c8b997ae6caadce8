// The integer engine's convolution tile for CPUs with AVX2 but no AVX-512 VNNI: the same sums
// and epilogue as mpq_conv_vnni (vnni.c), exactly. Without vpdpbusd, and since vpmaddubsw
// saturates 16-bit pair sums (255·127·2 > 32,767), codes go through vpmaddwd on 16-bit values:
// the weights are widened once when the layer is compiled (IntegerWeights.widened, the VNNI
// layout with Int16 codes: b[block][group][16 columns][4]), the activations per load. One
// 256-bit vpmaddwd is 16 exact multiply-adds. A sub-tile is 2 pixels × 16 columns: 8
// accumulators, four weight vectors and the two pixels' broadcast codes in registers (3 × 16
// spilled accumulators; widening each pixel's 4 codes per step kept the shuffle units busier
// than the multipliers, so the codes are widened 16 at a time into a buffer first).
#include "CKernels.h"
#include <immintrin.h>

#if defined(__x86_64__)
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

// The epilogue on one row's 8 sums (`count` ≤ 8 of them stored): bias; for modes 1 and 2 the
// dyadic multiply, a residual branch added with Int32 wrap-around, clamp; store.
__attribute__((target("avx2"), always_inline))
static inline void mpq_i2_epilogue(__m256i acc, const mpq_epilogue *e, int64_t col, int64_t count, void *out, const void *res) {
    // bias, mult and shift are padded to whole blocks of 16 columns: full loads stay in bounds.
    const __m256i y = _mm256_add_epi32(acc, _mm256_loadu_si256((const __m256i *)(e->bias + col)));
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    if (e->mode == 0) { _mm256_maskstore_epi32((int *)out, mask, y); return; }
    __m256i q = mpq_i2_dyadic(y, _mm256_loadu_si256((const __m256i *)(e->mult + col)),
                              _mm256_loadu_si256((const __m256i *)(e->shift + col)));
    if (e->residual == 1) {
        q = _mm256_add_epi32(q, _mm256_maskload_epi32((const int *)res, mask));
    } else if (e->residual) {
        int64_t bytes = 0;
        __builtin_memcpy(&bytes, res, (size_t)count);
        const __m128i b8 = _mm_cvtsi64_si128(bytes);
        const __m256i codes = e->residual == 2 ? _mm256_cvtepu8_epi32(b8) : _mm256_cvtepi8_epi32(b8);
        q = _mm256_add_epi32(q, mpq_i2_dyadic(codes, _mm256_set1_epi32(e->rmult), _mm256_set1_epi32(e->rshift)));
    }
    q = _mm256_min_epi32(_mm256_max_epi32(q, _mm256_set1_epi32(e->lo)), _mm256_set1_epi32(e->hi));
    if (e->mode == 1) { _mm256_maskstore_epi32((int *)out, mask, q); return; }
    // Low byte of each lane: bytes 0, 4, 8, 12 of each 128-bit half, then the two halves' words.
    const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                          0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i p = _mm256_shuffle_epi8(q, pick);
    const uint64_t word = (uint64_t)(uint32_t)_mm256_extract_epi32(p, 0) | ((uint64_t)(uint32_t)_mm256_extract_epi32(p, 4) << 32);
    __builtin_memcpy(out, &word, (size_t)count);
}

// Sums of a sub-tile, pair sums folded and columns put in order: 8 Int32 columns.
__attribute__((target("avx2"), always_inline))
static inline __m256i mpq_i2_fold(__m256i lo4, __m256i hi4) {
    // hadd: [c0 c1 c4 c5 | c2 c3 c6 c7]; 64-bit elements (0, 2, 1, 3) put them in order.
    return _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo4, hi4), 0xD8);
}

// Codes src[0…n) XORed with the 4-byte pattern `flip` (one byte per code of a group), widened
// to Int16 into dst: 16 at a time (n and the pattern's phase start at a group boundary).
__attribute__((target("avx2"), always_inline))
static inline void mpq_i2_widen(const uint8_t *src, int64_t n, uint32_t flip, int16_t *dst) {
    const __m128i x = _mm_set1_epi32((int32_t)flip);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_cvtepu8_epi16(_mm_xor_si128(_mm_loadu_si128((const __m128i *)(src + i)), x)));
    for (; i < n; i++) dst[i] = (int16_t)(uint8_t)(src[i] ^ (uint8_t)(flip >> (8 * (i % 4))));
}

// Steps (tap, group of 4 channels) the sub-tile's pixels are widened for at a time.
#define MPQ_I2_CHUNK 512

// Up to 2 pixels × up to 16 columns (one block of the widened weights, `b` at its start). Each
// pixel's codes are first widened to Int16 in the receptive field's order (steps t·gpp + g), so
// that the inner loop broadcasts them straight from memory: per step two broadcast loads, four
// weight loads and 8 multiply-adds into 8 accumulators (each 4 columns × two pair sums).
__attribute__((target("avx2"), always_inline))
static inline void mpq_i2_tile(int64_t rows, int64_t cols, const uint8_t *p0, const uint8_t *p1,
                               const int64_t *taps, int64_t ntaps, int64_t gpp, uint32_t flip, const int16_t *b,
                               const mpq_epilogue *e, int64_t column, void *const *out, const void *const *res) {
    int16_t q0[MPQ_I2_CHUNK * 4] __attribute__((aligned(32))), q1[MPQ_I2_CHUNK * 4] __attribute__((aligned(32)));
    __m256i c0a = _mm256_setzero_si256(), c0b = c0a, c0c = c0a, c0d = c0a;
    __m256i c1a = c0a, c1b = c0a, c1c = c0a, c1d = c0a;
    const int16_t *w = b;
    int64_t filled = 0;
    for (int64_t t = 0; t < ntaps; t++) {
        for (int64_t g = 0; g < gpp;) {
            const int64_t take = gpp - g < MPQ_I2_CHUNK - filled ? gpp - g : MPQ_I2_CHUNK - filled;
            mpq_i2_widen(p0 + taps[t] + 4 * g, 4 * take, flip, q0 + 4 * filled);
            mpq_i2_widen(p1 + taps[t] + 4 * g, 4 * take, flip, q1 + 4 * filled);
            filled += take; g += take;
            if (filled == MPQ_I2_CHUNK || (t == ntaps - 1 && g == gpp)) {
                for (int64_t s = 0; s < filled; s++, w += 64) {
                    const __m256i a0 = _mm256_set1_epi64x(*(const int64_t *)(q0 + 4 * s));
                    const __m256i a1 = _mm256_set1_epi64x(*(const int64_t *)(q1 + 4 * s));
                    const __m256i v0 = _mm256_loadu_si256((const __m256i *)w), v1 = _mm256_loadu_si256((const __m256i *)(w + 16));
                    const __m256i v2 = _mm256_loadu_si256((const __m256i *)(w + 32)), v3 = _mm256_loadu_si256((const __m256i *)(w + 48));
                    c0a = _mm256_add_epi32(c0a, _mm256_madd_epi16(a0, v0)); c1a = _mm256_add_epi32(c1a, _mm256_madd_epi16(a1, v0));
                    c0b = _mm256_add_epi32(c0b, _mm256_madd_epi16(a0, v1)); c1b = _mm256_add_epi32(c1b, _mm256_madd_epi16(a1, v1));
                    c0c = _mm256_add_epi32(c0c, _mm256_madd_epi16(a0, v2)); c1c = _mm256_add_epi32(c1c, _mm256_madd_epi16(a1, v2));
                    c0d = _mm256_add_epi32(c0d, _mm256_madd_epi16(a0, v3)); c1d = _mm256_add_epi32(c1d, _mm256_madd_epi16(a1, v3));
                }
                filled = 0;
            }
        }
    }
    const __m256i acc[2][2] = {{mpq_i2_fold(c0a, c0b), mpq_i2_fold(c0c, c0d)}, {mpq_i2_fold(c1a, c1b), mpq_i2_fold(c1c, c1d)}};
    const int64_t bytes = e->mode == 2 ? 1 : 4, rbytes = e->residual == 1 ? 4 : 1;
    for (int64_t h = 0; h < 2 && 8 * h < cols; h++) {
        const int64_t col = column + 8 * h, count = cols - 8 * h < 8 ? cols - 8 * h : 8;
        for (int64_t i = 0; i < rows; i++) {
            mpq_i2_epilogue(acc[i][h], e, col, count, (char *)out[i] + col * bytes,
                            e->residual ? (const char *)res[i] + col * rbytes : 0);
        }
    }
}
#undef MPQ_I2_CHUNK

__attribute__((target("avx2")))
void mpq_conv_avx2(int64_t rows, int64_t cols, const uint8_t *const *a, const int64_t *taps, int64_t ntaps, int64_t gpp,
                   uint32_t flip, const int16_t *b, int64_t bstride, const mpq_epilogue *e, int64_t column,
                   void *const *out, const void *const *res) {
    for (int64_t c = 0; c < cols; c += 16) {
        const int16_t *bc = b + c / 16 * bstride;
        for (int64_t r = 0; r < rows; r += 2) {
            const int64_t n = rows - r < 2 ? rows - r : 2;
            const uint8_t *const *ar = a + r;
            mpq_i2_tile(n, cols - c < 16 ? cols - c : 16, ar[0], ar[n > 1 ? 1 : 0], taps, ntaps, gpp, flip,
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
    const __m256i acc[2][2] = {{s0a, s0b}, {s1a, s1b}};
    const int64_t bytes = e->mode == 2 ? 1 : 4, rbytes = e->residual == 1 ? 4 : 1;
    for (int64_t h = 0; h < 2 && 8 * h < cols; h++) {
        const int64_t col = column + 8 * h, count = cols - 8 * h < 8 ? cols - 8 * h : 8;
        for (int64_t i = 0; i < rows; i++) {
            mpq_i2_epilogue(acc[i][h], e, col, count, (char *)out[i] + col * bytes,
                            e->residual ? (const char *)res[i] + col * rbytes : 0);
        }
    }
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
#else
void mpq_conv_avx2(int64_t rows, int64_t cols, const uint8_t *const *a, const int64_t *taps, int64_t ntaps, int64_t gpp,
                   uint32_t flip, const int16_t *b, int64_t bstride, const mpq_epilogue *e, int64_t column,
                   void *const *out, const void *const *res) {
    (void)rows; (void)cols; (void)a; (void)taps; (void)ntaps; (void)gpp; (void)flip; (void)b; (void)bstride; (void)e;
    (void)column; (void)out; (void)res;
}
void mpq_conv_avx2_narrow(int64_t rows, int64_t cols, const uint8_t *const *a, const int64_t *taps, int64_t ntaps, int64_t gpp,
                          uint32_t flip, const int8_t *b, int64_t bstride, int64_t steps, const mpq_epilogue *e, int64_t column,
                          void *const *out, const void *const *res) {
    (void)rows; (void)cols; (void)a; (void)taps; (void)ntaps; (void)gpp; (void)flip; (void)b; (void)bstride; (void)steps;
    (void)e; (void)column; (void)out; (void)res;
}
#endif
