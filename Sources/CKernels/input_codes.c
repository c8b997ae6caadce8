// The integer engine's entry step: an image plane of floats to codes, q = x / scale in Double
// rounded half away from zero, clamped to lo…hi, stored as its low byte `stride` bytes apart
// (Kernels/InputCodes.swift holds the plain loop this is tested against). The rounding is
// trunc(q) moved one step away from zero where the rest is at least a half (exact: q − trunc(q)
// is exact in Double), which the compiler makes vector code of — one clone per instruction
// set, picked when the program loads.
#include "CKernels.h"
#include <math.h>

#if defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void mpq_input_codes(const float *restrict src, int64_t count, double scale, int32_t lo, int32_t hi, uint8_t *restrict dst, int64_t stride) {
    const double dlo = (double)lo, dhi = (double)hi;
    // 64 codes at a time into a contiguous block (vector code), then stored `stride` apart.
    int32_t block[64];
    for (int64_t i0 = 0; i0 < count; i0 += 64) {
        const int64_t n = count - i0 < 64 ? count - i0 : 64;
        for (int64_t i = 0; i < n; i++) {
            const double q = (double)src[i0 + i] / scale;
            double t = trunc(q);
            const double rest = q - t;
            t += rest >= 0.5 ? 1.0 : rest <= -0.5 ? -1.0 : 0.0;
            t = t < dlo ? dlo : t > dhi ? dhi : t;
            block[i] = (int32_t)t;
        }
        for (int64_t i = 0; i < n; i++) dst[(i0 + i) * stride] = (uint8_t)block[i];
    }
}
