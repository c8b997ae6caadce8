// Shared by the float line kernels (conv_f32.c, conv_f32_avx2.c): the steps compiled in and
// the pointers of a line's pixels.
#ifndef MPQ_LINE_F32_H
#define MPQ_LINE_F32_H
#include <stdint.h>

// X(S) for each step (floats between neighbouring pixels' receptive fields) the line kernels
// compile, one register addressing a whole tile: FloatTile.rowSteps lists the same.
#define MPQ_LINE_STEPS(X) \
    X(1) X(2) X(3) X(6) X(16) X(24) X(32) X(48) X(64) X(96) X(128) X(256) X(512) X(1024) X(2048)

// Pixels first ..< first + n of a line: receptive fields `step` floats apart from `a`, outputs
// `ostep` apart from `out`, residuals `rstep` apart from `res` (all null without one).
static inline void mpq_line_pointers(int64_t first, int64_t n, const float *a, int64_t step, float *out, int64_t ostep,
                                     const float *res, int64_t rstep, const float **p, float **o, const float **r) {
    for (int64_t k = 0; k < n; k++) {
        if (p) p[k] = a + (first + k) * step;
        o[k] = out + (first + k) * ostep;
        r[k] = res ? res + (first + k) * rstep : 0;
    }
}

// A line kernel's body (its arguments named count, a, step, out, ostep, res, rstep): whole
// tiles of 12 through CASE(S) for the step S, then the last `left` pixels, their pointers in
// p, o and r, through TAIL. Returns 0 when the step is not compiled in.
#define MPQ_LINE_BODY(CASE, TAIL) \
    float *o[12]; \
    const float *r[12], *p[12]; \
    int64_t i = 0; \
    switch (step) { \
        MPQ_LINE_STEPS(CASE) \
        default: return 0; \
    } \
    const int64_t left = count - i; \
    if (left > 0) { \
        mpq_line_pointers(i, left, a, step, out, ostep, res, rstep, p, o, r); \
        TAIL; \
    } \
    return 1;
#endif
