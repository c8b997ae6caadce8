import Testing
import Kernels

/// The float depthwise plane (padded copy, 3×3 in one pass, generic taps otherwise) against the
/// plain per-pixel form on awkward planes, strides, paddings and dilations; float error within
/// a few ulps of the sum of |terms| (the two add the taps in different orders).
@Test(arguments: [(1, 1, 3, 3, 1, 1, 0, 1), (7, 5, 3, 3, 1, 1, 1, 1), (17, 12, 3, 3, 2, 2, 1, 1), (33, 31, 3, 3, 2, 1, 0, 1),
                  (9, 14, 5, 3, 1, 2, 2, 1), (12, 7, 3, 3, 1, 1, 2, 2), (3, 65, 1, 1, 1, 1, 0, 1)])
func depthwisePlaneMatchesReference(_ c: (Int, Int, Int, Int, Int, Int, Int, Int)) {
    let (h, w, kh, kw, sh, sw, pad, dilation) = c
    let g = ConvGeometry(channels: 1, height: h, width: w, kernelHeight: kh, kernelWidth: kw, stride: (sh, sw),
                         padding: (pad, pad + 1 > kw ? pad : pad + (w % 2), pad, pad), dilation: (dilation, dilation))
    guard g.isValid else { return }
    var r = TestRandom(seed: UInt64(h * 131 + w))
    let x = r.floats(h * w), wt = r.floats(kh * kw)
    var fast = [Float](repeating: .nan, count: g.outputPixels), plain = fast
    var scratch = [Float](repeating: .nan, count: DepthwiseFloat.scratchSize(g))
    for relu in [false, true] {
        DepthwiseFloat.plane(x, g, weights: wt, bias: 0.25, relu: relu, scratch: &scratch, output: &fast)
        DepthwiseFloat.planeReference(x, g, weights: wt, bias: 0.25, relu: relu, output: &plain)
        let bound = Float(kh * kw + 1) * 2 * Float.ulpOfOne * Float(kh * kw + 1)
        #expect(zip(fast, plain).allSatisfy { abs($0 - $1) <= bound }, "\(c) relu \(relu)")
    }
}
