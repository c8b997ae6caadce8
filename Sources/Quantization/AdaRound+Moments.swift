import Foundation
import Kernels
import Network
import Tensors

/// What AdaRound needs of one layer's inputs, per group of a grouped convolution: the second
/// moments E[x_q x_qᵀ] and E[x_f x_qᵀ] of its input patches (K = C_in/groups·k_h·k_w features;
/// x_f from the float model, x_q from the partly rounded one), the patches' means, and each
/// output channel's E[(W_c·x_f)²] (the float output's second moment, which weighs its error).
struct InputMoments {
    let k: Int, groups: Int, rowsPerGroup: Int
    var qq: [[Float]], fq: [[Float]]
    var meanQ: [[Double]], meanF: [[Double]]
    /// Per output channel, Σ (W_c·x_f)² over patches; after `finish`, E[·] (centred: the variance).
    var outputMoment: [Double]
    var count = 0

    init(k: Int, groups: Int, channels: Int) {
        self.k = k; self.groups = groups; rowsPerGroup = channels / groups
        qq = Array(repeating: [Float](repeating: 0, count: k * k), count: groups); fq = qq
        meanQ = Array(repeating: [Double](repeating: 0, count: k), count: groups); meanF = meanQ
        outputMoment = [Double](repeating: 0, count: channels)
    }

    /// Adds the patches of one batch: `f` the layer's input in the float model, `q` in the
    /// partly rounded one; `weight` is the layer's float weight.
    mutating func add(f: Tensor, q: Tensor, weight: Tensor, node: Node, layer: Layer) throws {
        guard f.shape == q.shape else { throw QuantizationError("adaround: layer '\(layer.name)' reads \(f.shape) in the float model but \(q.shape) in the rounded one") }
        let n = f.shape[0]
        switch node.op {
        case .conv(let a):
            guard f.rank == 4 else { throw QuantizationError("adaround: layer '\(layer.name)' reads a tensor of shape \(f.shape)") }
            let (c, h, w) = (f.shape[1], f.shape[2], f.shape[3]), cg = c / groups
            let g = ConvGeometry(channels: cg, height: h, width: w, kernelHeight: layer.weightShape[2], kernelWidth: layer.weightShape[3],
                                 stride: (a.strides[0], a.strides[1]), padding: (a.pads[0], a.pads[1], a.pads[2], a.pads[3]),
                                 dilation: (a.dilations[0], a.dilations[1]))
            guard g.isValid, g.patchSize == k, g.outputPixels > 0 else {
                throw QuantizationError("adaround: layer '\(layer.name)' has no output positions on input \(f.shape)")
            }
            let pixels = g.outputPixels, columns = n * pixels
            try MemoryBudget.check(bytes: 2 * k * columns * 4, for: "adaround: the input patches of layer '\(layer.name)'")
            let colF = UnsafeMutablePointer<Float>.allocate(capacity: k * columns), colQ = UnsafeMutablePointer<Float>.allocate(capacity: k * columns)
            let out = UnsafeMutablePointer<Float>.allocate(capacity: rowsPerGroup * columns)
            defer { colF.deallocate(); colQ.deallocate(); out.deallocate() }
            for group in 0..<groups {
                f.withUnsafeScalars { fp in
                    q.withUnsafeScalars { qp in
                        for i in 0..<n {
                            let offset = (i * c + group * cg) * h * w
                            Im2col.im2col(fp.baseAddress! + offset, geometry: g, padding: 0, into: colF + i * pixels, rowStride: columns)
                            Im2col.im2col(qp.baseAddress! + offset, geometry: g, padding: 0, into: colQ + i * pixels, rowStride: columns)
                        }
                    }
                }
                qq[group].withUnsafeMutableBufferPointer { cp in
                    SGEMM.multiply(m: k, n: k, k: columns, a: colQ, lda: columns, b: colQ, ldb: columns, transB: true, beta: 1, c: cp.baseAddress!, ldc: k)
                }
                fq[group].withUnsafeMutableBufferPointer { cp in
                    SGEMM.multiply(m: k, n: k, k: columns, a: colF, lda: columns, b: colQ, ldb: columns, transB: true, beta: 1, c: cp.baseAddress!, ldc: k)
                }
                for r in 0..<k {
                    var sf: Float = 0, sq: Float = 0
                    let rf = colF + r * columns, rq = colQ + r * columns
                    for j in 0..<columns { sf += rf[j]; sq += rq[j] }
                    meanF[group][r] += Double(sf); meanQ[group][r] += Double(sq)
                }
                // The float output of this group's channels: W_g·colF.
                weight.withUnsafeScalars { wp in
                    SGEMM.multiply(m: rowsPerGroup, n: columns, k: k, a: wp.baseAddress! + group * rowsPerGroup * k, lda: k,
                                   b: colF, ldb: columns, c: out, ldc: columns)
                }
                for r in 0..<rowsPerGroup {
                    var s: Float = 0
                    let row = out + r * columns
                    for j in 0..<columns { s += row[j] * row[j] }
                    outputMoment[group * rowsPerGroup + r] += Double(s)
                }
            }
            count += columns
        case .gemm(let a) where !a.transA && a.transB:
            guard f.count == n * k else { throw QuantizationError("adaround: layer '\(layer.name)' reads \(f.shape), expected \(k) features per image") }
            let rows = rowsPerGroup
            var out = [Float](repeating: 0, count: n * rows)
            f.withUnsafeScalars { fp in
                q.withUnsafeScalars { qp in
                    let fb = fp.baseAddress!, qb = qp.baseAddress!
                    qq[0].withUnsafeMutableBufferPointer { cp in
                        SGEMM.multiply(m: k, n: k, k: n, a: qb, lda: k, transA: true, b: qb, ldb: k, beta: 1, c: cp.baseAddress!, ldc: k)
                    }
                    fq[0].withUnsafeMutableBufferPointer { cp in
                        SGEMM.multiply(m: k, n: k, k: n, a: fb, lda: k, transA: true, b: qb, ldb: k, beta: 1, c: cp.baseAddress!, ldc: k)
                    }
                    for i in 0..<n {
                        for r in 0..<k { meanF[0][r] += Double(fb[i * k + r]); meanQ[0][r] += Double(qb[i * k + r]) }
                    }
                    weight.withUnsafeScalars { wp in
                        out.withUnsafeMutableBufferPointer { op in
                            SGEMM.multiply(m: n, n: rows, k: k, a: fb, lda: k, b: wp.baseAddress!, ldb: k, transB: true, c: op.baseAddress!, ldc: rows)
                        }
                    }
                }
            }
            for i in 0..<n { for r in 0..<rows { outputMoment[r] += Double(out[i * rows + r] * out[i * rows + r]) } }
            count += n
        default:
            throw QuantizationError("adaround: layer '\(layer.name)' (\(node.op.onnxName)) is not a convolution or a Gemm with transposed weights")
        }
    }

    /// Divides by the number of patches; `centred` subtracts the means' outer products (and
    /// the output's squared mean), for bias correction.
    mutating func finish(centred: Bool, weight: Tensor) {
        let inv = 1 / Double(max(1, count))
        for g in 0..<groups {
            for r in 0..<k { meanF[g][r] *= inv; meanQ[g][r] *= inv }
            for r in 0..<k {
                for j in 0..<k {
                    let e = r * k + j
                    var qqv = Double(qq[g][e]) * inv, fqv = Double(fq[g][e]) * inv
                    if centred { qqv -= meanQ[g][r] * meanQ[g][j]; fqv -= meanF[g][r] * meanQ[g][j] }
                    qq[g][e] = Float(qqv); fq[g][e] = Float(fqv)
                }
            }
        }
        for c in outputMoment.indices {
            outputMoment[c] *= inv
            if centred {
                let g = c / rowsPerGroup
                var mean = 0.0
                for j in 0..<k { mean += Double(weight.scalars[c * k + j]) * meanF[g][j] }
                outputMoment[c] = max(0, outputMoment[c] - mean * mean)
            }
        }
    }
}
