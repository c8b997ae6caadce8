// The integer engine's max pooling of unsigned byte codes (Kernels/WindowMaximum.swift's
// unsignedRow, which the tests hold to the plain maximum): each window's maximum kept in the
// output row and raised tap by tap, the channels innermost so the compiler makes vector maxima
// of them (vpmaxub) — one clone per instruction set, picked when the program loads.
#include "CKernels.h"

#if defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("avx512bw", "avx2", "default")))
#endif
void mpq_window_max_u8(const uint8_t *first, int64_t count, int64_t window_step, int64_t kh, int64_t kw, int64_t row_step,
                       int64_t pixel_step, int64_t channels, uint8_t *restrict dst, int64_t dst_step) {
    for (int64_t j = 0; j < count; j++) {
        const uint8_t *restrict src = first + j * window_step;
        uint8_t *restrict out = dst + j * dst_step;
        for (int64_t c = 0; c < channels; c++) out[c] = src[c];
        for (int64_t u = 0; u < kh; u++) {
            for (int64_t v = 0; v < kw; v++) {
                const uint8_t *restrict p = src + u * row_step + v * pixel_step;
                for (int64_t c = 0; c < channels; c++) out[c] = p[c] > out[c] ? p[c] : out[c];
            }
        }
    }
}
