import Kernels
import Tensors

/// Gemm and MatMul: Y = α·op(A)·op(B) + β·C, all products through SGEMM.
enum LinearOp {
    /// α·op(A)·op(B) for rank-2 A and B.
    static func product(_ a: Tensor, transA: Bool, _ b: Tensor, transB: Bool, alpha: Float = 1) throws -> Tensor {
        guard a.rank == 2, b.rank == 2 else {
            throw NetworkError("Gemm/MatMul: expected rank-2 operands, found \(a.shape) and \(b.shape)")
        }
        let (m, k) = transA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (k2, n) = transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard k == k2 else {
            throw NetworkError("Gemm/MatMul: inner dimensions differ: \(a.shape)\(transA ? "ᵀ" : "") · \(b.shape)\(transB ? "ᵀ" : "")")
        }
        var out = [Float](repeating: 0, count: m * n)
        a.withUnsafeScalars { ap in
            b.withUnsafeScalars { bp in
                out.withUnsafeMutableBufferPointer { cp in
                    guard let ab = ap.baseAddress, let bb = bp.baseAddress, let cb = cp.baseAddress else { return }
                    SGEMM.multiply(m: m, n: n, k: k, alpha: alpha, a: ab, lda: a.shape[1], transA: transA,
                                   b: bb, ldb: b.shape[1], transB: transB, c: cb, ldc: n)
                }
            }
        }
        return Tensor(checkedShape: [m, n], scalars: out)
    }

    static func gemm(_ a: Tensor, _ b: Tensor, _ c: Tensor?, _ at: GemmAttributes) throws -> Tensor {
        var y = try product(a, transA: at.transA, b, transB: at.transB, alpha: at.alpha)
        if let c, at.beta != 0 {
            y = try y + (at.beta == 1 ? c : c.map { $0 * at.beta })
        }
        return y
    }

    /// Gradients of A, B and C.
    static func backward(_ a: Tensor, _ b: Tensor, _ c: Tensor?, _ at: GemmAttributes, _ dy: Tensor) throws
        -> (Tensor, Tensor, Tensor?) {
        let da = at.transA
            ? try product(b, transA: at.transB, dy, transB: true, alpha: at.alpha)
            : try product(dy, transA: false, b, transB: !at.transB, alpha: at.alpha)
        let db = at.transB
            ? try product(dy, transA: true, a, transB: at.transA, alpha: at.alpha)
            : try product(a, transA: !at.transA, dy, transB: false, alpha: at.alpha)
        var dc: Tensor? = nil
        if let c {
            let reduced = try dy.summed(toShape: c.shape)
            dc = at.beta == 1 ? reduced : reduced.map { $0 * at.beta }
        }
        return (da, db, dc)
    }

    static func tangent(_ a: Tensor, _ b: Tensor, _ c: Tensor?, _ at: GemmAttributes,
                        da: Tensor?, db: Tensor?, dc: Tensor?) throws -> Tensor {
        var out = try Tensor.zeros([at.transA ? a.shape[1] : a.shape[0], at.transB ? b.shape[0] : b.shape[1]])
        if let da { out = try out + product(da, transA: at.transA, b, transB: at.transB, alpha: at.alpha) }
        if let db { out = try out + product(a, transA: at.transA, db, transB: at.transB, alpha: at.alpha) }
        if let dc { out = try out + (at.beta == 1 ? dc : dc.map { $0 * at.beta }) }
        return out
    }
}

extension Tensor {
    /// Sums a broadcast result back to `shape` (the adjoint of broadcasting).
    public func summed(toShape target: [Int]) throws -> Tensor {
        if shape == target { return self }
        var t = self
        // Leading axes that broadcasting added.
        while t.rank > target.count { t = try t.sum(axis: 0) }
        for axis in 0..<target.count where target[axis] == 1 && t.shape[axis] != 1 {
            t = try t.sum(axis: axis, keepDims: true)
        }
        guard t.shape == target else {
            throw NetworkError("cannot reduce a gradient of shape \(shape) to \(target)")
        }
        return t
    }
}
