// The f32 GEMM's AVX-512 micro-kernel reading A in place: `rows` ≤ 12 rows × `cols` ≤ 32 columns
// of the tile (a sliver's last `cols` < 32: masked loads and stores, and one vector of sums when
// `cols` ≤ 16 — a 10-class classifier's tiles do half the multiply-adds of whole ones, and nothing is merged), row i
// at a + i·lda (row-major, k contiguous), instead of an MR-row sliver packed k-major. A linear
// layer's activations are such rows, and packing them cost 8% of an MLP's batch
// (Kernels/SGEMM+Packed); a block's last rows (256 = 21·12 + 4) take the same kernel with fewer
// accumulators instead of a whole 12-row tile. Each row's pointer lives in its own register
// (the loop indexes them all by k). Each sum is the generated Swift kernel's
// (sgemmMicroKernel12x32): from zero, one fused multiply-add per k in order, then α·sum
// (+ β·C): the two agree exactly. A linear layer's bias and ReLU are applied before the tile is
// stored, with the arithmetic of the packing path's separate pass (`SGEMM.epilogue`). The kernel
// reports whether any value it stored was NaN or infinite before the ReLU (x − x unordered): one
// subtraction and compare a vector stored, beside kc·24 multiply-adds. On a layer's last K slice
// that tells the model whether its input held one (a NaN or infinite A element makes every sum
// of its row NaN or infinite), so it need not read the input once more to check (Network/Model).
#include "CKernels.h"
#include <immintrin.h>

#if defined(__x86_64__)
#define MPQ_UNROLL _Pragma("clang loop unroll(full)")

__attribute__((target("avx512f"), always_inline))
static inline int32_t mpq_rows_tile(const int R, const int V, int64_t kc, const float *a, int64_t lda, const float *b, float *c,
                                 int64_t ldc, int64_t cols, float alpha, float beta, const float *bias, int relu) {
    const float *p[12];
    __m512 acc[12][2];
    MPQ_UNROLL for (int i = 0; i < R; i++) {
        p[i] = a + i * lda;
        // Hidden from the optimizer: otherwise it rederives each row from the last with an add per row per k.
        __asm__("" : "+r"(p[i]));
        acc[i][0] = _mm512_setzero_ps(); acc[i][1] = acc[i][0];
    }
    for (int64_t k = 0; k < kc; k++, b += 32) {
        const __m512 b0 = _mm512_loadu_ps(b), b1 = V > 1 ? _mm512_loadu_ps(b + 16) : b0;
        MPQ_UNROLL for (int i = 0; i < R; i++) {
            const __m512 v = _mm512_set1_ps(p[i][k]);
            acc[i][0] = _mm512_fmadd_ps(v, b0, acc[i][0]);
            if (V > 1) acc[i][1] = _mm512_fmadd_ps(v, b1, acc[i][1]);
        }
    }
    // Columns past `cols` are neither read (C, bias) nor written.
    const __mmask16 m0 = cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1);
    const __mmask16 m1 = cols >= 32 ? (__mmask16)0xFFFF : cols > 16 ? (__mmask16)((1u << (cols - 16)) - 1) : 0;
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta), zero = _mm512_setzero_ps();
    const __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : zero, b1 = bias && V > 1 ? _mm512_maskz_loadu_ps(m1, bias + 16) : zero;
    __mmask16 bad = 0;
    MPQ_UNROLL for (int i = 0; i < R; i++) {
        float *r = c + i * ldc;
        __m512 x = _mm512_mul_ps(acc[i][0], va), y = _mm512_mul_ps(acc[i][1], va);
        if (beta != 0) {
            x = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, r), x);
            if (V > 1) y = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, r + 16), y);
        }
        if (bias) { x = _mm512_add_ps(x, b0); y = _mm512_add_ps(y, b1); }
        bad |= _mm512_mask_cmp_ps_mask(m0, _mm512_sub_ps(x, x), zero, _CMP_UNORD_Q);
        if (V > 1) bad |= _mm512_mask_cmp_ps_mask(m1, _mm512_sub_ps(y, y), zero, _CMP_UNORD_Q);
        if (relu) {
            // Swift's max(v, 0) — 0 >= v ? 0 : v — exactly: NaN stays, −0 becomes +0.
            x = _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(x, zero, _CMP_LE_OQ), zero);
            y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(y, zero, _CMP_LE_OQ), zero);
        }
        _mm512_mask_storeu_ps(r, m0, x);
        if (V > 1) _mm512_mask_storeu_ps(r + 16, m1, y);
    }
    return bad != 0;
}

#define MPQ_ROWS_CASE(R) \
    case R: \
        return cols > 16 ? mpq_rows_tile(R, 2, kc, a, lda, b, c, ldc, cols, alpha, beta, bias, relu) \
                         : mpq_rows_tile(R, 1, kc, a, lda, b, c, ldc, cols, alpha, beta, bias, relu);
__attribute__((target("avx512f")))
int32_t mpq_sgemm_rows_avx512(int64_t kc, int64_t rows, int64_t cols, const float *a, int64_t lda, const float *b, float *c,
                              int64_t ldc, float alpha, float beta, const float *bias, int32_t relu) {
    switch (rows) {
        MPQ_ROWS_CASE(12) MPQ_ROWS_CASE(11) MPQ_ROWS_CASE(10) MPQ_ROWS_CASE(9) MPQ_ROWS_CASE(8) MPQ_ROWS_CASE(7)
        MPQ_ROWS_CASE(6) MPQ_ROWS_CASE(5) MPQ_ROWS_CASE(4) MPQ_ROWS_CASE(3) MPQ_ROWS_CASE(2) MPQ_ROWS_CASE(1)
        default: return 0;
    }
}
#undef MPQ_ROWS_CASE
#else
int32_t mpq_sgemm_rows_avx512(int64_t kc, int64_t rows, int64_t cols, const float *a, int64_t lda, const float *b, float *c,
                              int64_t ldc, float alpha, float beta, const float *bias, int32_t relu) {
    (void)kc; (void)rows; (void)cols; (void)a; (void)lda; (void)b; (void)c; (void)ldc; (void)alpha; (void)beta; (void)bias; (void)relu;
    return 0;
}
#endif
