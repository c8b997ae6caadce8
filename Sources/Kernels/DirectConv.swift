import CKernels
/// Direct 3×3 convolution, stride 1, for layers with few output channels and wide rows.
///
/// im2col turns each input pixel into nine column entries; with 16 output channels the GEMM
/// then does only 16 multiply-adds per entry, so building the columns costs as much as the
/// arithmetic. Here the input (zero-padded once per image) is read in place: for each of the
/// 9·Cin taps one vector load of 16 pixels feeds 16 fused multiply-adds, one per output channel.
public enum DirectConv {
    /// Whether the direct path fits: 3×3, stride 1, dilation 1, one group, Cout a multiple of 8.
    public static func applies(_ g: ConvGeometry, outputChannels: Int, groups: Int) -> Bool {
        groups == 1 && g.kernelHeight == 3 && g.kernelWidth == 3 && g.strideHeight == 1 && g.strideWidth == 1
            && g.dilationHeight == 1 && g.dilationWidth == 1 && outputChannels % 8 == 0 && g.isValid
            && g.padTop <= 2 && g.padLeft <= 2 && g.padBottom <= 2 && g.padRight <= 2
    }

    /// Output channels per block of the kernel.
    public static let block = 8

    /// Weights [Cout, Cin, 3, 3] → blocks of 8 output channels, `w[((ci·3 + u)·3 + v)·8 + co]`.
    public static func packWeights(_ w: UnsafePointer<Float>, outputChannels cout: Int, inputChannels cin: Int) -> [Float] {
        var packed = [Float](repeating: 0, count: cout * cin * 9)
        let bs = Self.block
        for block in 0..<(cout / bs) {
            for ci in 0..<cin {
                for tap in 0..<9 {
                    for co in 0..<bs {
                        packed[((block * cin + ci) * 9 + tap) * bs + co] = w[((block * bs + co) * cin + ci) * 9 + tap]
                    }
                }
            }
        }
        return packed
    }

    /// Floats of scratch `forward` needs per worker: the padded image plus slack for the last
    /// row's vector loads.
    public static func scratchSize(_ g: ConvGeometry) -> Int {
        let pw = g.width + g.padLeft + g.padRight
        return g.channels * (g.height + g.padTop + g.padBottom) * pw + 3 * pw + 64
    }

    /// Whether the tile runs as AVX2 C (CPUs without AVX-512, where the Swift kernel's 16
    /// 512-bit accumulators become 32 spilled 256-bit ones) rather than the generated Swift.
    public static let usesAVX2 = mpq_cpu_has_avx512f() == 0 && mpq_cpu_has_avx2_fma() == 1

    /// One tile (8 output channels of `weights`' block × the pixels at `input0` and `input1`) by
    /// either kernel — the generated Swift or, when `avx2` and the CPU has it, the AVX2 C — for
    /// tests that hold them to each other.
    public static func tile(cin: Int, input0: UnsafePointer<Float>, input1: UnsafePointer<Float>, planeStride: Int, rowStride: Int,
                            weights: UnsafePointer<Float>, bias: UnsafePointer<Float>, relu: Bool,
                            output0: UnsafeMutablePointer<Float>, output1: UnsafeMutablePointer<Float>,
                            channelStride: Int, count0: Int, count1: Int, avx2: Bool) {
        kernel(cin: cin, input0: input0, input1: input1, planeStride: planeStride, rowStride: rowStride, weights: weights, bias: bias,
               relu: relu, output0: output0, output1: output1, channelStride: channelStride, count0: count0, count1: count1,
               avx2: avx2 && mpq_cpu_has_avx2_fma() == 1)
    }

    /// The one place the 8×2 kernel is inlined: inlining its 16 accumulators at two call sites
    /// made LLVM spill them at both (measured: half the speed).
    @inline(never)
    static func kernel(cin: Int, input0: UnsafePointer<Float>, input1: UnsafePointer<Float>, planeStride: Int, rowStride: Int,
                       weights: UnsafePointer<Float>, bias: UnsafePointer<Float>, relu: Bool,
                       output0: UnsafeMutablePointer<Float>, output1: UnsafeMutablePointer<Float>,
                       channelStride: Int, count0: Int, count1: Int, avx2: Bool = usesAVX2) {
        if avx2 {
            mpq_direct3x3_avx2(Int64(cin), input0, input1, Int64(planeStride), Int64(rowStride), weights, bias, relu ? 1 : 0,
                               output0, output1, Int64(channelStride), Int64(count0), Int64(count1))
            return
        }
        directConv3x3Kernel8x2(cin: cin, input0: input0, input1: input1, planeStride: planeStride, rowStride: rowStride,
                               weights: weights, bias: bias, relu: relu, output0: output0, output1: output1,
                               channelStride: channelStride, count0: count0, count1: count1)
    }

    /// One image: `output` [Cout, Hout, Wout] = conv(`input` [Cin, H, W]) + bias (then ReLU).
    public static func forward(_ input: UnsafePointer<Float>, geometry g: ConvGeometry, packedWeights: UnsafePointer<Float>,
                               bias: UnsafePointer<Float>, outputChannels cout: Int, relu: Bool,
                               scratch: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>) {
        pad(input, geometry: g, into: scratch)
        forward(padded: scratch, geometry: g, packedWeights: packedWeights, bias: bias, blocks: 0..<(cout / block),
                relu: relu, output: output)
    }

    /// Copies one image into `scratch` zero-padded (the layout `forward(padded:)` reads).
    public static func pad(_ input: UnsafePointer<Float>, geometry g: ConvGeometry, into scratch: UnsafeMutablePointer<Float>) {
        let ph = g.height + g.padTop + g.padBottom, pw = g.width + g.padLeft + g.padRight
        let plane = ph * pw
        // Copy the image in and zero only the border: top and bottom pad rows, left and right
        // pad columns, and the slack after the last plane (read by the last vectors).
        // (Bulk copies and fills: the element loops took 6% of a training step's convolutions.)
        let right = pw - g.padLeft - g.width
        for c in 0..<g.channels {
            let p = scratch + c * plane
            p.update(repeating: 0, count: g.padTop * pw)
            for y in 0..<g.height {
                let row = p + (y + g.padTop) * pw
                row.update(repeating: 0, count: g.padLeft)
                (row + g.padLeft).update(from: input + (c * g.height + y) * g.width, count: g.width)
                (row + g.padLeft + g.width).update(repeating: 0, count: right)
            }
            (p + (g.padTop + g.height) * pw).update(repeating: 0, count: (ph - g.padTop - g.height) * pw)
        }
        (scratch + g.channels * plane).update(repeating: 0, count: scratchSize(g) - g.channels * plane)
    }

    /// The output channels of blocks `blocks` (8 channels each) of one image already padded
    /// into `scratch`; `output` is the image's whole [Cout, Hout, Wout]. Disjoint block ranges
    /// may run on separate threads over the same padded image (batch 1 on several cores).
    public static func forward(padded scratch: UnsafePointer<Float>, geometry g: ConvGeometry, packedWeights: UnsafePointer<Float>,
                               bias: UnsafePointer<Float>, blocks: Range<Int>, relu: Bool, output: UnsafeMutablePointer<Float>) {
        let pw = g.width + g.padLeft + g.padRight
        let plane = (g.height + g.padTop + g.padBottom) * pw
        let oh = g.outputHeight, ow = g.outputWidth, bs = Self.block
        if ow >= 14 {
            // Wide rows: vector pairs along the row (16 < Wout ≤ 32) or down two rows.
            var pairs: [(y0: Int, x0: Int, y1: Int, x1: Int, n0: Int, n1: Int)] = []
            if ow > 16 && ow <= 32 {
                for y in 0..<oh { pairs.append((y, 0, y, 16, 16, ow - 16)) }
            } else {
                for y in stride(from: 0, to: oh, by: 2) {
                    var x0 = 0
                    while x0 < ow {
                        let n = min(16, ow - x0)
                        pairs.append((y, x0, min(y + 1, oh - 1), x0, n, y + 1 < oh ? n : 0))
                        x0 += 16
                    }
                }
            }
            for block in blocks {
                let wb = packedWeights + block * g.channels * 9 * bs
                let out = output + block * bs * oh * ow
                for p in pairs {
                    kernel(cin: g.channels, input0: scratch + p.y0 * pw + p.x0, input1: scratch + p.y1 * pw + p.x1,
                                           planeStride: plane, rowStride: pw, weights: wb, bias: bias + block * bs, relu: relu,
                                           output0: out + p.y0 * ow + p.x0, output1: out + p.y1 * ow + p.x1,
                                           channelStride: oh * ow, count0: p.n0, count1: p.n1)
                }
            }
            return
        }
        // Narrow rows: output positions in the padded image's row-major order, 32 at a time.
        // Output (y, x) is position y·pw + x; positions with x ≥ Wout fall on padding columns and
        // are dropped when each channel's rows are copied out of the padded result.
        let positions = oh * pw, chunks = (positions + 31) / 32, padded = chunks * 32
        let result = UnsafeMutablePointer<Float>.allocate(capacity: bs * padded)
        defer { result.deallocate() }
        for block in blocks {
            let wb = packedWeights + block * g.channels * 9 * bs
            for chunk in 0..<chunks {
                let p0 = chunk * 32
                kernel(cin: g.channels, input0: scratch + p0, input1: scratch + p0 + 16,
                                       planeStride: plane, rowStride: pw, weights: wb, bias: bias + block * bs, relu: relu,
                                       output0: result + p0, output1: result + p0 + 16, channelStride: padded,
                                       count0: 16, count1: 16)
            }
            for co in 0..<bs {
                let out = output + (block * bs + co) * oh * ow, src = result + co * padded
                for y in 0..<oh { for x in 0..<ow { out[y * ow + x] = src[y * pw + x] } }
            }
        }
    }
}

/// An unaligned 64-byte vector load that always inlines. (The standard library's
/// `loadUnaligned` is sometimes left as a call inside large kernels, spilling every register.)
@inline(__always)
func loadVector(_ p: UnsafeRawPointer) -> SIMD16<Float> {
    var v = SIMD16<Float>()
    withUnsafeMutableBytes(of: &v) { $0.baseAddress!.copyMemory(from: p, byteCount: 64) }
    return v
}

/// The weight gradient of a 3×3 convolution without im2col (CKernels/wgrad_avx512.c where
/// AVX-512 runs and Cout is a multiple of 16, CKernels/direct_avx2.c where AVX2 runs and Cout is
/// a multiple of 8): per image, the input zero-padded once and the output gradient turned
/// channels-last, then for each tile of output-channel vectors × tap rows one broadcast of the
/// input per tap feeds every channel vector, pixel by pixel. Sums go into the gradient transposed
/// (tap-major, `cout` floats per tap); `finish` turns the workers' sums into [Cout, Cin, 3, 3].
public enum DirectWeightGradient {
    /// The kernels that cover `outputChannels` on this CPU, nil where none does.
    public static func isa(outputChannels: Int) -> FloatTile.ISA? {
        if FloatTile.ISA.avx512.runs && outputChannels % 16 == 0 { return .avx512 }
        if FloatTile.ISA.avx2.runs && outputChannels % 8 == 0 { return .avx2 }
        return nil
    }

    /// Whether a kernel covers the layer: 3×3, dilation 1, one group, equal strides, Cout as `isa` needs.
    public static func applies(_ g: ConvGeometry, outputChannels: Int, groups: Int) -> Bool {
        isa(outputChannels: outputChannels) != nil && groups == 1 && g.kernelHeight == 3 && g.kernelWidth == 3
            && g.dilationHeight == 1 && g.dilationWidth == 1 && g.strideHeight == g.strideWidth && g.isValid
    }

    /// Floats of scratch one worker needs: the padded image, then the image's gradient channels-last.
    public static func scratchSize(_ g: ConvGeometry, outputChannels: Int) -> Int {
        DirectConv.scratchSize(g) + g.outputPixels * outputChannels
    }

    /// Adds one image's contribution: `input` [Cin, H, W], `outputGradient` [Cout, Hout, Wout],
    /// into `transposed` [Cin·9, Cout], by the kernels `isa` names (`.plain`: `reference`).
    public static func accumulate(_ input: UnsafePointer<Float>, geometry g: ConvGeometry, outputGradient dy: UnsafePointer<Float>,
                                  outputChannels cout: Int, scratch: UnsafeMutablePointer<Float>, into transposed: UnsafeMutablePointer<Float>,
                                  isa: FloatTile.ISA? = nil) {
        DirectConv.pad(input, geometry: g, into: scratch)
        let pixels = g.outputPixels, dyt = scratch + DirectConv.scratchSize(g)
        mpq_pack_transposed_f32(Int64(pixels), Int64(cout), dy, Int64(pixels), dyt, Int64(cout))
        let pw = g.width + g.padLeft + g.padRight, plane = (g.height + g.padTop + g.padBottom) * pw
        switch isa ?? Self.isa(outputChannels: cout) ?? .plain {
        case .avx512:
            mpq_wgrad3x3_avx512(Int64(g.channels), Int64(cout), scratch, Int64(plane), Int64(pw), Int64(g.outputHeight),
                                Int64(g.outputWidth), Int64(g.strideHeight), dyt, transposed)
        case .avx2:
            mpq_wgrad3x3_avx2(Int64(g.channels), Int64(cout), scratch, Int64(plane), Int64(pw), Int64(g.outputHeight),
                              Int64(g.outputWidth), Int64(g.strideHeight), dyt, transposed)
        case .plain:
            reference(cin: g.channels, cout: cout, padded: scratch, planeStride: plane, rowStride: pw, outputHeight: g.outputHeight,
                      outputWidth: g.outputWidth, stride: g.strideHeight, transposedGradient: dyt, into: transposed)
        }
    }

    /// The plain loops the kernels are held to: for each tap (ci, u, v) and output channel, the
    /// sum continued from `dwt`'s value over the output pixels in order, one fused multiply-add each.
    public static func reference(cin: Int, cout: Int, padded x: UnsafePointer<Float>, planeStride: Int, rowStride: Int,
                                 outputHeight oh: Int, outputWidth ow: Int, stride: Int, transposedGradient dyt: UnsafePointer<Float>,
                                 into dwt: UnsafeMutablePointer<Float>) {
        for ci in 0..<cin {
            for u in 0..<3 {
                for v in 0..<3 {
                    let t = (ci * 3 + u) * 3 + v, row = x + ci * planeStride + u * rowStride + v
                    for co in 0..<cout {
                        var s = dwt[t * cout + co]
                        for y in 0..<oh {
                            for xo in 0..<ow { s = s.addingProduct(row[y * stride * rowStride + xo * stride], dyt[(y * ow + xo) * cout + co]) }
                        }
                        dwt[t * cout + co] = s
                    }
                }
            }
        }
    }

    /// The sum of the workers' transposed gradients as [Cout, Cin·9].
    public static func finish(_ partials: [[Float]], outputChannels cout: Int) -> [Float] {
        let k = (partials.first?.count ?? 0) / max(cout, 1)
        var dw = [Float](repeating: 0, count: cout * k)
        for part in partials {
            for t in 0..<k { for co in 0..<cout { dw[co * k + t] += part[t * cout + co] } }
        }
        return dw
    }
}
