// Packing a transposed operand for the f32 GEMM: dst[p·nr + j] = src[j·ld + p] for j < n (zero
// for n ≤ j < nr), p < k. Full 16×16 blocks are transposed in registers (AVX-512: unpacks of
// pairs, then of 64-bit pairs, then two 128-bit lane shuffles); the ragged edges go element by
// element. Kernels/SGEMM.swift's packB holds the plain loop this replaces and is tested against.
// `mpq_pack_rows_f32` is the same transposition for A's MR-row slivers (MR = 6, 8 or 12: any
// height, 8 rows at a time), held to SGEMM.packRowsReference.
#include "CKernels.h"
#include <immintrin.h>

static void plain(int64_t p0, int64_t p1, int64_t j0, int64_t j1, const float *src, int64_t ld, float *dst, int64_t nr) {
    for (int64_t p = p0; p < p1; p++)
        for (int64_t j = j0; j < j1; j++) dst[p * nr + j] = src[j * ld + p];
}

#if defined(__x86_64__)
__attribute__((target("avx512f")))
static void block16(const float *src, int64_t ld, float *dst, int64_t nr) {
    __m512 r[16], t[16], u[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * ld);
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    // u[4g + q]: rows 4g…4g+3 of element 4L + q in each 128-bit lane L.
    for (int g = 0; g < 4; g++) {
        __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
        __m512d c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
        u[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int q = 0; q < 4; q++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x88), v1 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xDD);
        __m512 w0 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x88), w1 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xDD);
        _mm512_storeu_ps(dst + (0 + q) * nr, _mm512_shuffle_f32x4(v0, w0, 0x88));
        _mm512_storeu_ps(dst + (8 + q) * nr, _mm512_shuffle_f32x4(v0, w0, 0xDD));
        _mm512_storeu_ps(dst + (4 + q) * nr, _mm512_shuffle_f32x4(v1, w1, 0x88));
        _mm512_storeu_ps(dst + (12 + q) * nr, _mm512_shuffle_f32x4(v1, w1, 0xDD));
    }
}

// Up to 8 rows of 8 columns with AVX2 (unpacks of pairs, of 64-bit pairs, then 128-bit halves):
// the rows past `rows` read as zero, and only the first `rows` lanes of each output row are
// stored (so a 6-row sliver never writes past its 6 floats).
__attribute__((target("avx2")))
static void rows8(const float *src, int64_t ld, int64_t rows, float *dst, int64_t nr) {
    __m256 r[8], t[8], u[8];
    for (int i = 0; i < 8; i++) r[i] = i < rows ? _mm256_loadu_ps(src + i * ld) : _mm256_setzero_ps();
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int g = 0; g < 2; g++) {
        __m256d a = _mm256_castps_pd(t[4 * g]), b = _mm256_castps_pd(t[4 * g + 1]);
        __m256d c = _mm256_castps_pd(t[4 * g + 2]), d = _mm256_castps_pd(t[4 * g + 3]);
        u[4 * g + 0] = _mm256_castpd_ps(_mm256_unpacklo_pd(a, c));
        u[4 * g + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(a, c));
        u[4 * g + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(b, d));
        u[4 * g + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(b, d));
    }
    __m256 v8[8];
    for (int q = 0; q < 4; q++) {
        v8[q] = _mm256_permute2f128_ps(u[q], u[4 + q], 0x20);
        v8[4 + q] = _mm256_permute2f128_ps(u[q], u[4 + q], 0x31);
    }
    for (int q = 0; q < 8; q++) {
        const __m256 v = v8[q];
        float *out = dst + q * nr;
        if (rows == 8) { _mm256_storeu_ps(out, v); continue; }
        __m128 half = _mm256_castps256_ps128(v);
        int64_t left = rows;
        if (left >= 4) { _mm_storeu_ps(out, half); half = _mm256_extractf128_ps(v, 1); out += 4; left -= 4; }
        if (left >= 2) { _mm_storel_pi((__m64 *)out, half); half = _mm_movehl_ps(half, half); out += 2; left -= 2; }
        if (left == 1) _mm_store_ss(out, half);
    }
}
#endif

void mpq_pack_rows_f32(int64_t k, int64_t rows, const float *src, int64_t ld, float *dst, int64_t mr) {
    static int avx2 = -1;   // probed once (a benign race: every thread writes the same value)
    if (avx2 < 0) avx2 = mpq_cpu_has_avx2_fma();
    int64_t k8 = 0;
#if defined(__x86_64__)
    if (avx2) {
        k8 = k / 8 * 8;
        for (int64_t r = 0; r < rows; r += 8) {
            const int64_t height = rows - r < 8 ? rows - r : 8;
            for (int64_t p = 0; p < k8; p += 8) rows8(src + r * ld + p, ld, height, dst + p * mr + r, mr);
        }
    }
#endif
    plain(k8, k, 0, rows, src, ld, dst, mr);
    for (int64_t p = 0; p < k; p++)
        for (int64_t j = rows; j < mr; j++) dst[p * mr + j] = 0;
}

void mpq_pack_transposed_f32(int64_t k, int64_t n, const float *src, int64_t ld, float *dst, int64_t nr) {
    static int wide = -1, avx2 = -1;   // probed once (a benign race: every thread writes the same value)
    if (wide < 0) wide = mpq_cpu_has_avx512f();
    if (avx2 < 0) avx2 = mpq_cpu_has_avx2_fma();
    int64_t k16 = 0, n16 = 0;
#if defined(__x86_64__)
    if (wide) {
        k16 = k / 16 * 16; n16 = n / 16 * 16;
        for (int64_t p = 0; p < k16; p += 16)
            for (int64_t j = 0; j < n16; j += 16) block16(src + j * ld + p, ld, dst + p * nr + j, nr);
    } else if (avx2) {
        k16 = k / 8 * 8; n16 = n / 8 * 8;
        for (int64_t p = 0; p < k16; p += 8)
            for (int64_t j = 0; j < n16; j += 8) rows8(src + j * ld + p, ld, 8, dst + p * nr + j, nr);
    }
#endif
    plain(0, k16, n16, n, src, ld, dst, nr);
    plain(k16, k, 0, n, src, ld, dst, nr);
    for (int64_t p = 0; p < k; p++)
        for (int64_t j = n; j < nr; j++) dst[p * nr + j] = 0;
}
