import Testing
import Kernels

/// The packed binary convolution equals its plain reference on awkward shapes: channel counts
/// across word boundaries (1, 63, 64, 65, 130), output channels off the 8- and 32-lane blocks,
/// strides, dilation, asymmetric padding (taps in the padding count nothing), 1×1 and a kernel
/// covering the whole input (a linear layer), biases, shifts and an all-zero channel.
@Test(arguments: [
    (5, 7, 1, 3, 3, 1, 1, 1, 1, 1, 3),
    (8, 8, 64, 3, 3, 1, 1, 1, 1, 1, 64),
    (9, 6, 65, 3, 3, 2, 1, 1, 1, 0, 37),
    (7, 7, 63, 3, 3, 1, 2, 2, 2, 1, 9),
    (4, 4, 130, 1, 1, 2, 2, 1, 0, 0, 40),
    (3, 3, 33, 3, 3, 1, 1, 1, 0, 0, 17),
    (6, 5, 16, 5, 3, 1, 1, 1, 2, 1, 33),
    (5, 5, 300, 3, 3, 1, 1, 1, 1, 1, 20),
    (4, 4, 520, 3, 3, 1, 1, 1, 1, 1, 12),
    (8, 8, 20, 7, 5, 1, 1, 1, 3, 2, 24),
])
func binaryConvMatchesReference(_ a: (Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int)) {
    let (h, w, c, kh, kw, sh, sw, d, pt, pl, cout) = a
    let oh = (h + 2 * pt - d * (kh - 1) - 1) / sh + 1, ow = (w + 2 * pl - d * (kw - 1) - 1) / sw + 1
    let g = BinaryConv.Geometry(height: h, width: w, channels: c, kernelH: kh, kernelW: kw, strideH: sh, strideW: sw,
                                dilationH: d, dilationW: d, padTop: pt, padLeft: pl, outH: oh, outW: ow, cout: cout)
    var r = TestRandom(seed: UInt64(h * 1000 + c * 10 + cout))
    let x = r.floats(h * w * c)
    var wt = r.floats(cout * kh * kw * c)
    // The last output channel's weights all zero (α = 0): its output is the bias alone.
    for i in ((cout - 1) * kh * kw * c)..<(cout * kh * kw * c) { wt[i] = 0 }
    let bias = (0..<cout).map { Int32($0 * 7 - 50) }
    var px = [UInt64](repeating: 0, count: h * w * g.words)
    px.withUnsafeMutableBufferPointer { BinaryConv.pack(pixels: h * w, channels: c, into: $0.baseAddress!) { x[$0 * c + $1] < 0 } }
    var signs = [UInt64](repeating: 0, count: cout * kh * kw * g.words)
    signs.withUnsafeMutableBufferPointer { BinaryConv.pack(pixels: cout * kh * kw, channels: c, into: $0.baseAddress!) { wt[$0 * c + $1] < 0 } }
    let live = (0..<cout).map { o in (0..<(kh * kw * c)).contains { wt[o * kh * kw * c + $0] != 0 } }
    let weights = BinaryConv.Weights(signs: signs, bias: bias, cout: cout, taps: kh * kw, words: g.words, live: live)
    let ref = BinaryConv.reference(g, x: x, w: wt, bias: bias, shift: c % 3)
    // The Swift kernel and, where this CPU runs it, the AVX2 one (bytes summed after 31 words:
    // the last three shapes have 36 and 81 words a pixel, and 35 one-word taps).
    for backend in [IGEMM.Backend.swift, .avx2] where backend.runs {
        var out = [Int32](repeating: -1, count: oh * ow * (cout + 3))
        px.withUnsafeBufferPointer { p in
            out.withUnsafeMutableBufferPointer {
                BinaryConv.run(g, input: p.baseAddress!, weights: weights, output: $0.baseAddress!, ldo: cout + 3, shift: c % 3, backend: backend)
            }
        }
        var same = true
        for p in 0..<(oh * ow) {
            for o in 0..<cout where out[p * (cout + 3) + o] != ref[p * cout + o] { same = false }
            for o in cout..<(cout + 3) where out[p * (cout + 3) + o] != -1 { same = false }  // nothing written past cout
        }
        #expect(same, "\(a) \(backend)")
    }
}
