import CKernels

/// A binary convolution layer on one image with the integer epilogue: each output pixel's dots
/// (((v·channels − 2·Σ popcount) << shift) & mask, see `BinaryConv`)
/// go through an `IntegerEpilogue` — its bias, requantization, residual branch and clamp — and,
/// on request, the results' signs are packed for the next binary layer. A Bi-Real block's
/// convolution, its scaling to the residual add, the add and the next layer's signs are then
/// one pass. With AVX-512 VPOPCNTDQ the whole layer runs in CKernels/xnor_avx512.c; elsewhere
/// each pixel's dots come from `pixel` and the epilogue from `IntegerEpilogue.finish`, which is
/// also the plain version the kernel is tested against.
extension BinaryConv {
    /// A geometry laid out for the layer kernel: per output pixel the word offset of tap (0, 0)
    /// (outside the image for some border pixels: only valid taps are read) and the mask of its
    /// taps inside the image; per tap its word offset from tap (0, 0).
    public struct Layout: Sendable {
        public let geometry: Geometry
        let starts: [Int64], valid: [UInt64], relative: [Int64]
        /// Whether the kernel takes it: at most 64 taps (a mask of one word).
        var fitsKernel: Bool { geometry.taps <= 64 }
        /// Whether the kernel may read packed taps (`Weights.packed`): 3×3, dilation 1, one word a pixel.
        var packs: Bool {
            let g = geometry
            return (g.kernelH, g.kernelW, g.dilationH, g.dilationW, g.words) == (3, 3, 1, 1, 1)
        }

        public init(_ g: Geometry) {
            geometry = g
            var starts: [Int64] = [], valid: [UInt64] = [], relative: [Int64] = []
            for ky in 0..<g.kernelH {
                for kx in 0..<g.kernelW { relative.append(Int64((ky * g.dilationH * g.width + kx * g.dilationW) * g.words)) }
            }
            for oy in 0..<g.outH {
                for ox in 0..<g.outW {
                    let y0 = oy * g.strideH - g.padTop, x0 = ox * g.strideW - g.padLeft
                    starts.append(Int64((y0 * g.width + x0) * g.words))
                    var mask: UInt64 = 0
                    for ky in 0..<g.kernelH {
                        let iy = y0 + ky * g.dilationH
                        guard iy >= 0 && iy < g.height else { continue }
                        for kx in 0..<g.kernelW {
                            let ix = x0 + kx * g.dilationW
                            if ix >= 0 && ix < g.width && ky * g.kernelW + kx < 64 { mask |= 1 << UInt64(ky * g.kernelW + kx) }
                        }
                    }
                    valid.append(mask)
                }
            }
            self.starts = starts; self.valid = valid; self.relative = relative
        }
    }

    /// Whether this CPU runs the layer kernel (AVX-512 with VPOPCNTDQ).
    public static let hasLayerKernel: Bool = mpq_cpu_has_avx512_vpopcntdq() != 0

    /// The layer on one image: output pixel p's results at `output + outStarts[p]·b` (b: 1 byte
    /// for `.codes`, else 4), its residual branch (when the epilogue has one) at
    /// `residual + resStarts[p]·r` (r: 4 for Int32 branches, else 1); with `signs`, pixel p's
    /// signs in `signs[p·⌈cout/64⌉…]`.
    public static func layer(_ layout: Layout, input: UnsafePointer<UInt64>, weights: Weights, shift: Int, epilogue: IntegerEpilogue,
                             output: UnsafeMutableRawPointer, outStarts: [Int], residual: UnsafeRawPointer?, resStarts: [Int],
                             signs: UnsafeMutablePointer<UInt64>?, backend: IGEMM.Backend? = nil) {
        let g = layout.geometry
        precondition(weights.cout == g.cout && weights.taps == g.taps && weights.words == g.words && outStarts.count == g.outH * g.outW)
        precondition(epilogue.bias.count == g.cout && (epilogue.residual == .none || (residual != nil && resStarts.count == outStarts.count)))
        let resolved = (backend ?? .automatic).resolved
        if hasLayerKernel && resolved == .vnni && layout.fitsKernel {
            let out = output.assumingMemoryBound(to: CChar.self)
            let res = residual?.assumingMemoryBound(to: CChar.self)
            layout.starts.withUnsafeBufferPointer { starts in
                layout.valid.withUnsafeBufferPointer { valid in layout.relative.withUnsafeBufferPointer { relative in
                    weights.bits.withUnsafeBufferPointer { bits in weights.mask.withUnsafeBufferPointer { mask in
                        outStarts.withUnsafeBufferPointer { outs in resStarts.withUnsafeBufferPointer { resStarts in
                            var l = mpq_xnor_layer(pixels: Int64(outStarts.count), starts: starts.baseAddress!, valid: valid.baseAddress!,
                                                   relative: relative.baseAddress!, taps: Int64(g.taps), words: Int64(g.words),
                                                   channels: Int64(g.channels), weights: bits.baseAddress!, mask: mask.baseAddress!,
                                                   cout: Int64(g.cout), shift: Int64(shift), input: input, e: epilogue.raw, out: out,
                                                   outs: UnsafeRawPointer(outs.baseAddress!).assumingMemoryBound(to: Int64.self),
                                                   res: res, res_starts: resStarts.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: Int64.self) },
                                                   signs: signs, packed: nil, packed_lanes: 0, row: Int64(g.width * g.words))
                            if layout.packs && weights.packedLanes > 0 {
                                weights.packed.withUnsafeBufferPointer { packed in
                                    (l.packed, l.packed_lanes) = (packed.baseAddress!, Int64(weights.packedLanes))
                                    mpq_xnor_layer_avx512(&l)
                                }
                            } else {
                                mpq_xnor_layer_avx512(&l)
                            }
                        } }
                    } }
                } }
            }
            return
        }
        referenceLayer(layout, input: input, weights: weights, shift: shift, epilogue: epilogue, output: output, outStarts: outStarts,
                       residual: residual, resStarts: resStarts, signs: signs, avx2: resolved == .avx2)
    }

    /// Pixel by pixel: the dots from `pixel`, then the epilogue column by column (`finish`), then
    /// the signs of what was stored; with `avx2`, dots and epilogue by the AVX2 kernels.
    static func referenceLayer(_ layout: Layout, input: UnsafePointer<UInt64>, weights: Weights, shift: Int, epilogue: IntegerEpilogue,
                               output: UnsafeMutableRawPointer, outStarts: [Int], residual: UnsafeRawPointer?, resStarts: [Int],
                               signs: UnsafeMutablePointer<UInt64>?, avx2: Bool) {
        let g = layout.geometry, padded = weights.blocks * 8, swords = (g.cout + 63) / 64
        let outBytes = epilogue.mode == .codes ? 1 : 4
        let resBytes = epilogue.residual.elementBytes
        var dots = [Int32](repeating: 0, count: padded), offsets = [Int](repeating: 0, count: g.taps), taps = offsets
        weights.bits.withUnsafeBytes { w in weights.mask.withUnsafeBufferPointer { mask in
            for p in 0..<outStarts.count {
                var valid = 0
                for t in 0..<g.taps {
                    let inside: Bool
                    if t < 64 { inside = layout.valid[p] >> UInt64(t) & 1 == 1 } else {
                        // Taps past 64 are not in the mask: test them directly.
                        let y0 = (p / g.outW) * g.strideH - g.padTop + (t / g.kernelW) * g.dilationH
                        let x0 = (p % g.outW) * g.strideW - g.padLeft + (t % g.kernelW) * g.dilationW
                        inside = y0 >= 0 && y0 < g.height && x0 >= 0 && x0 < g.width
                    }
                    guard inside else { continue }
                    offsets[valid] = Int(layout.starts[p] + layout.relative[t]); taps[valid] = t; valid += 1
                }
                offsets.withUnsafeBufferPointer { o in taps.withUnsafeBufferPointer { t in dots.withUnsafeMutableBufferPointer { d in
                    pixel(start: input, offsets: o.baseAddress!, tapIndex: t.baseAddress!, valid: valid, g: g, weights: w.baseAddress!,
                          blocks: weights.blocks, mask: mask.baseAddress!, out: d.baseAddress!, shift: shift, avx2: avx2)
                } } }
                let out = output + outStarts[p] * outBytes
                let res = residual.map { $0 + resStarts[p] * resBytes } ?? UnsafeRawPointer(out)
                if avx2 {
                    dots.withUnsafeBufferPointer {
                        mpq_epilogue_row_avx2($0.baseAddress!, Int64(g.cout), epilogue.raw, out.assumingMemoryBound(to: CChar.self),
                                              res.assumingMemoryBound(to: CChar.self))
                    }
                } else {
                    for c in 0..<g.cout { epilogue.finish(dots[c], column: c, out: out, res: res) }
                }
                // The signs of what was stored (unsigned codes have none).
                guard let signs else { continue }
                if outBytes == 4 {
                    Requantize.signs(pixels: 1, channels: g.cout, src: out.assumingMemoryBound(to: Int32.self), srcStride: g.cout, dst: signs + p * swords)
                } else if epilogue.lo < 0 {
                    Requantize.signs(pixels: 1, channels: g.cout, codes: out.assumingMemoryBound(to: UInt8.self), srcStride: g.cout, dst: signs + p * swords)
                } else {
                    (signs + p * swords).update(repeating: 0, count: swords)
                }
            }
        } }
    }
}
