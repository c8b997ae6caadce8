import Testing
import Kernels

/// The vector instruction sets this CPU runs (each fast kernel is held to the plain loop).
let floatISAs = FloatTile.ISA.allCases.filter { $0 != .plain && $0.runs }

/// The float plan's tile kernel (AVX-512, AVX2) against its plain loop on awkward tiles: rows 1…12,
/// partial column blocks, one and many taps and channels, with and without a residual, clamped
/// or not. Both add bias, then tap by tap and channel by channel with one fused multiply-add
/// each, so they agree exactly.
@Test(arguments: [(1, 1, 1, 1), (12, 32, 9, 1), (5, 17, 9, 3), (12, 16, 1, 17), (7, 31, 4, 33), (11, 5, 25, 2), (3, 32, 9, 64)])
func floatTileMatchesItsReference(_ c: (Int, Int, Int, Int)) {
    for isa in floatISAs {
        let (rows, cols, ntaps, cin) = c
        var r = TestRandom(seed: UInt64(rows * 1000 + cols * 37 + ntaps * 7 + cin))
        // Each row's receptive field: taps spaced a little wider than the channels, rows apart.
        let span = ntaps * (cin + 3) + 8
        let input = r.floats(rows * span + 64)
        let taps = (0..<ntaps).map { Int64($0 * (cin + 3)) }
        let n = 48, w = r.floats(n * ntaps * cin), bias = r.floats(n)
        let weights = FloatTileWeights(n: n, taps: ntaps, cin: cin, bias: bias) { j, t, ci in w[(j * ntaps + t) * cin + ci] }
        let residual = r.floats(rows * n)
        for column in [0, 16] where column + cols <= n {
            for (lo, hi, withResidual) in [(-Float.infinity, Float.infinity, false), (0, Float.infinity, true), (0, 0.5, false)] {
                var fast = [Float](repeating: .nan, count: rows * n), plain = fast
                input.withUnsafeBufferPointer { x in
                    residual.withUnsafeBufferPointer { res in
                        fast.withUnsafeMutableBufferPointer { f in
                            plain.withUnsafeMutableBufferPointer { p in
                                let a = (0..<rows).map { x.baseAddress! + $0 * span }
                                let rp = (0..<rows).map { res.baseAddress! + $0 * n }
                                for (out, kernel) in [(f, isa), (p, FloatTile.ISA.plain)] {
                                    let o = (0..<rows).map { out.baseAddress! + $0 * n }
                                    weights.data.withUnsafeBufferPointer { wp in
                                        weights.bias.withUnsafeBufferPointer { bp in
                                            FloatTile.run(rows: rows, cols: cols, a: a, taps: taps, weights: weights, packed: wp.baseAddress!,
                                                          bias: bp.baseAddress!, lo: lo, hi: hi, column: column, out: o,
                                                          res: withResidual ? rp : nil, isa: kernel)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                let same = zip(fast, plain).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }
                #expect(same, "\(isa) \(c) column \(column) clamp \(lo)…\(hi) residual \(withResidual)")
                // Only the tile's columns were written.
                for i in 0..<rows { for j in 0..<n where j < column || j >= column + cols { #expect(fast[i * n + j].isNaN) } }
            }
        }
    }
}

/// The float depthwise kernel against its plain loop: channel counts around the 16-wide blocks,
/// one, four and nine taps (nine: the weights kept in registers), 7 pixels (four at once, then
/// one at a time).
@Test(arguments: [(1, 1), (9, 15), (9, 16), (4, 63), (9, 64), (9, 97), (1, 144)])
func floatDepthwiseMatchesItsReference(_ c: (Int, Int)) {
    for isa in floatISAs {
        let (ntaps, channels) = c
        var r = TestRandom(seed: UInt64(ntaps * 1000 + channels))
        let pixels = 7, ldw = (channels + 15) / 16 * 16, span = (ntaps + 1) * channels + 16
        let input = r.floats(pixels * span + 64), w = r.floats(ntaps * ldw), bias = r.floats(ldw)
        let taps = (0..<ntaps).map { Int64($0 * channels + $0 % 3) }
        var fast = [Float](repeating: .nan, count: pixels * channels + 16), plain = fast
        input.withUnsafeBufferPointer { x in
            for (kernel, lo, hi) in [(isa, Float(0), Float(6)), (FloatTile.ISA.plain, Float(0), Float(6))] {
                let vector = kernel != .plain
                let target = vector ? fast : plain
                var out = target
                out.withUnsafeMutableBufferPointer { o in
                    let a = (0..<pixels).map { x.baseAddress! + $0 * span }
                    let op = (0..<pixels).map { o.baseAddress! + $0 * channels }
                    FloatTile.depthwise(pixels: pixels, a: a, out: op, taps: taps, ntaps: ntaps, weights: w, ldw: ldw, channels: channels,
                                        bias: bias, lo: lo, hi: hi, isa: kernel)
                }
                if vector { fast = out } else { plain = out }
            }
        }
        #expect(zip(fast, plain).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }, "\(isa) \(c)")
        #expect(fast[pixels * channels].isNaN, "wrote past the last pixel")
    }
}

/// A line of pixels (whole 12-row tiles from one pointer, then a tile of the last few rows)
/// against the plain loop over the same rows, for each compiled step and line lengths around
/// the tile's 12; outputs and residuals a row's width apart plus a gap, which stays unwritten.
/// Other steps are refused.
@Test(arguments: [1, 2, 3, 6, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, 2048])
func floatLineMatchesItsReference(_ step: Int) {
    for isa in floatISAs {
        var r = TestRandom(seed: UInt64(step))
        let cin = min(step, 5), ntaps = 3, n = 40, ostep = n + 3, most = 31
        let taps: [Int64] = [0, Int64(step * 12 + 7), Int64(step * 24 + 3)]
        let input = r.floats(step * (most + 28) + 64)
        let w = r.floats(n * ntaps * cin), bias = r.floats(n), residual = r.floats(most * ostep)
        let weights = FloatTileWeights(n: n, taps: ntaps, cin: cin, bias: bias) { j, t, ci in w[(j * ntaps + t) * cin + ci] }
        for (count, column, cols) in [(12, 0, 32), (1, 32, 8), (13, 16, 17), (28, 0, 16), (30, 0, 32), (23, 16, 24)] {
            for withResidual in [false, true] {
                var fast = [Float](repeating: .nan, count: most * ostep), plain = fast
                input.withUnsafeBufferPointer { x in
                    residual.withUnsafeBufferPointer { res in
                        weights.data.withUnsafeBufferPointer { wp in
                            weights.bias.withUnsafeBufferPointer { bp in
                                let rp = withResidual ? res.baseAddress! : nil
                                fast.withUnsafeMutableBufferPointer { f in
                                    #expect(FloatTile.runLine(count: count, cols: cols, a: x.baseAddress!, step: step, taps: taps, weights: weights,
                                                              packed: wp.baseAddress!, bias: bp.baseAddress!, lo: -1, hi: 1, column: column,
                                                              out: f.baseAddress!, outStep: ostep, res: rp, resStep: ostep, isa: isa))
                                    #expect(!FloatTile.runLine(count: count, cols: cols, a: x.baseAddress!, step: step + 999, taps: taps,
                                                               weights: weights, packed: wp.baseAddress!, bias: bp.baseAddress!, lo: -1, hi: 1,
                                                               column: column, out: f.baseAddress!, outStep: ostep, res: rp, resStep: ostep, isa: isa))
                                }
                                plain.withUnsafeMutableBufferPointer { p in
                                    for first in stride(from: 0, to: count, by: 12) {
                                        let rows = min(12, count - first)
                                        let a = (first..<first + rows).map { x.baseAddress! + $0 * step }
                                        let o = (first..<first + rows).map { p.baseAddress! + $0 * ostep }
                                        let rr = (first..<first + rows).map { res.baseAddress! + $0 * ostep }
                                        FloatTile.run(rows: rows, cols: cols, a: a, taps: taps, weights: weights, packed: wp.baseAddress!,
                                                      bias: bp.baseAddress!, lo: -1, hi: 1, column: column, out: o,
                                                      res: withResidual ? rr : nil, isa: .plain)
                                    }
                                }
                            }
                        }
                    }
                }
                let same = zip(fast, plain).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }
                #expect(same, "\(isa) step \(step) count \(count) columns \(column)+\(cols) residual \(withResidual)")
                #expect(fast[(count - 1) * ostep + column + cols].isNaN && fast[count * ostep + column].isNaN, "wrote past the line")
            }
        }
    }
}

/// The one-row kernel (eight column vectors in flight) against the plain loop: column counts
/// around its vectors, with and without a residual.
@Test(arguments: [(1, 1), (16, 9), (17, 33), (100, 2), (128, 5), (40, 64)])
func floatRowMatchesItsReference(_ c: (Int, Int)) {
    for isa in floatISAs {
        let (cols, cin) = c
        var r = TestRandom(seed: UInt64(cols * 100 + cin))
        let n = 144, ntaps = 3
        let taps: [Int64] = [0, Int64(cin + 5), Int64(2 * cin + 9)]
        let input = r.floats(3 * cin + 32), w = r.floats(n * ntaps * cin), bias = r.floats(n), residual = r.floats(n)
        let weights = FloatTileWeights(n: n, taps: ntaps, cin: cin, bias: bias) { j, t, ci in w[(j * ntaps + t) * cin + ci] }
        for column in [0, 16] where column + cols <= n {
            for withResidual in [false, true] {
                var fast = [Float](repeating: .nan, count: n), plain = fast
                weights.data.withUnsafeBufferPointer { wp in
                    weights.bias.withUnsafeBufferPointer { bp in
                        residual.withUnsafeBufferPointer { res in
                            for kernel in [isa, FloatTile.ISA.plain] {
                                let vector = kernel != .plain
                                var out = vector ? fast : plain
                                out.withUnsafeMutableBufferPointer { o in
                                    FloatTile.runRow(cols: cols, a: input, taps: taps, weights: weights, packed: wp.baseAddress!, bias: bp.baseAddress!,
                                                     lo: -0.5, hi: 2, column: column, out: o.baseAddress!, res: withResidual ? res.baseAddress! : nil, isa: kernel)
                                }
                                if vector { fast = out } else { plain = out }
                            }
                        }
                    }
                }
                #expect(zip(fast, plain).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }, "\(isa) \(c) column \(column) residual \(withResidual)")
                #expect(fast.enumerated().allSatisfy { ($0.offset >= column && $0.offset < column + cols) != $0.element.isNaN })
            }
        }
    }
}

/// The training path's direct 3×3 tile: the AVX2 kernel (4 channels × 16 pixels a pass) against
/// the generated Swift one (8 × 2 × 16), exactly, for full and partial pixel vectors, an absent
/// second vector, and with and without the ReLU.
@Test(arguments: [(1, 16, 16), (3, 16, 9), (16, 5, 0), (7, 1, 16)])
func directConvTileAVX2MatchesSwift(_ c: (Int, Int, Int)) {
    guard FloatTile.ISA.avx2.runs else { return }
    let (cin, count0, count1) = c
    var r = TestRandom(seed: UInt64(cin * 100 + count0 + count1))
    let rowStride = 40, planeStride = 5 * rowStride
    let input = r.floats(cin * planeStride + 64), weights = r.floats(cin * 9 * 8), bias = r.floats(8)
    let channelStride = 48
    for relu in [false, true] {
        var fast = [Float](repeating: .nan, count: 8 * channelStride), plain = fast
        input.withUnsafeBufferPointer { x in
            for (avx2, out) in [(true, 0), (false, 1)] {
                var o = out == 0 ? fast : plain
                o.withUnsafeMutableBufferPointer { op in
                    DirectConv.tile(cin: cin, input0: x.baseAddress!, input1: x.baseAddress! + rowStride + 3, planeStride: planeStride,
                                    rowStride: rowStride, weights: weights, bias: bias, relu: relu, output0: op.baseAddress!,
                                    output1: op.baseAddress! + 20, channelStride: channelStride, count0: count0, count1: count1, avx2: avx2)
                }
                if out == 0 { fast = o } else { plain = o }
            }
        }
        #expect(zip(fast, plain).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }, "\(c) relu \(relu)")
    }
}

/// The weight gradient's kernels (AVX-512: 16 output channels a vector in blocks of 64, 32 and
/// 16; AVX2: 8) against the plain loops, exactly: each sum runs in the same order. Two images
/// accumulate into a gradient that starts non-zero; tap rows past the tiles' 2, 4 and 8 (Cin 1,
/// 3, 5), strides 1 and 2, uneven padding, and channel counts only the AVX2 kernel covers.
@Test(arguments: [(1, 16, 28, 28, 1, 1, 1), (3, 112, 9, 11, 2, 1, 0), (5, 48, 7, 7, 1, 0, 2), (16, 64, 6, 13, 1, 1, 1),
                  (2, 24, 10, 9, 2, 1, 1), (3, 32, 5, 17, 2, 0, 0)])
func directWeightGradientMatchesReference(_ c: (Int, Int, Int, Int, Int, Int, Int)) {
    let (cin, cout, h, w, stride, padA, padB) = c
    let g = ConvGeometry(channels: cin, height: h, width: w, kernelHeight: 3, kernelWidth: 3, stride: (stride, stride),
                         padding: (padA, padB, padB, padA))
    var r = TestRandom(seed: UInt64(cin * 1000 + cout))
    let images = 2, start = r.floats(cin * 9 * cout)
    let x = r.floats(images * cin * h * w), dy = r.floats(images * cout * g.outputPixels)
    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: DirectWeightGradient.scratchSize(g, outputChannels: cout))
    defer { scratch.deallocate() }
    func run(_ isa: FloatTile.ISA) -> [Float] {
        var dw = start
        x.withUnsafeBufferPointer { xp in
            dy.withUnsafeBufferPointer { dyp in
                dw.withUnsafeMutableBufferPointer { d in
                    for i in 0..<images {
                        DirectWeightGradient.accumulate(xp.baseAddress! + i * cin * h * w, geometry: g,
                                                        outputGradient: dyp.baseAddress! + i * cout * g.outputPixels,
                                                        outputChannels: cout, scratch: scratch, into: d.baseAddress!, isa: isa)
                    }
                }
            }
        }
        return dw
    }
    let plain = run(.plain)
    #expect(plain != start)
    for isa in [FloatTile.ISA.avx512, .avx2] where isa.runs && cout % (isa == .avx512 ? 16 : 8) == 0 {
        let got = run(isa)
        #expect(zip(got, plain).filter { $0 != $1 }.count == 0, "\(isa) \(c): \(zip(got, plain).filter { $0 != $1 }.count) sums differ")
    }
}
