// The training path's direct 3×3 convolution kernel (Kernels/DirectConv) for CPUs with AVX2 and
// FMA but no AVX-512: the generated Swift kernel's 8 channels × 2 vectors of 16 pixels need 32
// ymm accumulators, so LLVM spilled most of them. Here the same tile runs as four passes of
// 4 channels × 16 pixels (8 accumulators, two input vectors, one broadcast weight), each output
// summed in the same order (bias, then channel by channel, tap by tap, one fused multiply-add
// each), so it equals the Swift kernel exactly.
#include "CKernels.h"
#include <immintrin.h>

#if defined(__x86_64__)
__attribute__((target("avx2,fma"), always_inline))
static inline void mpq_d2_pass(int64_t cin, const float *input, int64_t planeStride, int64_t rowStride, const float *w,
                               const float *bias, int relu, float *output, int64_t channelStride, int64_t count) {
    __m256 a0 = _mm256_broadcast_ss(bias), b0 = a0, a1 = _mm256_broadcast_ss(bias + 1), b1 = a1;
    __m256 a2 = _mm256_broadcast_ss(bias + 2), b2 = a2, a3 = _mm256_broadcast_ss(bias + 3), b3 = a3;
    for (int64_t ci = 0; ci < cin; ci++) {
        for (int64_t u = 0; u < 3; u++) {
            const float *r = input + ci * planeStride + u * rowStride;
            for (int64_t v = 0; v < 3; v++) {
                const __m256 x0 = _mm256_loadu_ps(r + v), x1 = _mm256_loadu_ps(r + v + 8);
                __m256 k = _mm256_broadcast_ss(w);
                a0 = _mm256_fmadd_ps(k, x0, a0); b0 = _mm256_fmadd_ps(k, x1, b0);
                k = _mm256_broadcast_ss(w + 1);
                a1 = _mm256_fmadd_ps(k, x0, a1); b1 = _mm256_fmadd_ps(k, x1, b1);
                k = _mm256_broadcast_ss(w + 2);
                a2 = _mm256_fmadd_ps(k, x0, a2); b2 = _mm256_fmadd_ps(k, x1, b2);
                k = _mm256_broadcast_ss(w + 3);
                a3 = _mm256_fmadd_ps(k, x0, a3); b3 = _mm256_fmadd_ps(k, x1, b3);
                w += 8;
            }
        }
    }
    const __m256 zero = _mm256_setzero_ps();
    if (relu) {
        a0 = _mm256_max_ps(a0, zero); b0 = _mm256_max_ps(b0, zero); a1 = _mm256_max_ps(a1, zero); b1 = _mm256_max_ps(b1, zero);
        a2 = _mm256_max_ps(a2, zero); b2 = _mm256_max_ps(b2, zero); a3 = _mm256_max_ps(a3, zero); b3 = _mm256_max_ps(b3, zero);
    }
    const __m256 acc[4][2] = {{a0, b0}, {a1, b1}, {a2, b2}, {a3, b3}};
    if (count == 16) {
        for (int c = 0; c < 4; c++) {
            _mm256_storeu_ps(output + c * channelStride, acc[c][0]);
            _mm256_storeu_ps(output + c * channelStride + 8, acc[c][1]);
        }
        return;
    }
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(count < 8 ? count : 8)), lanes);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(count > 8 ? count - 8 : 0)), lanes);
    for (int c = 0; c < 4; c++) {
        _mm256_maskstore_ps(output + c * channelStride, m0, acc[c][0]);
        _mm256_maskstore_ps(output + c * channelStride + 8, m1, acc[c][1]);
    }
}

__attribute__((target("avx2,fma")))
void mpq_direct3x3_avx2(int64_t cin, const float *input0, const float *input1, int64_t planeStride, int64_t rowStride,
                        const float *weights, const float *bias, int32_t relu, float *output0, float *output1,
                        int64_t channelStride, int64_t count0, int64_t count1) {
    for (int64_t half = 0; half < 2; half++) {
        const float *w = weights + 4 * half;
        if (count0 > 0) mpq_d2_pass(cin, input0, planeStride, rowStride, w, bias + 4 * half, relu,
                                    output0 + 4 * half * channelStride, channelStride, count0);
        if (count1 > 0) mpq_d2_pass(cin, input1, planeStride, rowStride, w, bias + 4 * half, relu,
                                    output1 + 4 * half * channelStride, channelStride, count1);
    }
}
// One tile of the weight gradient: two tap rows (ci, u) × three taps v × MR = 2 (or 1) vectors of
// 8 output channels, summed over every output pixel of one image. dwt is the gradient transposed,
// dwt[t·ldd + co] for tap t = (ci·3 + u)·3 + v; dyt the output gradient channels-last.
#define MPQ_W2_FMA(R, V) { const __m256 b = _mm256_broadcast_ss(row##R + xo + V); \
    s##R##V##a = _mm256_fmadd_ps(b, d0, s##R##V##a); if (two) s##R##V##b = _mm256_fmadd_ps(b, d1, s##R##V##b); }
__attribute__((target("avx2,fma"), always_inline))
static inline void mpq_w2_tile(int two, int rows2, const float *r0, const float *r1, int64_t rowStride, int64_t oh, int64_t ow,
                               int64_t stride, const float *dyt, int64_t cout, float *dwt, int64_t ldd) {
    float *t00 = dwt, *t01 = dwt + ldd, *t02 = dwt + 2 * ldd, *t10 = dwt + 3 * ldd, *t11 = dwt + 4 * ldd, *t12 = dwt + 5 * ldd;
    __m256 s00a = _mm256_loadu_ps(t00), s01a = _mm256_loadu_ps(t01), s02a = _mm256_loadu_ps(t02);
    __m256 s00b = two ? _mm256_loadu_ps(t00 + 8) : s00a, s01b = two ? _mm256_loadu_ps(t01 + 8) : s01a, s02b = two ? _mm256_loadu_ps(t02 + 8) : s02a;
    __m256 s10a = rows2 ? _mm256_loadu_ps(t10) : s00a, s11a = rows2 ? _mm256_loadu_ps(t11) : s00a, s12a = rows2 ? _mm256_loadu_ps(t12) : s00a;
    __m256 s10b = rows2 && two ? _mm256_loadu_ps(t10 + 8) : s00a, s11b = rows2 && two ? _mm256_loadu_ps(t11 + 8) : s00a;
    __m256 s12b = rows2 && two ? _mm256_loadu_ps(t12 + 8) : s00a;
    for (int64_t y = 0; y < oh; y++) {
        const float *row0 = r0 + y * stride * rowStride, *row1 = r1 + y * stride * rowStride;
        const float *d = dyt + y * ow * cout;
        for (int64_t x = 0, xo = 0; x < ow; x++, xo += stride, d += cout) {
            const __m256 d0 = _mm256_loadu_ps(d), d1 = two ? _mm256_loadu_ps(d + 8) : d0;
            MPQ_W2_FMA(0, 0) MPQ_W2_FMA(0, 1) MPQ_W2_FMA(0, 2)
            if (rows2) { MPQ_W2_FMA(1, 0) MPQ_W2_FMA(1, 1) MPQ_W2_FMA(1, 2) }
        }
    }
    _mm256_storeu_ps(t00, s00a); _mm256_storeu_ps(t01, s01a); _mm256_storeu_ps(t02, s02a);
    if (two) { _mm256_storeu_ps(t00 + 8, s00b); _mm256_storeu_ps(t01 + 8, s01b); _mm256_storeu_ps(t02 + 8, s02b); }
    if (rows2) {
        _mm256_storeu_ps(t10, s10a); _mm256_storeu_ps(t11, s11a); _mm256_storeu_ps(t12, s12a);
        if (two) { _mm256_storeu_ps(t10 + 8, s10b); _mm256_storeu_ps(t11 + 8, s11b); _mm256_storeu_ps(t12 + 8, s12b); }
    }
}
#undef MPQ_W2_FMA

__attribute__((target("avx2,fma")))
void mpq_wgrad3x3_avx2(int64_t cin, int64_t cout, const float *xpad, int64_t planeStride, int64_t rowStride, int64_t oh, int64_t ow,
                       int64_t stride, const float *dyt, float *dwt) {
    const int64_t rows = cin * 3;
    for (int64_t co = 0; co < cout; co += 16) {
        const int two = cout - co >= 16;
        for (int64_t r = 0; r < rows; r += 2) {
            const int rows2 = r + 1 < rows;
            const float *r0 = xpad + (r / 3) * planeStride + (r % 3) * rowStride;
            const float *r1 = rows2 ? xpad + ((r + 1) / 3) * planeStride + ((r + 1) % 3) * rowStride : r0;
            // The branches on `two` and `rows2` are hoisted out of the pixel loop by each inlined copy.
            if (two && rows2) mpq_w2_tile(1, 1, r0, r1, rowStride, oh, ow, stride, dyt + co, cout, dwt + r * 3 * cout + co, cout);
            else if (two) mpq_w2_tile(1, 0, r0, r1, rowStride, oh, ow, stride, dyt + co, cout, dwt + r * 3 * cout + co, cout);
            else if (rows2) mpq_w2_tile(0, 1, r0, r1, rowStride, oh, ow, stride, dyt + co, cout, dwt + r * 3 * cout + co, cout);
            else mpq_w2_tile(0, 0, r0, r1, rowStride, oh, ow, stride, dyt + co, cout, dwt + r * 3 * cout + co, cout);
        }
    }
}
#else
void mpq_direct3x3_avx2(int64_t cin, const float *input0, const float *input1, int64_t planeStride, int64_t rowStride,
                        const float *weights, const float *bias, int32_t relu, float *output0, float *output1,
                        int64_t channelStride, int64_t count0, int64_t count1) {
    (void)cin; (void)input0; (void)input1; (void)planeStride; (void)rowStride; (void)weights; (void)bias; (void)relu;
    (void)output0; (void)output1; (void)channelStride; (void)count0; (void)count1;
}
void mpq_wgrad3x3_avx2(int64_t cin, int64_t cout, const float *xpad, int64_t planeStride, int64_t rowStride, int64_t oh, int64_t ow,
                       int64_t stride, const float *dyt, float *dwt) {
    (void)cin; (void)cout; (void)xpad; (void)planeStride; (void)rowStride; (void)oh; (void)ow; (void)stride; (void)dyt; (void)dwt;
}
#endif
