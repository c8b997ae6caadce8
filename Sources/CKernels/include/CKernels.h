#ifndef MPQ_CKERNELS_H
#define MPQ_CKERNELS_H
#include <stdint.h>

/// 1 when this CPU executes AVX-512 VNNI (vpdpbusd), else 0.
int mpq_cpu_has_avx512_vnni(void);

/// The int8 micro-kernel on VNNI: C[12×32] (+)= Ã·B̃ over `kgroups` groups of 4 along K.
/// `a`: 12 rows packed per group as 4 consecutive u8 (a[(g*12 + i)*4 + t]);
/// `b`: 32 columns packed per group as 4 consecutive s8 (b[(g*32 + j)*4 + t]).
/// `accumulate` = 0 overwrites C. Call only when mpq_cpu_has_avx512_vnni() is 1.
void mpq_igemm_u8s8_vnni_12x32(int64_t kgroups, const uint8_t *a, const int8_t *b,
                                int32_t *c, int64_t ldc, int accumulate);


/// What a tile does with its Int32 sums (per column j of the tile): y = acc + bias[j]; then
/// mode 0 stores y as Int32; mode 1 stores clamp((y·mult[j] + 2^(shift[j]−1)) >> shift[j], lo, hi)
/// as Int32 (dyadic requantization, Int64 arithmetic); mode 2 stores the same as bytes.
typedef struct {
    const int32_t *bias;
    const int32_t *mult;
    const int32_t *shift;
    int32_t lo, hi;
    int32_t mode;
} mpq_epilogue;

/// One tile of an integer layer: rows (1…12) × cols (1…16·nb, nb 1 or 2) of A·B over `kgroups`
/// groups of 4 along K, then the epilogue (its arrays read from index `column`), written to
/// out + i·ldo (elements of the mode's type).
/// `a` as for the 12×32 kernel; `b0`, `b1`: 16-column blocks, b[(g*16 + j)*4 + t].
void mpq_igemm_vnni_tile(int64_t rows, int64_t cols, int64_t nb, int64_t kgroups, const uint8_t *a,
                         const int8_t *b0, const int8_t *b1, const mpq_epilogue *e, int64_t column, void *out, int64_t ldo);
#endif

#ifndef MPQ_CKERNELS_PACK_H
#define MPQ_CKERNELS_PACK_H
/// 1 when this CPU has AVX-512 VBMI2 (vpcompressb).
int mpq_cpu_has_avx512_vbmi2(void);

/// Packs `groups` groups of 8 codes (one byte each, low `bits` bits used) into `bits` bytes each:
/// the little-endian bit stream of Kernels/BitPacking.swift. `bits` in 1…7. Writes exactly
/// groups·bits bytes. Call only when mpq_cpu_has_avx512_vbmi2() is 1.
void mpq_pack_vbmi2(const uint8_t *src, int64_t groups, int bits, uint8_t *dst);
#endif
