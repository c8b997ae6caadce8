// The weight gradient of a 3×3 convolution (Kernels/DirectConv.swift, DirectWeightGradient) with
// AVX-512: each output channel's sixteen lanes of the output gradient (channels-last) times a
// broadcast input value, summed over the image's output pixels. A tile holds R tap rows (ci, u) ×
// the 3 taps v of each row × V vectors of 16 output channels (R·3·V = 24 accumulators: V = 4, 2
// or 1 with R = 2, 4 or 8), so each pixel costs V vector loads and 3R broadcasts for 3RV fused
// multiply-adds. Each sum runs pixel by pixel from the value already in `dwt`, one fused
// multiply-add each, as the AVX2 kernel and DirectWeightGradient.reference do: all three agree
// exactly.
#include "CKernels.h"
#include <immintrin.h>

#if defined(__x86_64__)
#define MPQ_UNROLL _Pragma("clang loop unroll(full)")

__attribute__((target("avx512f"), always_inline))
static inline void mpq_wg_tile(const int V, const int R, const float *xpad, int64_t row0, int64_t planeStride, int64_t rowStride,
                               int64_t oh, int64_t ow, int64_t stride, const float *dyt, int64_t cout, float *dwt) {
    const float *rows[8];
    MPQ_UNROLL for (int r = 0; r < R; r++) rows[r] = xpad + ((row0 + r) / 3) * planeStride + ((row0 + r) % 3) * rowStride;
    float *out = dwt + row0 * 3 * cout;
    __m512 acc[8][3][4];
    MPQ_UNROLL for (int r = 0; r < R; r++) MPQ_UNROLL for (int v = 0; v < 3; v++) MPQ_UNROLL for (int j = 0; j < V; j++)
        acc[r][v][j] = _mm512_loadu_ps(out + (r * 3 + v) * cout + 16 * j);
    const float *d = dyt;
    for (int64_t y = 0; y < oh; y++) {
        for (int64_t x = 0, o = y * stride * rowStride; x < ow; x++, o += stride, d += cout) {
            __m512 dv[4];
            MPQ_UNROLL for (int j = 0; j < V; j++) dv[j] = _mm512_loadu_ps(d + 16 * j);
            MPQ_UNROLL for (int r = 0; r < R; r++) MPQ_UNROLL for (int v = 0; v < 3; v++) {
                const __m512 b = _mm512_set1_ps(rows[r][o + v]);
                MPQ_UNROLL for (int j = 0; j < V; j++) acc[r][v][j] = _mm512_fmadd_ps(b, dv[j], acc[r][v][j]);
            }
        }
    }
    MPQ_UNROLL for (int r = 0; r < R; r++) MPQ_UNROLL for (int v = 0; v < 3; v++) MPQ_UNROLL for (int j = 0; j < V; j++)
        _mm512_storeu_ps(out + (r * 3 + v) * cout + 16 * j, acc[r][v][j]);
}

// Every tap row of one block of V·16 output channels: tiles of R rows, then the rest one at a time.
#define MPQ_WG_BLOCK(V, R) \
    __attribute__((target("avx512f"))) \
    static void mpq_wg_block_##V(int64_t rows, const float *xpad, int64_t planeStride, int64_t rowStride, int64_t oh, int64_t ow, \
                                 int64_t stride, const float *dyt, int64_t cout, float *dwt) { \
        int64_t r = 0; \
        for (; r + R <= rows; r += R) mpq_wg_tile(V, R, xpad, r, planeStride, rowStride, oh, ow, stride, dyt, cout, dwt); \
        for (; r < rows; r++) mpq_wg_tile(V, 1, xpad, r, planeStride, rowStride, oh, ow, stride, dyt, cout, dwt); \
    }
MPQ_WG_BLOCK(4, 2)
MPQ_WG_BLOCK(2, 4)
MPQ_WG_BLOCK(1, 8)
#undef MPQ_WG_BLOCK

__attribute__((target("avx512f")))
void mpq_wgrad3x3_avx512(int64_t cin, int64_t cout, const float *xpad, int64_t planeStride, int64_t rowStride, int64_t oh, int64_t ow,
                         int64_t stride, const float *dyt, float *dwt) {
    const int64_t rows = cin * 3;
    int64_t co = 0;
    for (; co + 64 <= cout; co += 64) mpq_wg_block_4(rows, xpad, planeStride, rowStride, oh, ow, stride, dyt + co, cout, dwt + co);
    for (; co + 32 <= cout; co += 32) mpq_wg_block_2(rows, xpad, planeStride, rowStride, oh, ow, stride, dyt + co, cout, dwt + co);
    for (; co + 16 <= cout; co += 16) mpq_wg_block_1(rows, xpad, planeStride, rowStride, oh, ow, stride, dyt + co, cout, dwt + co);
}
#else
void mpq_wgrad3x3_avx512(int64_t cin, int64_t cout, const float *xpad, int64_t planeStride, int64_t rowStride, int64_t oh, int64_t ow,
                         int64_t stride, const float *dyt, float *dwt) {
    (void)cin; (void)cout; (void)xpad; (void)planeStride; (void)rowStride; (void)oh; (void)ow; (void)stride; (void)dyt; (void)dwt;
}
#endif
