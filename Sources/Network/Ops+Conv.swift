import Kernels
import Tensors

/// Convolution: forward through im2col + GEMM (Tensor.conv2d), backward per image on separate
/// workers (dW accumulated per worker, then summed), tangent by linearity in x, W and b.
enum ConvOp {
    static func geometry(_ x: [Int], _ w: [Int], _ a: ConvAttributes) -> ConvGeometry {
        ConvGeometry(channels: w[1], height: x[2], width: x[3], kernelHeight: w[2], kernelWidth: w[3],
                     stride: (a.strides[0], a.strides[1]), padding: (a.pads[0], a.pads[1], a.pads[2], a.pads[3]),
                     dilation: (a.dilations[0], a.dilations[1]))
    }

    static func forward(_ x: Tensor, _ w: Tensor, _ b: Tensor?, _ a: ConvAttributes) throws -> Tensor {
        try Tensor.conv2d(x, weight: w, bias: b, stride: (a.strides[0], a.strides[1]),
                          padding: (a.pads[0], a.pads[1], a.pads[2], a.pads[3]),
                          dilation: (a.dilations[0], a.dilations[1]), groups: a.groups)
    }

    /// Gradients of x, W and b given dY.
    static func backward(_ x: Tensor, _ w: Tensor, hasBias: Bool, _ a: ConvAttributes, _ dy: Tensor,
                         needInput: Bool) -> (dx: Tensor?, dw: Tensor, db: Tensor?) {
        let g = geometry(x.shape, w.shape, a)
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let cout = w.shape[0], groups = a.groups, coutG = cout / groups, cg = c / groups
        let pixels = g.outputPixels, k = g.patchSize
        let workers = max(1, min(Parallel.defaultThreads, n))
        var dx = needInput ? [Float](repeating: 0, count: x.count) : []
        var partialW = [[Float]](repeating: [Float](repeating: 0, count: w.count), count: workers)
        let cols = (0..<workers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: k * pixels) }
        let dcols = (0..<workers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: k * pixels) }
        defer { cols.forEach { $0.deallocate() }; dcols.forEach { $0.deallocate() } }
        x.withUnsafeScalars { xp in
            w.withUnsafeScalars { wp in
                dy.withUnsafeScalars { dyp in
                    dx.withUnsafeMutableBufferPointer { dxp in
                        partialW.withUnsafeMutableBufferPointer { pw in
                            let pwBase = pw.baseAddress!
                            Parallel.forEach(n, threads: workers) { img, worker in
                                pwBase[worker].withUnsafeMutableBufferPointer { dwp in
                                    for grp in 0..<groups {
                                        let src = xp.baseAddress! + (img * c + grp * cg) * h * wd
                                        let dyi = dyp.baseAddress! + (img * cout + grp * coutG) * pixels
                                        let wg = wp.baseAddress! + grp * coutG * k
                                        Im2col.im2col(src, geometry: g, padding: 0, into: cols[worker])
                                        // dW_g += dY_g · colᵀ
                                        SGEMM.multiply(m: coutG, n: k, k: pixels, a: dyi, lda: pixels,
                                                       b: cols[worker], ldb: pixels, transB: true, beta: 1,
                                                       c: dwp.baseAddress! + grp * coutG * k, ldc: k, threads: 1)
                                        if needInput {
                                            // dcol = W_gᵀ · dY_g, then scatter back onto the image.
                                            SGEMM.multiply(m: k, n: pixels, k: coutG, a: wg, lda: k, transA: true,
                                                           b: dyi, ldb: pixels, c: dcols[worker], ldc: pixels, threads: 1)
                                            Im2col.col2im(dcols[worker], geometry: g,
                                                          addingInto: dxp.baseAddress! + (img * c + grp * cg) * h * wd)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        var dw = partialW[0]
        for p in partialW.dropFirst() { for i in 0..<dw.count { dw[i] += p[i] } }
        var db: Tensor? = nil
        if hasBias {
            var s = [Float](repeating: 0, count: cout)
            dy.withUnsafeScalars { d in
                for img in 0..<n {
                    for co in 0..<cout {
                        var acc: Float = 0
                        let base = (img * cout + co) * pixels
                        for p in 0..<pixels { acc += d[base + p] }
                        s[co] += acc
                    }
                }
            }
            db = Tensor(checkedShape: [cout], scalars: s)
        }
        return (needInput ? Tensor(checkedShape: x.shape, scalars: dx) : nil,
                Tensor(checkedShape: w.shape, scalars: dw), db)
    }

    /// Directional derivative: conv(ẋ, W) + conv(x, Ẇ) + ḃ.
    static func tangent(_ x: Tensor, _ w: Tensor, _ b: Tensor?, _ a: ConvAttributes,
                        dx: Tensor?, dw: Tensor?, db: Tensor?) throws -> Tensor {
        var out: Tensor? = nil
        if let dx { out = try forward(dx, w, nil, a) }
        if let dw {
            let t = try forward(x, dw, nil, a)
            out = try out.map { try $0 + t } ?? t
        }
        if let db {
            let shaped = try db.reshaped([1, db.count, 1, 1])
            let zero = try Tensor.zeros(try forward(x, w, nil, a).shape)
            out = try (out ?? zero) + shaped
        }
        return try out ?? Tensor.zeros(try forward(x, w, nil, a).shape)
    }
}
