// Packing odd widths needs each 8-byte lane's low `bits` bytes squeezed together: vpcompressb
// (AVX-512 VBMI2) does it in one instruction, which Swift cannot reach. The Swift version in
// Kernels/BitPacking.swift is the oracle and the fallback; tests compare the two.
#include "CKernels.h"
#include <immintrin.h>

int mpq_cpu_has_avx512_vbmi2(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vbmi2") && __builtin_cpu_supports("avx512bw");
#else
    return 0;
#endif
}

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512vbmi2")))
void mpq_pack_vbmi2(const uint8_t *src, int64_t groups, int bits, uint8_t *dst) {
    const uint64_t w = (uint64_t)bits;
    const uint64_t field = (1ull << w) - 1;
    const __m512i byteMask = _mm512_set1_epi64((long long)(field * 0x0101010101010101ull));
    // Three halving steps: keep the low part, move the high part down by the gap.
    const __m512i byteLow = _mm512_set1_epi64((long long)(field * 0x0001000100010001ull));
    const __m512i byteHigh = _mm512_set1_epi64((long long)((field << w) * 0x0001000100010001ull));
    const __m512i quarterLow = _mm512_set1_epi64((long long)(((1ull << (2 * w)) - 1) * 0x0000000100000001ull));
    const __m512i quarterHigh = _mm512_set1_epi64((long long)((((1ull << (2 * w)) - 1) << (2 * w)) * 0x0000000100000001ull));
    const __m512i halfLow = _mm512_set1_epi64((long long)((1ull << (4 * w)) - 1));
    const __m512i halfHigh = _mm512_set1_epi64((long long)(((1ull << (4 * w)) - 1) << (4 * w)));
    // Bytes 0…w−1 of every 8-byte lane.
    uint64_t keep = 0;
    for (int lane = 0; lane < 8; lane++) keep |= ((1ull << w) - 1) << (8 * lane);
    const __mmask64 store = (w * 8 == 64) ? ~0ull : ((1ull << (8 * w)) - 1);
    int64_t g = 0;
    for (; g + 8 <= groups; g += 8) {
        __m512i v = _mm512_and_si512(_mm512_loadu_si512((const void *)(src + g * 8)), byteMask);
        v = _mm512_or_si512(_mm512_and_si512(v, byteLow), _mm512_and_si512(_mm512_srli_epi64(v, 8 - w), byteHigh));
        v = _mm512_or_si512(_mm512_and_si512(v, quarterLow), _mm512_and_si512(_mm512_srli_epi64(v, 16 - 2 * w), quarterHigh));
        v = _mm512_or_si512(_mm512_and_si512(v, halfLow), _mm512_and_si512(_mm512_srli_epi64(v, 32 - 4 * w), halfHigh));
        __m512i packed = _mm512_maskz_compress_epi8((__mmask64)keep, v);
        _mm512_mask_storeu_epi8((void *)(dst + g * w), store, packed);
    }
    // Remaining whole groups, one lane at a time.
    for (; g < groups; g++) {
        uint64_t v = 0;
        for (int j = 0; j < 8; j++) v |= ((uint64_t)src[g * 8 + j] & field) << (w * j);
        for (uint64_t b = 0; b < w; b++) dst[g * w + b] = (uint8_t)(v >> (8 * b));
    }
}
#else
void mpq_pack_vbmi2(const uint8_t *src, int64_t groups, int bits, uint8_t *dst) {
    (void)src; (void)groups; (void)bits; (void)dst;
}
#endif
