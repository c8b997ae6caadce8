import Testing
import Kernels

typealias BinaryShape = (Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int)

/// Height, width, channels, kernel height and width, strides, dilation, top and left padding, cout.
let binaryShapes: [BinaryShape] = [
    (5, 7, 1, 3, 3, 1, 1, 1, 1, 1, 3),
    (8, 8, 64, 3, 3, 1, 1, 1, 1, 1, 64),
    (9, 6, 65, 3, 3, 2, 1, 1, 1, 0, 37),
    (7, 7, 63, 3, 3, 1, 2, 2, 2, 1, 9),
    (4, 4, 130, 1, 1, 2, 2, 1, 0, 0, 40),
    (3, 3, 33, 3, 3, 1, 1, 1, 0, 0, 17),
    (6, 5, 16, 5, 3, 1, 1, 1, 2, 1, 33),
    (5, 5, 300, 3, 3, 1, 1, 1, 1, 1, 20),
    (8, 8, 20, 7, 5, 1, 1, 1, 3, 2, 24),
]

/// A shape's geometry, random input and weights (the last output channel's all zero: α = 0, its
/// output is the bias alone), the input's and the weights' packed signs, and which channels live.
func binaryCase(_ a: BinaryShape, seed: UInt64) -> (g: BinaryConv.Geometry, x: [Float], wt: [Float], px: [UInt64], signs: [UInt64], live: [Bool]) {
    let (h, w, c, kh, kw, sh, sw, d, pt, pl, cout) = a
    let oh = (h + 2 * pt - d * (kh - 1) - 1) / sh + 1, ow = (w + 2 * pl - d * (kw - 1) - 1) / sw + 1
    let g = BinaryConv.Geometry(height: h, width: w, channels: c, kernelH: kh, kernelW: kw, strideH: sh, strideW: sw,
                                dilationH: d, dilationW: d, padTop: pt, padLeft: pl, outH: oh, outW: ow, cout: cout)
    var r = TestRandom(seed: seed)
    let x = r.floats(h * w * c)
    var wt = r.floats(cout * kh * kw * c)
    for i in ((cout - 1) * kh * kw * c)..<(cout * kh * kw * c) { wt[i] = 0 }
    var px = [UInt64](repeating: 0, count: h * w * g.words)
    px.withUnsafeMutableBufferPointer { BinaryConv.pack(pixels: h * w, channels: c, into: $0.baseAddress!) { x[$0 * c + $1] < 0 } }
    var signs = [UInt64](repeating: 0, count: cout * kh * kw * g.words)
    signs.withUnsafeMutableBufferPointer { BinaryConv.pack(pixels: cout * kh * kw, channels: c, into: $0.baseAddress!) { wt[$0 * c + $1] < 0 } }
    let live = (0..<cout).map { o in (0..<(kh * kw * c)).contains { wt[o * kh * kw * c + $0] != 0 } }
    return (g, x, wt, px, signs, live)
}

/// The packed binary convolution (`layer` with raw sums and a bias) equals its plain reference on
/// awkward shapes: channel counts across word boundaries (1, 63, 64, 65, 130, 520), output channels
/// off the 8- and 32-lane blocks, strides, dilation, asymmetric padding (taps in the padding count
/// nothing), 1×1 and a kernel covering the whole input (a linear layer), biases, shifts and an
/// all-zero channel — on every backend this CPU runs.
@Test(arguments: binaryShapes + [(4, 4, 520, 3, 3, 1, 1, 1, 1, 1, 12)])
func binaryConvMatchesReference(_ a: BinaryShape) {
    let (h, _, c, kh, kw, _, _, _, _, _, cout) = a
    let (g, x, wt, px, signs, live) = binaryCase(a, seed: UInt64(h * 1000 + c * 10 + cout))
    let (oh, ow) = (g.outH, g.outW)
    let bias = (0..<cout).map { Int32($0 * 7 - 50) }
    let weights = BinaryConv.Weights(signs: signs, cout: cout, taps: kh * kw, words: g.words, live: live, channels: c)
    let epilogue = IntegerEpilogue(bias: bias, multiplier: bias.map { _ in 0 }, shift: bias.map { _ in 1 }, lo: 0, hi: 0, mode: .sums)
    let ref = BinaryConv.reference(g, x: x, w: wt, bias: bias, shift: c % 3)
    // The AVX2 pixel kernel sums bytes after 31 words: the last three shapes have 36 and 81 words
    // a pixel, and 35 one-word taps.
    for backend in [IGEMM.Backend.swift, .avx2, .vnni] where backend.runs {
        var out = [Int32](repeating: -1, count: oh * ow * (cout + 3))
        px.withUnsafeBufferPointer { p in
            out.withUnsafeMutableBytes {
                BinaryConv.layer(BinaryConv.Layout(g), input: p.baseAddress!, weights: weights, shift: c % 3, epilogue: epilogue,
                                 output: $0.baseAddress!, outStarts: (0..<(oh * ow)).map { $0 * (cout + 3) }, residual: nil, resStarts: [],
                                 signs: nil, backend: backend)
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

/// The binary layer through the integer epilogue (`BinaryConv.layer`) equals plain arithmetic on
/// the reference's dots, on the shapes above, one of 81 taps (past the kernel's 64-tap mask) and
/// 3×3 ones of 16, 17, 20 and 32 channels (taps packed 4 or 2 to a word, strides 1 and 2):
/// raw sums with a bias, sums scaled to an add with each kind of residual branch (Int32 at the
/// scale, Int32 — saturating or not — or codes through their own dyadic), codes clamped inside
/// and at the byte range's ends, with and without the signs packed — on every backend this CPU
/// runs, output pixels `cout + 3` elements apart and nothing written between them.
@Test(arguments: binaryShapes + [
    (9, 9, 5, 9, 9, 1, 1, 1, 0, 0, 70),
    (14, 14, 16, 3, 3, 1, 1, 1, 1, 1, 16),
    (10, 9, 32, 3, 3, 1, 1, 1, 1, 1, 32),
    (9, 8, 20, 3, 3, 2, 2, 1, 1, 1, 24),
    (6, 6, 16, 3, 3, 1, 1, 1, 0, 0, 8),
    (7, 6, 17, 3, 3, 1, 1, 1, 1, 0, 45),
])
func binaryLayerMatchesEpilogue(_ a: BinaryShape) {
    let (h, _, c, kh, kw, _, _, _, _, _, cout) = a
    var r = TestRandom(seed: UInt64(h * 1000 + c * 10 + cout + 11))
    let (g, x, wt, px, signs, live) = binaryCase(a, seed: UInt64(h * 1000 + c * 10 + cout + 7))
    let pixels = g.outH * g.outW
    let weights = BinaryConv.Weights(signs: signs, cout: cout, taps: kh * kw, words: g.words, live: live,
                                     channels: c)
    // 3×3 layers of at most 32 channels read their taps packed 4 or 2 to a word where all nine are inside.
    #expect(weights.packedLanes == (kh == 3 && kw == 3 && c <= 32 ? (c <= 16 ? 16 : 32) : 0))
    let shift = c % 3
    let dots = BinaryConv.reference(g, x: x, w: wt, bias: [Int32](repeating: 0, count: cout), shift: shift)
    let layout = BinaryConv.Layout(g), ld = cout + 3, swords = (cout + 63) / 64
    func dyadic(_ y: Int64, _ m: Int32, _ s: Int32) -> Int64 { min(max((y * Int64(m) + (1 << (Int64(s) - 1))) >> Int64(s), Int64(Int32.min)), Int64(Int32.max)) }
    // Each with a family of shifts: the short form (all ≥ 32), the general one with saturation
    // (from 20) and without (all ≥ 31). Sums scaled to an add with a rescaled branch (Bi-Real's
    // layers) in every family, the branch saturating or not: the kernel's compiled forms.
    let bare: [(IntegerEpilogue.Mode, IntegerEpilogue.Residual, Int32, Int32)] = [
        (.sums, .none, 0, 0), (.scaledSums, .none, .min, .max), (.scaledSums, .sums, .min, .max),
        (.scaledSums, .codes(signed: true, multiplier: 1_200_000_000, shift: 28), .min, .max),
        (.codes, .rescaledSums(multiplier: 1_100_000_000, shift: 34), -128, 127), (.codes, .none, 0, 255), (.codes, .sums, -100, 90),
        (.codes, .codes(signed: false, multiplier: 2_000_000_000, shift: 33), 7, 200),
    ]
    let configs = bare.enumerated().map { ($1.0, $1.1, $1.2, $1.3, $0 % 3) }
        + [Int32(30), 31].flatMap { s in (0..<3).map { (IntegerEpilogue.Mode.scaledSums, IntegerEpilogue.Residual.rescaledSums(multiplier: 1_900_000_000, shift: s), Int32.min, Int32.max, $0) } }
    for (mode, residual, lo, hi, family) in configs {
        let bias = (0..<cout).map { _ in Int32(r.int(-3000...3000)) }
        let mult = (0..<cout).map { _ in Int32(r.int(1 << 30...(1 << 31) - 1)) }
        let shifts = (0..<cout).map { _ in Int32([r.int(33...38), r.int(20...33), r.int(31...32)][family]) }
        let e = IntegerEpilogue(bias: bias, multiplier: mult, shift: shifts, lo: lo, hi: hi, mode: mode, residual: residual)
        e.foldBias(sumsWithin: Int64(g.taps * c) << Int64(shift))
        // Residual rows as Int32s (a large range, so rescaled branches saturate) or bytes.
        let res = residual.elementBytes == 4 ? (0..<(pixels * ld)).flatMap { _ in withUnsafeBytes(of: Int32(truncatingIfNeeded: r.int(-2_000_000_000...2_000_000_000))) { Array($0) } }
                                             : r.bytes(pixels * ld)
        let bytes = mode == .codes ? 1 : 4
        var expected = [Int64](repeating: 0, count: pixels * cout)
        for p in 0..<pixels {
            for o in 0..<cout {
                let y = dots[p * cout + o] &+ bias[o]
                guard mode != .sums else { expected[p * cout + o] = Int64(y); continue }
                var q = dyadic(Int64(y), mult[o], shifts[o])
                let at = p * ld + o
                let branch: Int64? = res.withUnsafeBytes { rb -> Int64? in
                    switch residual {
                    case .none: nil
                    case .sums: Int64(rb.load(fromByteOffset: at * 4, as: Int32.self))
                    case let .rescaledSums(m, s): dyadic(Int64(rb.load(fromByteOffset: at * 4, as: Int32.self)), m, s)
                    case let .codes(signed, m, s): dyadic(signed ? Int64(Int8(bitPattern: rb[at])) : Int64(rb[at]), m, s)
                    }
                }
                if let branch { q = Int64(Int32(truncatingIfNeeded: q) &+ Int32(truncatingIfNeeded: branch)) }
                expected[p * cout + o] = min(max(q, Int64(lo)), Int64(hi))
            }
        }
        for backend in [IGEMM.Backend.swift, .avx2, .vnni] where backend.runs {
            for packSigns in [false, true] {
                var out = [UInt8](repeating: 0xAB, count: pixels * ld * bytes)
                var words = [UInt64](repeating: ~0, count: pixels * swords)
                px.withUnsafeBufferPointer { p in res.withUnsafeBytes { rp in out.withUnsafeMutableBytes { op in words.withUnsafeMutableBufferPointer { wp in
                    BinaryConv.layer(layout, input: p.baseAddress!, weights: weights, shift: shift, epilogue: e, output: op.baseAddress!,
                                     outStarts: (0..<pixels).map { $0 * ld }, residual: residual == .none ? nil : rp.baseAddress!,
                                     resStarts: residual == .none ? [] : (0..<pixels).map { $0 * ld }, signs: packSigns ? wp.baseAddress! : nil,
                                     backend: backend)
                } } } }
                var wrong = 0, untouched = true, signsRight = true
                out.withUnsafeBytes { ob in
                    for p in 0..<pixels {
                        var word = [UInt64](repeating: 0, count: swords)
                        for o in 0..<cout {
                            let v: Int64 = bytes == 1 ? (lo < 0 ? Int64(ob.load(fromByteOffset: p * ld + o, as: Int8.self)) : Int64(ob[p * ld + o]))
                                                      : Int64(ob.load(fromByteOffset: (p * ld + o) * 4, as: Int32.self))
                            let want = bytes == 1 ? Int64(lo < 0 ? Int64(Int8(truncatingIfNeeded: expected[p * cout + o])) : Int64(UInt8(truncatingIfNeeded: expected[p * cout + o])))
                                                  : expected[p * cout + o]
                            if v != want { wrong += 1 }
                            if expected[p * cout + o] < 0 { word[o / 64] |= 1 << UInt64(o % 64) }
                        }
                        for o in cout..<ld where (0..<bytes).contains(where: { ob[(p * ld + o) * bytes + $0] != 0xAB }) { untouched = false }
                        if packSigns && Array(words[(p * swords)..<((p + 1) * swords)]) != word { signsRight = false }
                    }
                }
                #expect(wrong == 0 && untouched && signsRight, "\(a) \(mode) \(residual) \(backend) signs \(packSigns): \(wrong) wrong")
            }
        }
    }
}
