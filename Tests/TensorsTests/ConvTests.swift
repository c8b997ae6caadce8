import Testing
import Tensors

/// Direct convolution in Double: the oracle for im2col + GEMM.
func directConv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, stride: (Int, Int), pad: (Int, Int, Int, Int),
                dilation: (Int, Int), groups: Int) -> Tensor {
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (co, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
    let oh = (h + pad.0 + pad.2 - dilation.0 * (kh - 1) - 1) / stride.0 + 1
    let ow = (wd + pad.1 + pad.3 - dilation.1 * (kw - 1) - 1) / stride.1 + 1
    var out = [Float](repeating: 0, count: n * co * oh * ow)
    let coPerGroup = co / groups
    for i in 0..<n { for o in 0..<co { for y in 0..<oh { for xx in 0..<ow {
        var s = Double(b?.scalars[o] ?? 0)
        let g = o / coPerGroup
        for ci in 0..<cg { for u in 0..<kh { for v in 0..<kw {
            let iy = y * stride.0 - pad.0 + u * dilation.0, ix = xx * stride.1 - pad.1 + v * dilation.1
            if iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
            let xi = x.scalars[((i * c + g * cg + ci) * h + iy) * wd + ix]
            s += Double(xi) * Double(w.scalars[((o * cg + ci) * kh + u) * kw + v])
        } } }
        out[((i * co + o) * oh + y) * ow + xx] = Float(s)
    } } } }
    return try! Tensor(shape: [n, co, oh, ow], scalars: out)
}

struct Conv2DCase: Sendable, CustomStringConvertible {
    var n: Int, c: Int, h: Int, w: Int, co: Int, k: (Int, Int), stride: (Int, Int), pad: (Int, Int, Int, Int),
        dilation: (Int, Int), groups: Int, bias: Bool
    var description: String { "n\(n) c\(c) \(h)x\(w) co\(co) k\(k) s\(stride) p\(pad) d\(dilation) g\(groups)" }
}

@Test(arguments: [
    Conv2DCase(n: 2, c: 1, h: 28, w: 28, co: 16, k: (3, 3), stride: (1, 1), pad: (1, 1, 1, 1), dilation: (1, 1), groups: 1, bias: true),
    Conv2DCase(n: 3, c: 16, h: 14, w: 14, co: 32, k: (3, 3), stride: (2, 2), pad: (1, 1, 1, 1), dilation: (1, 1), groups: 1, bias: false),
    Conv2DCase(n: 1, c: 8, h: 9, w: 7, co: 8, k: (3, 3), stride: (1, 1), pad: (1, 1, 1, 1), dilation: (1, 1), groups: 8, bias: true),
    // Depthwise (one plane at a time): 3×3 stride 2 with odd sizes, and the generic taps path.
    Conv2DCase(n: 3, c: 17, h: 13, w: 10, co: 17, k: (3, 3), stride: (2, 2), pad: (1, 0, 1, 1), dilation: (1, 1), groups: 17, bias: true),
    Conv2DCase(n: 2, c: 5, h: 12, w: 11, co: 5, k: (5, 3), stride: (1, 2), pad: (2, 1, 0, 3), dilation: (2, 1), groups: 5, bias: false),
    Conv2DCase(n: 2, c: 6, h: 11, w: 13, co: 4, k: (3, 5), stride: (2, 1), pad: (2, 0, 1, 3), dilation: (2, 1), groups: 2, bias: true),
    Conv2DCase(n: 2, c: 16, h: 7, w: 7, co: 32, k: (1, 1), stride: (1, 1), pad: (0, 0, 0, 0), dilation: (1, 1), groups: 1, bias: true),
    Conv2DCase(n: 1, c: 16, h: 8, w: 8, co: 32, k: (1, 1), stride: (2, 2), pad: (0, 0, 0, 0), dilation: (1, 1), groups: 1, bias: false),
    // Batch 1 on the direct 3×3 path: output-channel blocks split across the threads
    // (5 blocks of 8 over 2 threads), wide rows and narrow rows.
    Conv2DCase(n: 1, c: 5, h: 20, w: 20, co: 40, k: (3, 3), stride: (1, 1), pad: (1, 1, 1, 1), dilation: (1, 1), groups: 1, bias: true),
    Conv2DCase(n: 1, c: 9, h: 7, w: 7, co: 24, k: (3, 3), stride: (1, 1), pad: (1, 1, 1, 1), dilation: (1, 1), groups: 1, bias: false),
])
func conv2dMatchesDirect(_ t: Conv2DCase) throws {
    var r = RandomGenerator(seed: 9)
    let x = try Tensor.random([t.n, t.c, t.h, t.w], .normal(mean: 0, std: 1), using: &r)
    let w = try Tensor.random([t.co, t.c / t.groups, t.k.0, t.k.1], .normal(mean: 0, std: 0.3), using: &r)
    let b = t.bias ? try Tensor.random([t.co], .normal(mean: 0, std: 1), using: &r) : nil
    let got = try Tensor.conv2d(x, weight: w, bias: b, stride: t.stride, padding: t.pad, dilation: t.dilation,
                                groups: t.groups, threads: 2)
    let want = directConv(x, w, b, stride: t.stride, pad: t.pad, dilation: t.dilation, groups: t.groups)
    #expect(got.shape == want.shape)
    // K = C/g·kh·kw ≤ 144 products of |x| ≲ 4, |w| ≲ 1.2: f32 error well under 1e-4.
    let worst = zip(got.scalars, want.scalars).map { abs($0 - $1) }.max() ?? 0
    #expect(worst < 1e-4)
}

/// The backward pass is the forward's adjoint, checked against the Double oracle: for random
/// U (shaped like x), V (like W) and dY, ⟨dX, U⟩ = ⟨dY, conv(U, W)⟩, ⟨dW, V⟩ = ⟨dY, conv(x, V)⟩
/// and db = Σ dY over images and pixels. Relative error bound 1e-4 (f32 sums of ≤ 10⁴ terms).
@Test(arguments: [
    Conv2DCase(n: 2, c: 3, h: 9, w: 9, co: 8, k: (3, 3), stride: (1, 1), pad: (1, 1, 1, 1), dilation: (1, 1), groups: 1, bias: true),
    Conv2DCase(n: 3, c: 6, h: 11, w: 13, co: 4, k: (3, 5), stride: (2, 1), pad: (2, 0, 1, 3), dilation: (2, 1), groups: 2, bias: true),
    Conv2DCase(n: 1, c: 8, h: 7, w: 7, co: 8, k: (3, 3), stride: (2, 2), pad: (1, 1, 1, 1), dilation: (1, 1), groups: 8, bias: false),
    Conv2DCase(n: 3, c: 5, h: 10, w: 9, co: 5, k: (3, 5), stride: (1, 2), pad: (2, 1, 0, 3), dilation: (2, 1), groups: 5, bias: true),
    // Stride-1 3×3 layers whose input gradient runs as a direct convolution of dY (8 and 16
    // input channels; symmetric, uneven and no padding; wide and narrow rows).
    Conv2DCase(n: 3, c: 16, h: 9, w: 20, co: 8, k: (3, 3), stride: (1, 1), pad: (1, 1, 1, 1), dilation: (1, 1), groups: 1, bias: true),
    Conv2DCase(n: 2, c: 8, h: 7, w: 7, co: 24, k: (3, 3), stride: (1, 1), pad: (0, 2, 1, 0), dilation: (1, 1), groups: 1, bias: false),
])
func conv2dGradientsAreTheAdjoint(_ t: Conv2DCase) throws {
    var r = RandomGenerator(seed: 13)
    let x = try Tensor.random([t.n, t.c, t.h, t.w], .normal(mean: 0, std: 1), using: &r)
    let w = try Tensor.random([t.co, t.c / t.groups, t.k.0, t.k.1], .normal(mean: 0, std: 0.3), using: &r)
    let u = try Tensor.random(x.shape, .normal(mean: 0, std: 1), using: &r)
    let v = try Tensor.random(w.shape, .normal(mean: 0, std: 1), using: &r)
    let y = directConv(x, w, nil, stride: t.stride, pad: t.pad, dilation: t.dilation, groups: t.groups)
    let dy = try Tensor.random(y.shape, .normal(mean: 0, std: 1), using: &r)
    let g = Tensor.conv2dGradients(x, weight: w, outputGradient: dy, hasBias: t.bias, stride: t.stride, padding: t.pad,
                                   dilation: t.dilation, groups: t.groups, needInput: true)
    func dot(_ a: Tensor, _ b: Tensor) -> Double { zip(a.scalars, b.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }
    func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= 1e-4 * max(1, abs(b)) }
    let wantX = dot(dy, directConv(u, w, nil, stride: t.stride, pad: t.pad, dilation: t.dilation, groups: t.groups))
    let wantW = dot(dy, directConv(x, v, nil, stride: t.stride, pad: t.pad, dilation: t.dilation, groups: t.groups))
    #expect(close(dot(try #require(g.input), u), wantX), "⟨dX, U⟩ \(dot(g.input!, u)) vs \(wantX)")
    #expect(close(dot(g.weight, v), wantW), "⟨dW, V⟩ \(dot(g.weight, v)) vs \(wantW)")
    if t.bias {
        let pixels = y.shape[2] * y.shape[3]
        for c in 0..<t.co {
            var s = 0.0
            for i in 0..<t.n { for p in 0..<pixels { s += Double(dy.scalars[(i * t.co + c) * pixels + p]) } }
            #expect(close(Double(g.bias!.scalars[c]), s))
        }
    } else { #expect(g.bias == nil) }
    let noInput = Tensor.conv2dGradients(x, weight: w, outputGradient: dy, hasBias: false, stride: t.stride, padding: t.pad,
                                         dilation: t.dilation, groups: t.groups, needInput: false)
    #expect(noInput.input == nil && noInput.weight.scalars == g.weight.scalars)
}

@Test func conv2dRejectsBadShapes() throws {
    let x = try Tensor.zeros([1, 3, 8, 8])
    #expect(throws: TensorError.self) { try Tensor.conv2d(x, weight: try Tensor.zeros([4, 2, 3, 3])) }
    #expect(throws: TensorError.self) { try Tensor.conv2d(x, weight: try Tensor.zeros([4, 3, 9, 9])) }
    #expect(throws: TensorError.self) { try Tensor.conv2d(try Tensor.zeros([3, 8, 8]), weight: try Tensor.zeros([4, 3, 3, 3])) }
    #expect(throws: TensorError.self) {
        try Tensor.conv2d(x, weight: try Tensor.zeros([4, 3, 3, 3]), bias: try Tensor.zeros([3]))
    }
    #expect(throws: TensorError.self) { try Tensor.conv2d(x, weight: try Tensor.zeros([4, 3, 3, 3]), stride: (0, 1)) }
}
