// The integer epilogue with AVX-512 (see mpq_epilogue in CKernels.h), shared by the VNNI kernels
// (vnni.c) and the binary convolution (xnor_avx512.c): 16 columns' constants loaded once
// (mpq_epilogue_load), the bias, dyadic multiply and residual branch (mpq_epilogue_q), the clamp
// and store (mpq_epilogue_apply, mpq_store_codes32). IGEMM+Tile.swift's IntegerEpilogue.finish is
// the plain version.
#ifndef MPQ_EPILOGUE_AVX512_H
#define MPQ_EPILOGUE_AVX512_H
#include "CKernels.h"
#include <immintrin.h>

// The dyadic multiply of 16 Int32 lanes y as even and odd Int64 lanes (vpmuldq multiplies the
// low halves of 64-bit lanes): pe = (y·m + r) >> s for the even columns, po for the odd ones
// (multipliers mo, rounding terms ro, shifts so), saturated to Int32 when `saturate`, joined back
// into 16 Int32 lanes by a bitwise select on the high halves (one operation; a mask blend costs a
// mask register move in every iteration as well). Where every shift is at least 31 and no
// multiplier is INT32_MIN, |y·m| < 2^31·|y|: (y·m + 2^(s−1)) >> s lies between y and 0 and
// cannot saturate.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"), always_inline))
static inline __m512i mpq_dyadic(__m512i y, __m512i m, __m512i mo, __m512i re, __m512i ro, __m512i se, __m512i so, int saturate) {
    __m512i pe = _mm512_srav_epi64(_mm512_add_epi64(_mm512_mul_epi32(y, m), re), se);
    __m512i po = _mm512_srav_epi64(_mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(y, 32), mo), ro), so);
    if (saturate) {
        const __m512i i32min = _mm512_set1_epi64(INT32_MIN), i32max = _mm512_set1_epi64(INT32_MAX);
        pe = _mm512_min_epi64(_mm512_max_epi64(pe, i32min), i32max);
        po = _mm512_min_epi64(_mm512_max_epi64(po, i32min), i32max);
    }
    return _mm512_ternarylogic_epi64(_mm512_set1_epi64((long long)0xFFFFFFFF00000000ull), _mm512_slli_epi64(po, 32), pe, 0xCA);
}

// A 16-column block's epilogue constants, loaded once and kept in registers while the block's
// rows (a tile's pixels, a depthwise layer's pixels) pass through `mpq_epilogue_q`: multipliers
// of the even (m) and odd (mo) columns, their rounding terms and shifts as Int64 lanes (so: less
// 32 in the short form), and the residual branch's dyadic broadcast (rm, rr, rs).
// The mode, form and residual kind are copied too: read through `e` they would be reloaded after
// every store (which may alias it).
typedef struct {
    __m512i bias, m, mo, re, ro, se, so, lo, hi, rm, rr, rs;
    int32_t mode, shift32, residual, folded, saturate, rsaturate;
} mpq_ep16;

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
static inline mpq_ep16 mpq_epilogue_load(const mpq_epilogue *e, int64_t col, __mmask16 mask) {
    mpq_ep16 k;
    k.bias = _mm512_maskz_loadu_epi32(mask, e->bias + col);
    k.m = k.mo = k.re = k.ro = k.se = k.so = _mm512_setzero_si512();
    if (e->mode != 0) {
        // col is a multiple of 16: the block's even and odd columns are entries col/2…col/2+7
        // of the Int64 rows (padded, so whole loads stay in bounds).
        k.m = _mm512_maskz_loadu_epi32(mask, e->mult + col);
        k.mo = _mm512_maskz_loadu_epi32(mask, e->mult_odd + col);
        k.re = _mm512_loadu_si512((const void *)(e->round_even + col / 2));
        k.ro = _mm512_loadu_si512((const void *)(e->round_odd + col / 2));
        k.se = _mm512_loadu_si512((const void *)(e->shift_even + col / 2));
        k.so = _mm512_loadu_si512((const void *)(e->shift_odd + col / 2));
        if (!e->shift32) k.so = _mm512_add_epi64(k.so, _mm512_set1_epi64(32));
    }
    k.lo = _mm512_set1_epi32(e->lo);
    k.hi = _mm512_set1_epi32(e->hi);
    k.rm = _mm512_set1_epi32(e->rmult);
    k.rr = _mm512_set1_epi64(1ll << (e->rshift - 1));
    k.rs = _mm512_set1_epi64(e->rshift);
    k.mode = e->mode; k.shift32 = e->shift32; k.residual = e->residual; k.folded = e->shift32 && e->bias_folded;
    k.saturate = !e->unsaturated;
    k.rsaturate = !(e->rshift >= 31 && e->rmult != INT32_MIN);
    return k;
}

// The epilogue's Int32 results before the clamp (modes 1 and 2) for one row's 16 sums: bias; the
// dyadic multiply; a residual branch (Int32 already at the scale, or codes or Int32 requantized
// by their own dyadic) added with Int32 wrap-around.
// The short form (e->shift32: every shift ≥ 32, no multiplier INT32_MIN): v = y·m has
// |v| < 2^62, so v + 2^(s−1) fits in Int64 and |(v + 2^(s−1)) >> s| ≤ |y|: nothing saturates. The
// even columns' quotient is the low half of (v + 2^(s−1)) >> s; the odd columns' is the high half
// of (v + 2^(s−1)) >> (s − 32), already where the select takes it — eight vector operations for
// 16 columns (seven with the bias folded into the rounding terms).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
static inline __m512i mpq_epilogue_q(__m512i acc, const mpq_ep16 *k, __mmask16 mask, const void *res) {
    // With the bias folded into the rounding terms, the sums go to the multiply as they are.
    const __m512i y = k->folded ? acc : _mm512_add_epi32(acc, k->bias);
    __m512i r = _mm512_setzero_si512();
    if (k->residual == 1) {
        r = _mm512_maskz_loadu_epi32(mask, res);
    } else if (k->residual) {
        // Codes (2, 3) or Int32 at another scale (4), through the branch's own dyadic.
        __m512i v;
        if (k->residual == 4) v = _mm512_maskz_loadu_epi32(mask, res);
        else {
            const __m128i bytes = _mm_maskz_loadu_epi8(mask, res);
            v = k->residual == 2 ? _mm512_cvtepu8_epi32(bytes) : _mm512_cvtepi8_epi32(bytes);
        }
        r = mpq_dyadic(v, k->rm, k->rm, k->rr, k->rr, k->rs, k->rs, k->rsaturate);
    }
    // The empty asm makes the multipliers opaque here: otherwise clang hoists vpmuldq's sign
    // extension of a loop-invariant operand out of the loop, loses sight of it across the
    // block and multiplies in full 64 bits (three vpmuludq and shifts).
    __m512i m = k->m, mo = k->mo;
    __asm__("" : "+v"(m), "+v"(mo));
    __m512i q;
    if (k->shift32) {
        const __m512i pe = _mm512_srav_epi64(_mm512_add_epi64(_mm512_mul_epi32(y, m), k->re), k->se);
        const __m512i po = _mm512_srav_epi64(_mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(y, 32), mo), k->ro), k->so);
        q = _mm512_ternarylogic_epi64(_mm512_set1_epi64((long long)0xFFFFFFFF00000000ull), po, pe, 0xCA);
    } else {
        // The general form (saturated to Int32 where a shift is below 31).
        q = mpq_dyadic(y, m, mo, k->re, k->ro, k->se, k->so, k->saturate);
    }
    return k->residual ? _mm512_add_epi32(q, r) : q;
}

// The whole epilogue on one row's 16 sums: mode 0 stores y = acc + bias; modes 1 and 2 clamp
// mpq_epilogue_q's results to lo…hi and store them as Int32 or bytes.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
static inline void mpq_epilogue_apply(__m512i acc, const mpq_ep16 *k, __mmask16 mask, void *out, const void *res) {
    if (k->mode == 0) { _mm512_mask_storeu_epi32(out, mask, _mm512_add_epi32(acc, k->bias)); return; }
    const __m512i q = _mm512_min_epi32(_mm512_max_epi32(mpq_epilogue_q(acc, k, mask, res), k->lo), k->hi);
    if (k->mode == 1) _mm512_mask_storeu_epi32(out, mask, q);
    else _mm_mask_storeu_epi8(out, mask, _mm512_cvtepi32_epi8(q));
}

// Two blocks of 16 codes (columns 0…15 in q0, 16…31 in q1) clamped to lo…hi and stored as 32
// bytes: packed with saturation (Int32 → Int16 → 8 bits, signed or unsigned as the codes are),
// which leaves each 128-bit lane holding four columns of q0 then four of q1, put in column order
// by one dword permutation; the clamp then runs on bytes (skipped at the 8-bit range's own ends).
// Five vector operations and one store for 32 codes, against eight and two block by block.
// Whether an epilogue's outputs may go through mpq_store_codes32: codes clamped within one
// 8-bit range (signed or unsigned).
static inline int mpq_codes32(const mpq_epilogue *e) {
    return e->mode == 2 && e->lo >= -128 && e->hi <= 255 && (e->lo >= 0 || e->hi <= 127);
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
static inline void mpq_store_codes32(__m512i q0, __m512i q1, int32_t lo, int32_t hi, void *out) {
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i words = _mm512_packs_epi32(q0, q1);
    __m256i bytes;
    if (lo < 0) {
        bytes = _mm512_castsi512_si256(_mm512_permutexvar_epi32(order, _mm512_packs_epi16(words, words)));
        if (lo > -128) bytes = _mm256_max_epi8(bytes, _mm256_set1_epi8((char)lo));
        if (hi < 127) bytes = _mm256_min_epi8(bytes, _mm256_set1_epi8((char)hi));
    } else {
        bytes = _mm512_castsi512_si256(_mm512_permutexvar_epi32(order, _mm512_packus_epi16(words, words)));
        if (lo > 0) bytes = _mm256_max_epu8(bytes, _mm256_set1_epi8((char)lo));
        if (hi < 255) bytes = _mm256_min_epu8(bytes, _mm256_set1_epi8((char)hi));
    }
    _mm256_storeu_si256((__m256i *)out, bytes);
}

#endif
