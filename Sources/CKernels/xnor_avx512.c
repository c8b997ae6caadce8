// A binary convolution layer with AVX-512 (vpopcntq): XNOR-popcount over packed signs with the
// integer epilogue in registers, so a Bi-Real block's convolution, its scaling to the residual
// add, the add itself and the signs the next binary layer reads leave the kernel in one pass.
// Kernels/BinaryConv+Layer.swift holds the plain loop this is tested against.
#include "CKernels.h"

int mpq_cpu_has_avx512_vpopcntdq(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

#if defined(__x86_64__)
#include "epilogue_avx512.h"

#define MPQ_XNOR_TARGET target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vpopcntdq")

// Σ over pixel p's valid taps and `words` words of popcount(x ⊕ w) for two 8-channel blocks
// (w1 null: one block), as 64-bit lanes (called with a constant 1 for one-word pixels).
__attribute__((MPQ_XNOR_TARGET, always_inline))
static inline void mpq_xnor_dots(const uint64_t *x, uint64_t valid, const int64_t *relative, int64_t words,
                                 const uint64_t *w0, const uint64_t *w1, __m512i *a0, __m512i *a1) {
    __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
    while (valid) {
        const int64_t t = __builtin_ctzll(valid);
        valid &= valid - 1;
        const uint64_t *xt = x + relative[t];
        const int64_t o = t * words * 8;
        for (int64_t q = 0; q < words; q++) {
            const __m512i v = _mm512_set1_epi64((long long)xt[q]);
            s0 = _mm512_add_epi64(s0, _mm512_popcnt_epi64(_mm512_xor_si512(v, _mm512_loadu_si512((const void *)(w0 + o + q * 8)))));
            if (w1) s1 = _mm512_add_epi64(s1, _mm512_popcnt_epi64(_mm512_xor_si512(v, _mm512_loadu_si512((const void *)(w1 + o + q * 8)))));
        }
    }
    *a0 = s0; *a1 = s1;
}

// An interior pixel of a 3×3 layer (dilation 1, one word per pixel, at most 32 channels) with the
// taps packed: its three rows of three words (`row` words apart) in one vector, narrowed to 16
// bits a tap (vpmovqw: taps 0–3 and 4–7 in two words) or to 32 (vpmovqd: four words of two
// taps), tap 8 alone — 3 or 5 popcounts per 8 channels where the taps one by one take 9.
// `pw` holds the weights packed alike ([block of 8][packed word][8 lanes]).
__attribute__((MPQ_XNOR_TARGET, always_inline))
static inline void mpq_xnor_packed(const uint64_t *x, int64_t row, int lane16, const uint64_t *pw0, const uint64_t *pw1,
                                   __m512i *a0, __m512i *a1) {
    __m512i v = _mm512_maskz_loadu_epi64(0x07, x);
    v = _mm512_mask_loadu_epi64(v, 0x38, x + row - 3);
    v = _mm512_mask_loadu_epi64(v, 0xC0, x + 2 * row - 6);
    const __m512i last = _mm512_set1_epi64((long long)x[2 * row + 2]);
    __m512i s0 = _mm512_setzero_si512(), s1 = s0;
#define MPQ_XNOR_WORD(V, K) { const __m512i w_ = (V); \
        s0 = _mm512_add_epi64(s0, _mm512_popcnt_epi64(_mm512_xor_si512(w_, _mm512_loadu_si512((const void *)(pw0 + (K) * 8))))); \
        if (pw1) s1 = _mm512_add_epi64(s1, _mm512_popcnt_epi64(_mm512_xor_si512(w_, _mm512_loadu_si512((const void *)(pw1 + (K) * 8))))); }
    if (lane16) {
        const __m512i p = _mm512_castsi128_si512(_mm512_cvtepi64_epi16(v));
        MPQ_XNOR_WORD(_mm512_broadcastq_epi64(_mm512_castsi512_si128(p)), 0)
        MPQ_XNOR_WORD(_mm512_permutexvar_epi64(_mm512_set1_epi64(1), p), 1)
        MPQ_XNOR_WORD(last, 2)
    } else {
        const __m512i p = _mm512_castsi256_si512(_mm512_cvtepi64_epi32(v));
        MPQ_XNOR_WORD(_mm512_broadcastq_epi64(_mm512_castsi512_si128(p)), 0)
        MPQ_XNOR_WORD(_mm512_permutexvar_epi64(_mm512_set1_epi64(1), p), 1)
        MPQ_XNOR_WORD(_mm512_permutexvar_epi64(_mm512_set1_epi64(2), p), 2)
        MPQ_XNOR_WORD(_mm512_permutexvar_epi64(_mm512_set1_epi64(3), p), 3)
        MPQ_XNOR_WORD(last, 4)
    }
#undef MPQ_XNOR_WORD
    *a0 = s0; *a1 = s1;
}

// One block of 16 output channels from `col` (n of them live) over every pixel. The epilogue's
// form — mode, residual kind, short form, saturations, clamp — comes in as arguments so the
// common cases, called with constants, compile without a test per pixel (the constants replace
// k's fields, which the compiler then folds).
__attribute__((MPQ_XNOR_TARGET, always_inline))
static inline void mpq_xnor_block(const mpq_xnor_layer *L, const mpq_ep16 *k0, int64_t col, int64_t n, __mmask16 lanes,
                                  int32_t mode, int32_t residual, int32_t shift32, int32_t saturate, int32_t rsaturate, int clamp) {
    mpq_ep16 k = *k0;
    k.mode = mode; k.residual = residual; k.shift32 = shift32; k.saturate = saturate; k.rsaturate = rsaturate;
    const int64_t words = L->words, block = L->taps * words * 8, swords = (L->cout + 63) / 64;
    const int64_t out_bytes = mode == 2 ? 1 : 4, res_bytes = mpq_residual_kind_bytes(residual);
    const __m512i live = _mm512_maskz_loadu_epi32(lanes, L->mask + col);
    const __m512i shift = _mm512_set1_epi32((int)L->shift);
    // The low halves of the 64-bit counts of both 8-channel blocks, in order.
    const __m512i low = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const uint64_t *w0 = L->weights + (col / 8) * block, *w1 = n > 8 ? w0 + block : 0;
    const int64_t pblock = (L->packed_lanes == 16 ? 3 : 5) * 8;
    const uint64_t *pw0 = L->packed ? L->packed + (col / 8) * pblock : 0, *pw1 = pw0 && n > 8 ? pw0 + pblock : 0;
    for (int64_t p = 0; p < L->pixels; p++) {
        const uint64_t valid = L->valid[p];
        __m512i a0, a1;
        if (pw0 && valid == 0x1FF) mpq_xnor_packed(L->input + L->starts[p], L->row, L->packed_lanes == 16, pw0, pw1, &a0, &a1);
        else if (words == 1) mpq_xnor_dots(L->input + L->starts[p], valid, L->relative, 1, w0, w1, &a0, &a1);
        else mpq_xnor_dots(L->input + L->starts[p], valid, L->relative, words, w0, w1, &a0, &a1);
        const __m512i counts = _mm512_permutex2var_epi32(a0, low, a1);
        const __m512i base = _mm512_set1_epi32((int)(__builtin_popcountll(valid) * L->channels));
        const __m512i dots = _mm512_and_si512(_mm512_sllv_epi32(_mm512_sub_epi32(base, _mm512_add_epi32(counts, counts)), shift), live);
        char *out = L->out + (L->outs[p] + col) * out_bytes;
        const char *res = residual ? L->res + (L->res_starts[p] + col) * res_bytes : 0;
        __m512i q;
        if (mode == 0) q = _mm512_add_epi32(dots, k.bias);
        else {
            q = mpq_epilogue_q(dots, &k, lanes, res);
            if (clamp) q = _mm512_min_epi32(_mm512_max_epi32(q, k.lo), k.hi);
        }
        if (mode == 2) _mm_mask_storeu_epi8(out, lanes, _mm512_cvtepi32_epi8(q));
        else _mm512_mask_storeu_epi32(out, lanes, q);
        // Channels col…col+15 are bits col mod 64… of word col/64: the word's first block
        // writes it whole (the bits past cout clear), the others add their bits.
        if (L->signs) {
            const uint64_t bits = (uint64_t)(_mm512_cmplt_epi32_mask(q, _mm512_setzero_si512()) & lanes) << (col % 64);
            uint64_t *word = L->signs + p * swords + col / 64;
            *word = col % 64 ? *word | bits : bits;
        }
    }
}

// Output channels 16 at a time (the epilogue's constants loaded once per block), pixels inside.
// A Bi-Real block's layer (Int32 out, unclamped, the previous sum rescaled as its residual) runs
// one of six compiled forms; anything else the general one.
__attribute__((MPQ_XNOR_TARGET))
void mpq_xnor_layer_avx512(const mpq_xnor_layer *L) {
    const mpq_epilogue *e = L->e;
    for (int64_t col = 0; col < L->cout; col += 16) {
        const int64_t n = L->cout - col < 16 ? L->cout - col : 16;
        const __mmask16 lanes = (__mmask16)(n == 16 ? 0xFFFF : (1u << n) - 1);
        const mpq_ep16 k = mpq_epilogue_load(e, col, lanes);
        const int clamp = e->mode == 2 || e->lo != INT32_MIN || e->hi != INT32_MAX;
        if (e->mode == 1 && !clamp && e->residual == 4) {
            if (k.shift32) {
                if (k.rsaturate) mpq_xnor_block(L, &k, col, n, lanes, 1, 4, 1, 0, 1, 0);
                else mpq_xnor_block(L, &k, col, n, lanes, 1, 4, 1, 0, 0, 0);
            } else if (k.saturate) {
                if (k.rsaturate) mpq_xnor_block(L, &k, col, n, lanes, 1, 4, 0, 1, 1, 0);
                else mpq_xnor_block(L, &k, col, n, lanes, 1, 4, 0, 1, 0, 0);
            } else {
                if (k.rsaturate) mpq_xnor_block(L, &k, col, n, lanes, 1, 4, 0, 0, 1, 0);
                else mpq_xnor_block(L, &k, col, n, lanes, 1, 4, 0, 0, 0, 0);
            }
        } else {
            mpq_xnor_block(L, &k, col, n, lanes, k.mode, k.residual, k.shift32, k.saturate, k.rsaturate, clamp);
        }
    }
}
#else
void mpq_xnor_layer_avx512(const mpq_xnor_layer *layer) { (void)layer; }
#endif
