#ifndef MPQ_CKERNELS_H
#define MPQ_CKERNELS_H
#include <stdint.h>

/// 1 when this CPU executes AVX-512 VNNI (vpdpbusd), else 0.
int mpq_cpu_has_avx512_vnni(void);

/// 1 when this CPU executes AVX-512F, else 0.
int mpq_cpu_has_avx512f(void);

/// 1 when this CPU executes AVX2 and FMA, else 0.
int mpq_cpu_has_avx2_fma(void);

/// The smallest and largest of x[0…n−1] into *lo, *hi (n ≥ 1; NaNs skipped), returning 1 when
/// some element is NaN, else 0 (Kernels/Extremes.swift). Call only when mpq_cpu_has_avx2_fma() is 1.
int32_t mpq_extremes_f32_avx2(const float *x, int64_t n, float *lo, float *hi);

/// The f32 GEMM micro-kernel without AVX-512: C[6×16] = α·Ã·B̃ + β·C (C not read when β is 0) on
/// panels packed with MR = 6 (a[p·6 + i]) and NR = 16 (b[p·16 + j]). Call only when
/// mpq_cpu_has_avx2_fma() is 1.
void mpq_sgemm_avx2_6x16(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, float alpha, float beta);

/// The direct 3×3 convolution tile of Kernels/DirectConv (8 output channels × two vectors of 16
/// output pixels over a zero-padded input; weights w[((ci·3 + u)·3 + v)·8 + co]) with AVX2 + FMA:
/// the same sums as the Swift kernel `directConv3x3Kernel8x2`. A vector whose count is 0 is not
/// computed. Call only when mpq_cpu_has_avx2_fma() is 1.
void mpq_direct3x3_avx2(int64_t cin, const float *input0, const float *input1, int64_t planeStride, int64_t rowStride,
                        const float *weights, const float *bias, int32_t relu, float *output0, float *output1,
                        int64_t channelStride, int64_t count0, int64_t count1);

/// The weight gradient of a 3×3 convolution (dilation 1, one group, any stride) over one image,
/// added into `dwt` — the gradient transposed, dwt[((ci·3 + u)·3 + v)·cout + co] — from the
/// image zero-padded as DirectConv pads it (`xpad`, planes `planeStride`, rows `rowStride` floats
/// apart) and the output gradient channels-last (`dyt`[pixel·cout + co], oh·ow pixels). `cout`
/// a multiple of 8. Call only when mpq_cpu_has_avx2_fma() is 1.
void mpq_wgrad3x3_avx2(int64_t cin, int64_t cout, const float *xpad, int64_t planeStride, int64_t rowStride, int64_t oh, int64_t ow,
                       int64_t stride, const float *dyt, float *dwt);
/// The same weight gradient with AVX-512 (16 output channels a vector): `cout` a multiple of 16;
/// equal to mpq_wgrad3x3_avx2's sums. Call only when mpq_cpu_has_avx512f() is 1.
void mpq_wgrad3x3_avx512(int64_t cin, int64_t cout, const float *xpad, int64_t planeStride, int64_t rowStride, int64_t oh, int64_t ow,
                         int64_t stride, const float *dyt, float *dwt);

/// dst[p·nr + j] = src[j·ld + p] for p < k, j < n; zero for n ≤ j < nr (a transposed GEMM operand
/// packed into one nr-wide sliver). 16×16 blocks in registers where AVX-512 runs, 8×8 where AVX2 does.
void mpq_pack_transposed_f32(int64_t k, int64_t n, const float *src, int64_t ld, float *dst, int64_t nr);
/// The f32 GEMM's tile of `rows` ≤ 12 rows × `cols` ≤ 32 columns with A read in place (row i at
/// a + i·lda, k contiguous) and B a packed 32-column sliver (b[p·32 + j]): C = α·A·B (+ β·C when
/// β ≠ 0), the same sums as the packed 12×32 kernel's; then, when given, + bias[j] and (relu ≠ 0)
/// Swift's max(v, 0), as SGEMM.epilogue. Columns past `cols` of C and bias are not touched.
/// Returns 1 when a value stored, taken before the ReLU, is NaN or infinite, else 0.
/// Call only when mpq_cpu_has_avx512f() is 1.
int32_t mpq_sgemm_rows_avx512(int64_t kc, int64_t rows, int64_t cols, const float *a, int64_t lda, const float *b, float *c,
                           int64_t ldc, float alpha, float beta, const float *bias, int32_t relu);
// dst[p·mr + r] = src[r·ld + p] for r < rows, zero for rows ≤ r < mr (A's slivers for the f32 GEMM).
void mpq_pack_rows_f32(int64_t k, int64_t rows, const float *src, int64_t ld, float *dst, int64_t mr);

/// Runs `iterations` rounds of 12 independent f32 FMA chains, 512 bits wide when `wide` (call
/// only when mpq_cpu_has_avx512f() is 1), else 256 (AVX2 + FMA); returns the floating-point
/// operations done (2 per lane per FMA) and writes a sum of the chains to `sink`.
int64_t mpq_fma_peak(int64_t iterations, int wide, float *sink);

/// The int8 micro-kernel on VNNI: C[12×32] (+)= Ã·B̃ over `kgroups` groups of 4 along K.
/// `a`: 12 rows packed per group as 4 consecutive u8 (a[(g*12 + i)*4 + t]);
/// `b`: 32 columns packed per group as 4 consecutive s8 (b[(g*32 + j)*4 + t]).
/// `accumulate` = 0 overwrites C. Call only when mpq_cpu_has_avx512_vnni() is 1.
void mpq_igemm_u8s8_vnni_12x32(int64_t kgroups, const uint8_t *a, const int8_t *b,
                                int32_t *c, int64_t ldc, int accumulate);
/// The same tile with AVX2 (igemm_avx2.c): the same slivers and sums. Call only when
/// mpq_cpu_has_avx2_fma() is 1.
void mpq_igemm_u8s8_avx2_12x32(int64_t kgroups, const uint8_t *a, const int8_t *b, int32_t *c, int64_t ldc, int accumulate);


/// What a layer does with its Int32 sums (per output column j): y = acc + bias[j]; mode 0 stores
/// y as Int32; modes 1 and 2 requantize, q = (y·mult[j] + 2^(shift[j]−1)) >> shift[j] in Int64
/// (saturated to Int32), add a residual branch when `residual` is set (1: Int32 already at the
/// scale; 2, 3: u8 or s8 codes requantized by rmult, rshift; 4: Int32 requantized by rmult,
/// rshift), wrapping in Int32, clamp to lo…hi, and store as Int32 (mode 1) or bytes (mode 2).
typedef struct {
    const int32_t *bias;
    const int32_t *mult;
    const int32_t *shift;
    int32_t lo, hi;
    int32_t mode;
    int32_t residual;
    int32_t rmult, rshift;
    /// 1 when every column's shift is at least 32 and no multiplier is INT32_MIN: the AVX2
    /// epilogue's short form of the dyadic multiply (conv_avx2.c) is exact there.
    int32_t shift32;
    /// For the short form, per column: mult_odd[j] = mult[j + 1] (the odd columns' multipliers
    /// where vpmuldq reads even lanes); and per block of 16 columns from b = 16k, as Int64 entries
    /// 8k…8k+7: the rounding terms 2^(shift−1) of columns b, b+2, …, b+14 (round_even) and
    /// b+1, …, b+15 (round_odd), their shifts (shift_even) and the odd columns' shifts − 32
    /// (shift_odd).
    const int32_t *mult_odd;
    const int64_t *round_even;
    const int64_t *round_odd;
    const int64_t *shift_even;
    const int64_t *shift_odd;
    /// 1 when the bias is folded into round_even and round_odd (bias·mult + 2^(shift−1)): sums are
    /// known to stay where acc + bias cannot wrap, and the VNNI kernels skip the addition.
    int32_t bias_folded;
    /// 1 when every shift is at least 31 and no multiplier is INT32_MIN: the multiply cannot
    /// leave Int32, and the AVX-512 epilogue skips the saturation.
    int32_t unsaturated;
} mpq_epilogue;

/// Bytes per element of a residual branch of kind `residual`: Int32 (kinds 1 and 4) or codes.
static inline int64_t mpq_residual_kind_bytes(int32_t residual) { return residual == 1 || residual == 4 ? 4 : 1; }
static inline int64_t mpq_residual_bytes(const mpq_epilogue *e) { return mpq_residual_kind_bytes(e->residual); }

/// A direct convolution tile: `rows` (1…12) output pixels × `cols` (1…32) output channels
/// starting at `column`. Pixel i reads its receptive field from a[i] + taps[t] + 4g (t < ntaps,
/// g < gpp groups of 4 channels; codes XORed with `flip`); weights b[(t·gpp + g)·64 + j·4 + u]
/// per block of 16 columns, the next block `bstride` bytes on. Output row i goes to out[i] (at
/// `column`), its residual (if any) is read from res[i] (at `column`).
void mpq_conv_vnni(int64_t rows, int64_t cols, const uint8_t *const *a, const int64_t *taps, int64_t ntaps, int64_t gpp,
                   uint32_t flip, const int8_t *b, int64_t bstride, const mpq_epilogue *e, int64_t column,
                   void *const *out, const void *const *res);
/// A whole layer through mpq_conv_vnni: output pixels p < `pixels` twelve at a time (receptive
/// field at in + starts[p], output at out + outs[p]·out_bytes, residual — when `res` is not null —
/// at res + res_starts[p]·res_bytes), output columns col_begin…col_end−1 32 at a time (weights
/// of column block k at b + k·bstride; col_begin a multiple of 32): a thread's share of a layer.
void mpq_conv_vnni_layer(int64_t pixels, const int64_t *starts, const int64_t *outs, const int64_t *res_starts,
                         const uint8_t *in, char *out, int64_t out_bytes, const char *res, int64_t res_bytes,
                         const int64_t *taps, int64_t ntaps, int64_t gpp, uint32_t flip, const int8_t *b, int64_t bstride,
                         const mpq_epilogue *e, int64_t col_begin, int64_t col_end);
/// The same tile with AVX2 (conv_avx2.c) on weights widened to Int16 in the same layout
/// (`bstride` in Int16 elements) and pixels already widened to Int16 and flipped
/// (mpq_widen_codes_avx2; a[i] and taps in elements): exactly mpq_conv_vnni's results. Call only
/// when mpq_cpu_has_avx2_fma() is 1.
void mpq_conv_avx2(int64_t rows, int64_t cols, const int16_t *const *a, const int64_t *taps, int64_t ntaps, int64_t gpp,
                   const int16_t *b, int64_t bstride, const mpq_epilogue *e, int64_t column,
                   void *const *out, const void *const *res);
/// dst[i] = src[i] ^ flip as Int16 for i < n (AVX2).
void mpq_widen_codes_avx2(const uint8_t *src, int64_t n, uint8_t flip, int16_t *dst);
/// The same tile with AVX2 on the bytes of mpq_conv_vnni's layout, for weights whose codes all lie
/// in −m…m−1 with m ≤ 64 (vpmaddubsw is exact there); `steps` = ⌊32,767 / (510·m)⌋ pair sums are
/// added in 16 bits before widening. Exactly mpq_conv_vnni's results. Call only when
/// mpq_cpu_has_avx2_fma() is 1.
void mpq_conv_avx2_narrow(int64_t rows, int64_t cols, const uint8_t *const *a, const int64_t *taps, int64_t ntaps, int64_t gpp,
                          uint32_t flip, const int8_t *b, int64_t bstride, int64_t steps, const mpq_epilogue *e, int64_t column,
                          void *const *out, const void *const *res);
/// A depthwise convolution over `pixels` output pixels with the tile's epilogue (see vnni.c).
void mpq_depthwise_avx512(int64_t pixels, const int64_t *starts, const int64_t *outs, const uint8_t *in, char *out, int64_t out_bytes,
                          const int64_t *taps, int64_t ntaps, const int32_t *w, int64_t ldw, int64_t channels, int32_t is_signed,
                          const mpq_epilogue *e);
/// The 3×3 (dilation 1) depthwise convolution on pairs of horizontal neighbours (see vnni.c), a row
/// of windows at a time: one row of the padded input grid as pairs (at the listed columns, into
/// dst), then the windows whose three tap rows' pairs are r0, r1, r2 (window p's left column
/// lefts[p]) with the tile's epilogue. Exactly mpq_depthwise_avx512's results. `form` 1 builds the
/// pairs by byte permutation, 2 triples of unsigned codes (then `triples` = 1 for the layer, with
/// weights as byte triples): call so only when mpq_cpu_has_avx512_vbmi() is 1.
void mpq_depthwise_pairs_avx512(const int64_t *columns, int64_t ncolumns, int64_t cols, const uint8_t *in, int64_t px,
                                int64_t channels, int32_t is_signed, int32_t *dst, int64_t ldp, int32_t form);
void mpq_depthwise3x3_pairs_avx512(int64_t pixels, const int64_t *lefts, const int64_t *outs, const int32_t *r0, const int32_t *r1,
                                   const int32_t *r2, int64_t ldp, char *out, int64_t out_bytes, const int32_t *pw, int64_t channels,
                                   const mpq_epilogue *e, int32_t triples);
/// 1 when the CPU (and OS) support AVX-512 VBMI and BW, else 0.
int mpq_cpu_has_avx512_vbmi(void);
/// A row of `n` Int32 sums through the epilogue with AVX2 (conv_avx2.c): column j to
/// out + j·(1 or 4 bytes), its residual from res + j·mpq_residual_bytes(e). Call only when
/// mpq_cpu_has_avx2_fma() is 1.
void mpq_epilogue_row_avx2(const int32_t *sums, int64_t n, const mpq_epilogue *e, char *out, const char *res);
/// The same with AVX2 (conv_avx2.c): the same results. Call only when mpq_cpu_has_avx2_fma() is 1.
void mpq_depthwise_avx2(int64_t pixels, const int64_t *starts, const int64_t *outs, const uint8_t *in, char *out, int64_t out_bytes,
                        const int64_t *taps, int64_t ntaps, const int32_t *w, int64_t ldw, int64_t channels, int32_t is_signed,
                        const mpq_epilogue *e);

/// The integer engine's elementwise steps with AVX2 (requantize_avx2.c); Kernels/Requantize.swift
/// holds the plain loops with the same results. For pixels p < `pixels` and channels c <
/// `channels`, y = (x·m[c] + 2^(s[c]−1)) >> s[c] in Int64 saturated to Int32, x = src[p·src_stride
/// + c]; m (0…2^31−1) and s (0…62) padded to a multiple of 8 entries; `form` 0 when every m is 1
/// and s 0 (y = x), 2 when every s is ≥ 32 (the short exact form), else 1. Sums: dst[p·dst_stride + c] = y, or += y (wrapping) with `accumulate`. Codes: the
/// low byte of y clamped to lo…hi. Signs: bit c mod 64 of dst[p·⌈channels/64⌉ + ⌊c/64⌋] set
/// where x < 0. Call only when mpq_cpu_has_avx2_fma() is 1.
void mpq_requantize_sums_avx2(int64_t pixels, int64_t channels, const int32_t *src, int64_t src_stride, int32_t *dst,
                              int64_t dst_stride, const int32_t *m, const int32_t *s, int32_t form, int32_t accumulate);
void mpq_requantize_codes_avx2(int64_t pixels, int64_t channels, const int32_t *src, int64_t src_stride, uint8_t *dst,
                               int64_t dst_stride, const int32_t *m, const int32_t *s, int32_t form, int32_t lo, int32_t hi);
void mpq_pack_signs_avx2(int64_t pixels, int64_t channels, const int32_t *src, int64_t src_stride, uint64_t *dst);
/// The two rescaling kernels with AVX-512 (requantize_avx512.c): the same arguments and results.
/// Call only when mpq_cpu_has_avx512_vnni() is 1.
void mpq_requantize_sums_avx512(int64_t pixels, int64_t channels, const int32_t *src, int64_t src_stride, int32_t *dst,
                                int64_t dst_stride, const int32_t *m, const int32_t *s, int32_t form, int32_t accumulate);
void mpq_requantize_codes_avx512(int64_t pixels, int64_t channels, const int32_t *src, int64_t src_stride, uint8_t *dst,
                                 int64_t dst_stride, const int32_t *m, const int32_t *s, int32_t form, int32_t lo, int32_t hi);
/// The same for signed codes: bit set where the code (a byte's top bit) is negative.
void mpq_pack_sign_bytes_avx2(int64_t pixels, int64_t channels, const uint8_t *src, int64_t src_stride, uint64_t *dst);

/// One output pixel of the binary convolution with AVX2 (xnor_avx2.c): BinaryConv.pixel's sums
/// (Kernels/BinaryConv.swift) — for each of `blocks` 8-channel blocks of `weights`
/// ([block][tap][word][8 lanes]), Σ over the `valid` taps (input start + offsets[t], weights of
/// tap tap_index[t], or of tap t when tap_index is null) and `words` words of popcount(x ⊕ w);
/// out[o] = (valid·channels − 2·Σ) << shift & mask[o] for o < cout (mask padded to whole blocks).
/// Call only when mpq_cpu_has_avx2_fma() is 1.
void mpq_xnor_pixel_avx2(const uint64_t *start, const int64_t *offsets, const int64_t *tap_index, int64_t valid, int64_t words,
                         int64_t channels, const uint64_t *weights, int64_t blocks, int64_t taps,
                         const int32_t *mask, int64_t cout, int64_t shift, int32_t *out);

/// A whole binary convolution layer on one image (xnor_avx512.c; Kernels/BinaryConv+Layer.swift
/// is its plain counterpart). Input: packed signs, `words` UInt64 per pixel. Output pixel p's taps
/// are the set bits t of valid[p] (at most 64 taps), read at input + starts[p] + relative[t] (a border pixel's
/// start may lie outside the image: only its valid taps are read); per 16 output channels
/// (weights as BinaryConv.Weights: [block of 8][tap][word][8 lanes]), the dots
/// ((v·channels − 2·Σ popcount(x ⊕ w)) << shift) & mask, v the number of valid taps, go through
/// the epilogue into out + outs[p]·out_bytes, with the residual at res + res_starts[p]·res_bytes;
/// when `signs` is not null, the signs of the results (bit set for a negative one, bits past
/// cout clear) are packed into signs + p·⌈cout/64⌉. With `packed` (a 3×3 kernel, dilation 1,
/// one word per pixel, image rows `row` words apart), pixels with all nine taps read their taps
/// narrowed to `packed_lanes` (16 or 32) bits each against weights packed alike (see
/// BinaryConv.Weights.packed).
typedef struct {
    int64_t pixels;
    const int64_t *starts;
    const uint64_t *valid;
    const int64_t *relative;
    int64_t taps, words, channels;
    const uint64_t *weights;
    const int32_t *mask;
    int64_t cout, shift;
    const uint64_t *input;
    const mpq_epilogue *e;
    char *out;
    const int64_t *outs;
    const char *res;
    const int64_t *res_starts;
    uint64_t *signs;
    const uint64_t *packed;
    int64_t packed_lanes, row;
} mpq_xnor_layer;
/// Call only when mpq_cpu_has_avx512_vpopcntdq() is 1.
void mpq_xnor_layer_avx512(const mpq_xnor_layer *layer);
/// 1 when the CPU has AVX-512 with VNNI, BW, VL and VPOPCNTDQ (the binary layer's kernel).
int mpq_cpu_has_avx512_vpopcntdq(void);

/// The float plan's convolution tile: `rows` (1…12) output pixels × `cols` (1…32) output
/// channels starting at `column`. Pixel i reads a[i][taps[t] + ci] (t < ntaps, ci < cin); the
/// weights of the tile's first 16 columns are b[(t·cin + ci)·16 + j], the next 16 `bstride`
/// floats on. y = Σ + bias[column + j] (+ res[i][column + j] when `res` is not null), clamped to
/// lo…hi, stored to out[i][column + j]. `bias` is readable to column + 32. Call only when
/// mpq_cpu_has_avx512f() is 1.
void mpq_conv_f32(int64_t rows, int64_t cols, const float *const *a, const int64_t *taps, int64_t ntaps, int64_t cin,
                  const float *b, int64_t bstride, const float *bias, float lo, float hi, int64_t column,
                  float *const *out, const float *const *res);
/// The same tile's sums for `count` (≥ 0) pixels along a line: pixel i's receptive field starts
/// at a + i·step, its outputs at out + i·ostep (+ column), its residual (when `res` is not null)
/// at res + i·rstep. Whole tiles of 12 address their rows from one register; the last few pixels
/// take a tile of just that many rows. Returns 0 (and does nothing) when `step` is not one of the
/// widths compiled in (1, 2, 3, 6, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, 2048: 1×1 layers
/// of ResNet-50's last stages).
int mpq_conv_f32_line(int64_t count, int64_t cols, const float *a, int64_t step, float *out, int64_t ostep,
                      const float *res, int64_t rstep, const int64_t *taps, int64_t ntaps, int64_t cin,
                      const float *b, int64_t bstride, const float *bias, float lo, float hi, int64_t column);
/// One output pixel × up to 128 columns from `column` (a multiple of 16), the tile's layout and
/// epilogue: out[column + j] = clamp(bias + Σ a[taps[t] + ci]·w + res[column + j]). `bias` is
/// readable to column + 128.
void mpq_conv_f32_row(int64_t cols, const float *a, const int64_t *taps, int64_t ntaps, int64_t cin,
                      const float *b, int64_t bstride, const float *bias, float lo, float hi, int64_t column,
                      float *out, const float *res);
/// Float depthwise convolution over `pixels` output pixels: out[p][c] = clamp(bias[c] +
/// Σ_t a[p][taps[t] + c]·w[t·ldw + c], lo, hi) for c < channels. Call only when
/// mpq_cpu_has_avx512f() is 1.
void mpq_depthwise_f32(int64_t pixels, const float *const *a, float *const *out, const int64_t *taps, int64_t ntaps,
                       const float *w, int64_t ldw, int64_t channels, const float *bias, float lo, float hi);

/// The four kernels above with AVX2 + FMA (conv_f32_avx2.c): the same arguments, layouts and
/// results. Call only when mpq_cpu_has_avx2_fma() is 1.
void mpq_conv_f32_avx2(int64_t rows, int64_t cols, const float *const *a, const int64_t *taps, int64_t ntaps, int64_t cin,
                       const float *b, int64_t bstride, const float *bias, float lo, float hi, int64_t column,
                       float *const *out, const float *const *res);
int mpq_conv_f32_line_avx2(int64_t count, int64_t cols, const float *a, int64_t step, float *out, int64_t ostep,
                           const float *res, int64_t rstep, const int64_t *taps, int64_t ntaps, int64_t cin,
                           const float *b, int64_t bstride, const float *bias, float lo, float hi, int64_t column);
void mpq_conv_f32_row_avx2(int64_t cols, const float *a, const int64_t *taps, int64_t ntaps, int64_t cin,
                           const float *b, int64_t bstride, const float *bias, float lo, float hi, int64_t column,
                           float *out, const float *res);
void mpq_depthwise_f32_avx2(int64_t pixels, const float *const *a, float *const *out, const int64_t *taps, int64_t ntaps,
                            const float *w, int64_t ldw, int64_t channels, const float *bias, float lo, float hi);
#endif

#ifndef MPQ_CKERNELS_PACK_H
#define MPQ_CKERNELS_PACK_H
/// 1 when this CPU has AVX-512 VBMI2 (vpcompressb).
int mpq_cpu_has_avx512_vbmi2(void);

/// Packs `groups` groups of 8 codes (one byte each, low `bits` bits used) into `bits` bytes each:
/// the little-endian bit stream of Kernels/BitPacking.swift. `bits` in 1…7. Writes exactly
/// groups·bits bytes. Call only when mpq_cpu_has_avx512_vbmi2() is 1.
void mpq_pack_vbmi2(const uint8_t *src, int64_t groups, int bits, uint8_t *dst);

/// Batch-1 matrix–vector products on VNNI for rows j0..<j1 (see GEMV.swift for the layouts):
/// y[j] = Σ over `blocks` 64-byte weight blocks of row j (row stride `ldw` bytes) with x.
void mpq_gemv_s8_vnni(int64_t j0, int64_t j1, int64_t blocks, const uint8_t *x, const int8_t *w, int64_t ldw, int32_t *y);
void mpq_gemv_u4_vnni(int64_t j0, int64_t j1, int64_t blocks, const uint8_t *x, const uint8_t *w, int64_t ldw, int32_t *y);
void mpq_gemv_u2_vnni(int64_t j0, int64_t j1, int64_t blocks, const uint8_t *x, const uint8_t *w, int64_t ldw, int32_t *y);

/// The same products with AVX2 (gemv_avx2.c), same layouts and results; s8 takes x widened to
/// Int16 (`x16`, `blocks`·64 values). Call only when mpq_cpu_has_avx2_fma() is 1.
void mpq_gemv_s8_avx2(int64_t j0, int64_t j1, int64_t blocks, const int16_t *x16, const int8_t *w, int64_t ldw, int32_t *y);
void mpq_gemv_u4_avx2(int64_t j0, int64_t j1, int64_t blocks, const uint8_t *x, const uint8_t *w, int64_t ldw, int32_t *y);
void mpq_gemv_u2_avx2(int64_t j0, int64_t j1, int64_t blocks, const uint8_t *x, const uint8_t *w, int64_t ldw, int32_t *y);
/// Max pooling of unsigned byte codes: for `count` windows of kh × kw pixels, window j's first
/// pixel at first + j·window_step, tap (u, v) u·row_step + v·pixel_step bytes further; the
/// maxima of `channels` channels to dst + j·dst_step (Kernels/WindowMaximum.swift).
void mpq_window_max_u8(const uint8_t *first, int64_t count, int64_t window_step, int64_t kh, int64_t kw, int64_t row_step,
                       int64_t pixel_step, int64_t channels, uint8_t *dst, int64_t dst_step);

/// Codes of `count` floats: the low byte of clamp(round-half-away(src[i] / scale), lo, hi) to
/// dst[i·stride] (Kernels/InputCodes.swift). src finite.
void mpq_input_codes(const float *src, int64_t count, double scale, int32_t lo, int32_t hi, uint8_t *dst, int64_t stride);

#endif
