// The float plan's kernels for CPUs with AVX2 and FMA but no AVX-512: the same entry points,
// layouts and sums as conv_f32.c (bias first, then tap by tap and channel by channel, one fused
// multiply-add each, so they agree exactly with Kernels/FloatTile.swift's plain loops). Sixteen
// ymm registers hold a 6-pixel × 16-channel sub-tile (12 accumulators, two weight vectors, one
// broadcast); a 12 × 32 tile is four of them.
#include "CKernels.h"
#include "line_f32.h"
#include <immintrin.h>

#if defined(__x86_64__)
// Lanes below n set (n clamped to 0…8): the mask of a partial store or load.
__attribute__((target("avx2"), always_inline))
static inline __m256i mpq_f2_mask(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n < 0 ? 0 : n > 8 ? 8 : n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#define MPQ_F2_ROW(i) { const __m256 v = _mm256_broadcast_ss(q##i + ci); c##i##a = _mm256_fmadd_ps(v, w0, c##i##a); c##i##b = _mm256_fmadd_ps(v, w1, c##i##b); }

// Up to 6 rows × up to 16 columns (one packed block `b`) from `column`.
__attribute__((target("avx2,fma"), always_inline))
static inline void mpq_f2_tile(int64_t rows, int64_t cols, const float *p0, const float *p1, const float *p2, const float *p3,
                               const float *p4, const float *p5, const int64_t *taps, int64_t ntaps, int64_t cin,
                               const float *b, const float *bias, float lo, float hi, int64_t column,
                               float *const *out, const float *const *res) {
    const __m256 b0 = _mm256_loadu_ps(bias + column), b1 = _mm256_loadu_ps(bias + column + 8);
    __m256 c0a = b0, c1a = b0, c2a = b0, c3a = b0, c4a = b0, c5a = b0;
    __m256 c0b = b1, c1b = b1, c2b = b1, c3b = b1, c4b = b1, c5b = b1;
    for (int64_t t = 0; t < ntaps; t++) {
        const int64_t off = taps[t];
        const float *q0 = p0 + off, *q1 = p1 + off, *q2 = p2 + off, *q3 = p3 + off, *q4 = p4 + off, *q5 = p5 + off;
        const float *wt = b + t * cin * 16;
        for (int64_t ci = 0; ci < cin; ci++) {
            const __m256 w0 = _mm256_loadu_ps(wt + ci * 16), w1 = _mm256_loadu_ps(wt + ci * 16 + 8);
            MPQ_F2_ROW(0) MPQ_F2_ROW(1) MPQ_F2_ROW(2) MPQ_F2_ROW(3) MPQ_F2_ROW(4) MPQ_F2_ROW(5)
        }
    }
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    const __m256i m0 = mpq_f2_mask(cols), m1 = mpq_f2_mask(cols - 8);
    const int full = cols >= 16;
#define MPQ_F2_STORE(i) \
    if (i < rows) { \
        __m256 ya = c##i##a, yb = c##i##b; \
        float *o = out[i] + column; \
        if (full) { \
            if (res) { ya = _mm256_add_ps(ya, _mm256_loadu_ps(res[i] + column)); yb = _mm256_add_ps(yb, _mm256_loadu_ps(res[i] + column + 8)); } \
            _mm256_storeu_ps(o, _mm256_min_ps(_mm256_max_ps(ya, vlo), vhi)); \
            _mm256_storeu_ps(o + 8, _mm256_min_ps(_mm256_max_ps(yb, vlo), vhi)); \
        } else { \
            if (res) { ya = _mm256_add_ps(ya, _mm256_maskload_ps(res[i] + column, m0)); yb = _mm256_add_ps(yb, _mm256_maskload_ps(res[i] + column + 8, m1)); } \
            _mm256_maskstore_ps(o, m0, _mm256_min_ps(_mm256_max_ps(ya, vlo), vhi)); \
            _mm256_maskstore_ps(o + 8, m1, _mm256_min_ps(_mm256_max_ps(yb, vlo), vhi)); \
        } \
    }
    MPQ_F2_STORE(0) MPQ_F2_STORE(1) MPQ_F2_STORE(2) MPQ_F2_STORE(3) MPQ_F2_STORE(4) MPQ_F2_STORE(5)
#undef MPQ_F2_STORE
}
#undef MPQ_F2_ROW

__attribute__((target("avx2,fma")))
void mpq_conv_f32_avx2(int64_t rows, int64_t cols, const float *const *a, const int64_t *taps, int64_t ntaps, int64_t cin,
                       const float *b, int64_t bstride, const float *bias, float lo, float hi, int64_t column,
                       float *const *out, const float *const *res) {
    for (int64_t r = 0; r < rows; r += 6) {
        const int64_t n = rows - r < 6 ? rows - r : 6;
        const float *const *ar = a + r;
        for (int64_t c = 0; c < cols; c += 16) {
            mpq_f2_tile(n, cols - c < 16 ? cols - c : 16, ar[0], ar[n > 1 ? 1 : 0], ar[n > 2 ? 2 : 0], ar[n > 3 ? 3 : 0],
                        ar[n > 4 ? 4 : 0], ar[n > 5 ? 5 : 0], taps, ntaps, cin, b + c / 16 * bstride, bias, lo, hi, column + c,
                        out + r, res ? res + r : 0);
        }
    }
}

#define MPQ_F2_LINE(S) \
    case S: \
        for (; i + 12 <= count; i += 12) { \
            mpq_line_pointers(i, 12, a, S, out, ostep, res, rstep, 0, o, r); \
            for (int64_t h = 0; h < 12; h += 6) { \
                const float *q = a + (i + h) * S; \
                for (int64_t c = 0; c < cols; c += 16) \
                    mpq_f2_tile(6, cols - c < 16 ? cols - c : 16, q, q + S, q + 2 * S, q + 3 * S, q + 4 * S, q + 5 * S, \
                                taps, ntaps, cin, b + c / 16 * bstride, bias, lo, hi, column + c, o + h, res ? r + h : 0); \
            } \
        } \
        break;

__attribute__((target("avx2,fma")))
int mpq_conv_f32_line_avx2(int64_t count, int64_t cols, const float *a, int64_t step, float *out, int64_t ostep,
                           const float *res, int64_t rstep, const int64_t *taps, int64_t ntaps, int64_t cin,
                           const float *b, int64_t bstride, const float *bias, float lo, float hi, int64_t column) {
    MPQ_LINE_BODY(MPQ_F2_LINE, mpq_conv_f32_avx2(left, cols, p, taps, ntaps, cin, b, bstride, bias, lo, hi, column, o, res ? r : 0))
}
#undef MPQ_F2_LINE

// One pixel × up to 128 columns, eight ymm vectors (64 columns) of sums in flight per pass.
__attribute__((target("avx2,fma")))
void mpq_conv_f32_row_avx2(int64_t cols, const float *a, const int64_t *taps, int64_t ntaps, int64_t cin,
                           const float *b, int64_t bstride, const float *bias, float lo, float hi, int64_t column,
                           float *out, const float *res) {
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    for (int64_t first = 0; first < cols; first += 64) {
        const int64_t vectors = (cols - first + 7) / 8 < 8 ? (cols - first + 7) / 8 : 8;
        // Vector v covers columns first + 8v …: packed block (first + 8v) / 16, half (v % 2). Vectors
        // past `cols` repeat the first one's weights and are not stored.
        const float *w[8];
        for (int64_t v = 0; v < 8; v++) {
            const int64_t j = first + 8 * (v < vectors ? v : 0);
            w[v] = b + j / 16 * bstride + j % 16;
        }
        const float *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3], *w4 = w[4], *w5 = w[5], *w6 = w[6], *w7 = w[7];
        const float *bb = bias + column + first;
        __m256 c0 = _mm256_loadu_ps(bb), c1 = _mm256_loadu_ps(bb + (vectors > 1 ? 8 : 0));
        __m256 c2 = _mm256_loadu_ps(bb + (vectors > 2 ? 16 : 0)), c3 = _mm256_loadu_ps(bb + (vectors > 3 ? 24 : 0));
        __m256 c4 = _mm256_loadu_ps(bb + (vectors > 4 ? 32 : 0)), c5 = _mm256_loadu_ps(bb + (vectors > 5 ? 40 : 0));
        __m256 c6 = _mm256_loadu_ps(bb + (vectors > 6 ? 48 : 0)), c7 = _mm256_loadu_ps(bb + (vectors > 7 ? 56 : 0));
        for (int64_t t = 0; t < ntaps; t++) {
            const float *q = a + taps[t];
            const int64_t o = t * cin * 16;
            for (int64_t ci = 0; ci < cin; ci++) {
                const __m256 v = _mm256_broadcast_ss(q + ci);
                const int64_t k = o + ci * 16;
                c0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w0 + k), c0); c1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w1 + k), c1);
                c2 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w2 + k), c2); c3 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w3 + k), c3);
                c4 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w4 + k), c4); c5 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w5 + k), c5);
                c6 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w6 + k), c6); c7 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w7 + k), c7);
            }
        }
        const __m256 acc[8] = {c0, c1, c2, c3, c4, c5, c6, c7};
        for (int64_t v = 0; v < vectors; v++) {
            const int64_t j = column + first + 8 * v;
            __m256 y = acc[v];
            // A whole vector by a plain store (a masked store is slow on AMD cores).
            if (cols - first - 8 * v >= 8) {
                if (res) y = _mm256_add_ps(y, _mm256_loadu_ps(res + j));
                _mm256_storeu_ps(out + j, _mm256_min_ps(_mm256_max_ps(y, vlo), vhi));
                continue;
            }
            const __m256i mask = mpq_f2_mask(cols - first - 8 * v);
            if (res) y = _mm256_add_ps(y, _mm256_maskload_ps(res + j, mask));
            _mm256_maskstore_ps(out + j, mask, _mm256_min_ps(_mm256_max_ps(y, vlo), vhi));
        }
    }
}

// Depthwise as in conv_f32.c: blocks of 32 channels give a pixel four chains at once; the
// whole vectors past the last block take four pixels at once; the last partial vector is
// masked, pixel by pixel (a masked store is slow on AMD cores: only there).
__attribute__((target("avx2,fma")))
void mpq_depthwise_f32_avx2(int64_t pixels, const float *const *a, float *const *out, const int64_t *taps, int64_t ntaps,
                            const float *w, int64_t ldw, int64_t channels, const float *bias, float lo, float hi) {
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    const int64_t wide = channels / 32 * 32, whole = channels / 8 * 8;
    for (int64_t p = 0; p < pixels; p++) {
        const float *x = a[p];
        float *o = out[p];
        for (int64_t c = 0; c < wide; c += 32) {
            __m256 s0 = _mm256_loadu_ps(bias + c), s1 = _mm256_loadu_ps(bias + c + 8);
            __m256 s2 = _mm256_loadu_ps(bias + c + 16), s3 = _mm256_loadu_ps(bias + c + 24);
            for (int64_t t = 0; t < ntaps; t++) {
                const float *xt = x + taps[t] + c, *wt = w + t * ldw + c;
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(xt), _mm256_loadu_ps(wt), s0);
                s1 = _mm256_fmadd_ps(_mm256_loadu_ps(xt + 8), _mm256_loadu_ps(wt + 8), s1);
                s2 = _mm256_fmadd_ps(_mm256_loadu_ps(xt + 16), _mm256_loadu_ps(wt + 16), s2);
                s3 = _mm256_fmadd_ps(_mm256_loadu_ps(xt + 24), _mm256_loadu_ps(wt + 24), s3);
            }
            _mm256_storeu_ps(o + c, _mm256_min_ps(_mm256_max_ps(s0, vlo), vhi));
            _mm256_storeu_ps(o + c + 8, _mm256_min_ps(_mm256_max_ps(s1, vlo), vhi));
            _mm256_storeu_ps(o + c + 16, _mm256_min_ps(_mm256_max_ps(s2, vlo), vhi));
            _mm256_storeu_ps(o + c + 24, _mm256_min_ps(_mm256_max_ps(s3, vlo), vhi));
        }
        if (whole < channels) {
            const int64_t c = whole;
            const __m256i mask = mpq_f2_mask(channels - c);
            __m256 s = _mm256_maskload_ps(bias + c, mask);
            for (int64_t t = 0; t < ntaps; t++)
                s = _mm256_fmadd_ps(_mm256_maskload_ps(x + taps[t] + c, mask), _mm256_maskload_ps(w + t * ldw + c, mask), s);
            _mm256_maskstore_ps(o + c, mask, _mm256_min_ps(_mm256_max_ps(s, vlo), vhi));
        }
    }
    for (int64_t c = wide; c < whole; c += 8) {
        const __m256 b = _mm256_loadu_ps(bias + c);
        int64_t p = 0;
        for (; p + 4 <= pixels; p += 4) {
            const float *x0 = a[p] + c, *x1 = a[p + 1] + c, *x2 = a[p + 2] + c, *x3 = a[p + 3] + c;
            __m256 s0 = b, s1 = b, s2 = b, s3 = b;
            for (int64_t t = 0; t < ntaps; t++) {
                const int64_t k = taps[t];
                const __m256 wt = _mm256_loadu_ps(w + t * ldw + c);
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + k), wt, s0);
                s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x1 + k), wt, s1);
                s2 = _mm256_fmadd_ps(_mm256_loadu_ps(x2 + k), wt, s2);
                s3 = _mm256_fmadd_ps(_mm256_loadu_ps(x3 + k), wt, s3);
            }
            _mm256_storeu_ps(out[p] + c, _mm256_min_ps(_mm256_max_ps(s0, vlo), vhi));
            _mm256_storeu_ps(out[p + 1] + c, _mm256_min_ps(_mm256_max_ps(s1, vlo), vhi));
            _mm256_storeu_ps(out[p + 2] + c, _mm256_min_ps(_mm256_max_ps(s2, vlo), vhi));
            _mm256_storeu_ps(out[p + 3] + c, _mm256_min_ps(_mm256_max_ps(s3, vlo), vhi));
        }
        for (; p < pixels; p++) {
            __m256 s = b;
            for (int64_t t = 0; t < ntaps; t++)
                s = _mm256_fmadd_ps(_mm256_loadu_ps(a[p] + taps[t] + c), _mm256_loadu_ps(w + t * ldw + c), s);
            _mm256_storeu_ps(out[p] + c, _mm256_min_ps(_mm256_max_ps(s, vlo), vhi));
        }
    }
}
#else
void mpq_conv_f32_avx2(int64_t rows, int64_t cols, const float *const *a, const int64_t *taps, int64_t ntaps, int64_t cin,
                       const float *b, int64_t bstride, const float *bias, float lo, float hi, int64_t column,
                       float *const *out, const float *const *res) {
    (void)rows; (void)cols; (void)a; (void)taps; (void)ntaps; (void)cin; (void)b; (void)bstride; (void)bias; (void)lo; (void)hi;
    (void)column; (void)out; (void)res;
}
int mpq_conv_f32_line_avx2(int64_t count, int64_t cols, const float *a, int64_t step, float *out, int64_t ostep,
                           const float *res, int64_t rstep, const int64_t *taps, int64_t ntaps, int64_t cin,
                           const float *b, int64_t bstride, const float *bias, float lo, float hi, int64_t column) {
    (void)count; (void)cols; (void)a; (void)step; (void)out; (void)ostep; (void)res; (void)rstep; (void)taps; (void)ntaps;
    (void)cin; (void)b; (void)bstride; (void)bias; (void)lo; (void)hi; (void)column;
    return 0;
}
void mpq_conv_f32_row_avx2(int64_t cols, const float *a, const int64_t *taps, int64_t ntaps, int64_t cin,
                           const float *b, int64_t bstride, const float *bias, float lo, float hi, int64_t column,
                           float *out, const float *res) {
    (void)cols; (void)a; (void)taps; (void)ntaps; (void)cin; (void)b; (void)bstride; (void)bias; (void)lo; (void)hi;
    (void)column; (void)out; (void)res;
}
void mpq_depthwise_f32_avx2(int64_t pixels, const float *const *a, float *const *out, const int64_t *taps, int64_t ntaps,
                            const float *w, int64_t ldw, int64_t channels, const float *bias, float lo, float hi) {
    (void)pixels; (void)a; (void)out; (void)taps; (void)ntaps; (void)w; (void)ldw; (void)channels; (void)bias; (void)lo; (void)hi;
}
#endif
