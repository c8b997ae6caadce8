import Testing
import Kernels

struct ConvCase: CustomStringConvertible, Sendable {
    var c: Int, h: Int, w: Int, kh: Int, kw: Int, stride: (Int, Int), pad: (Int, Int, Int, Int), dilation: (Int, Int)
    var description: String { "c\(c) \(h)x\(w) k\(kh)x\(kw) s\(stride) p\(pad) d\(dilation)" }
}

let convCases: [ConvCase] = [
    ConvCase(c: 1, h: 1, w: 1, kh: 1, kw: 1, stride: (1, 1), pad: (0, 0, 0, 0), dilation: (1, 1)),
    ConvCase(c: 3, h: 7, w: 7, kh: 3, kw: 3, stride: (1, 1), pad: (1, 1, 1, 1), dilation: (1, 1)),
    ConvCase(c: 2, h: 17, w: 13, kh: 3, kw: 5, stride: (2, 3), pad: (1, 2, 0, 1), dilation: (1, 1)),
    ConvCase(c: 4, h: 28, w: 28, kh: 3, kw: 3, stride: (2, 2), pad: (1, 1, 1, 1), dilation: (2, 2)),
    ConvCase(c: 1, h: 5, w: 9, kh: 5, kw: 1, stride: (1, 4), pad: (3, 0, 3, 5), dilation: (1, 1)),
    ConvCase(c: 2, h: 3, w: 3, kh: 3, kw: 3, stride: (1, 1), pad: (4, 4, 4, 4), dilation: (3, 3)),
]

@Test(arguments: convCases)
func im2colMatchesReference(_ t: ConvCase) {
    let g = ConvGeometry(channels: t.c, height: t.h, width: t.w, kernelHeight: t.kh, kernelWidth: t.kw,
                         stride: t.stride, padding: (t.pad.0, t.pad.1, t.pad.2, t.pad.3), dilation: t.dilation)
    #expect(g.isValid)
    var r = TestRandom(seed: 5)
    let x = r.floats(t.c * t.h * t.w)
    var col = [Float](repeating: .nan, count: g.patchSize * g.outputPixels), ref = col
    Im2col.im2col(x, geometry: g, padding: 0, into: &col)
    Im2col.reference(x, geometry: g, padding: 0, into: &ref)
    #expect(col == ref)
    // Quantized codes pad with the zero point.
    let q = x.map { UInt8(($0 + 1) * 100) }
    var qcol = [UInt8](repeating: 0, count: col.count), qref = qcol
    Im2col.im2col(q, geometry: g, padding: 128, into: &qcol)
    Im2col.reference(q, geometry: g, padding: 128, into: &qref)
    #expect(qcol == qref)
}

@Test func convGeometryRejectsEmptyOutput() {
    let g = ConvGeometry(channels: 1, height: 2, width: 2, kernelHeight: 5, kernelWidth: 5)
    #expect(!g.isValid)
}

/// col2im is the adjoint of im2col: ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩ for any x and c.
@Test(arguments: convCases)
func col2imIsTheAdjointOfIm2col(_ t: ConvCase) {
    let g = ConvGeometry(channels: t.c, height: t.h, width: t.w, kernelHeight: t.kh, kernelWidth: t.kw,
                         stride: t.stride, padding: (t.pad.0, t.pad.1, t.pad.2, t.pad.3), dilation: t.dilation)
    var r = TestRandom(seed: 17)
    let x = r.floats(t.c * t.h * t.w), c = r.floats(g.patchSize * g.outputPixels)
    var col = [Float](repeating: 0, count: c.count)
    Im2col.im2col(x, geometry: g, padding: 0, into: &col)
    var back = [Float](repeating: 0, count: x.count)
    Im2col.col2im(c, geometry: g, addingInto: &back)
    let lhs = zip(col, c).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    let rhs = zip(x, back).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    #expect(abs(lhs - rhs) <= 1e-4 * max(1, abs(lhs)))
}
