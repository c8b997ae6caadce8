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

    /// A of rank > 2 (tokens × features, as a Linear layer applied to a sequence) flattened to
    /// its rows: [..., k] → [rows, k].
    static func rows(_ a: Tensor, _ at: GemmAttributes) throws -> Tensor {
        guard a.rank > 2, !at.transA else { return a }
        return try a.reshaped([-1, a.shape[a.rank - 1]])
    }

    static func gemm(_ a: Tensor, _ b: Tensor, _ c: Tensor?, _ at: GemmAttributes) throws -> Tensor {
        if a.rank > 2, !at.transA {
            let y = try gemm(rows(a, at), b, c, at)
            return try y.reshaped(Array(a.shape.dropLast()) + [y.shape[1]])
        }
        var y = try product(a, transA: at.transA, b, transB: at.transB, alpha: at.alpha)
        if let c, at.beta != 0 {
            y = try y + (at.beta == 1 ? c : c.map { $0 * at.beta })
        }
        return y
    }

    /// Gradients of A, B and C.
    static func backward(_ a: Tensor, _ b: Tensor, _ c: Tensor?, _ at: GemmAttributes, _ dy: Tensor) throws
        -> (Tensor, Tensor, Tensor?) {
        if a.rank > 2, !at.transA {
            let (da, db, dc) = try backward(rows(a, at), b, c, at, dy.reshaped([-1, dy.shape[dy.rank - 1]]))
            return (try da.reshaped(a.shape), db, dc)
        }
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
        if a.rank > 2, !at.transA {
            let y = try tangent(rows(a, at), b, c, at, da: try da.map { try rows($0, at) }, db: db, dc: dc)
            return try y.reshaped(Array(a.shape.dropLast()) + [y.shape[1]])
        }
        var out = try Tensor.zeros([at.transA ? a.shape[1] : a.shape[0], at.transB ? b.shape[0] : b.shape[1]])
        if let da { out = try out + product(da, transA: at.transA, b, transB: at.transB, alpha: at.alpha) }
        if let db { out = try out + product(a, transA: at.transA, db, transB: at.transB, alpha: at.alpha) }
        if let dc { out = try out + (at.beta == 1 ? dc : dc.map { $0 * at.beta }) }
        return out
    }
}

/// ONNX MatMul (numpy's matmul for operands of rank ≥ 2): batch dimensions broadcast, one
/// SGEMM per batch entry.
enum MatMulOp {
    static func operands(_ a: Tensor, _ b: Tensor) throws -> (batch: [Int], a: Tensor, b: Tensor) {
        guard a.rank >= 2, b.rank >= 2 else { throw NetworkError("MatMul: operands of rank 1 are not supported, found \(a.shape) and \(b.shape)") }
        let batch = try Tensor.broadcastShape(Array(a.shape.dropLast(2)), Array(b.shape.dropLast(2)), operation: "MatMul")
        func expanded(_ t: Tensor) throws -> Tensor {
            let full = batch + t.shape.suffix(2)
            return t.shape == full ? t : try ShapeOp.expand(t.shape, to: full).gather(t)
        }
        return (batch, try expanded(a), try expanded(b))
    }

    static func multiply(_ a: Tensor, transA: Bool = false, _ b: Tensor, transB: Bool = false) throws -> Tensor {
        if a.rank == 2 && b.rank == 2 { return try LinearOp.product(a, transA: transA, b, transB: transB) }
        let (batch, x, y) = try operands(a, b)
        let count = batch.reduce(1, *)
        let (m, k) = transA ? (x.shape[x.rank - 1], x.shape[x.rank - 2]) : (x.shape[x.rank - 2], x.shape[x.rank - 1])
        let (k2, n) = transB ? (y.shape[y.rank - 1], y.shape[y.rank - 2]) : (y.shape[y.rank - 2], y.shape[y.rank - 1])
        guard k == k2 else { throw NetworkError("MatMul: inner dimensions differ: \(a.shape) · \(b.shape)") }
        let (sa, sb) = (x.shape[x.rank - 2] * x.shape[x.rank - 1], y.shape[y.rank - 2] * y.shape[y.rank - 1])
        var out = [Float](repeating: 0, count: count * m * n)
        x.withUnsafeScalars { ap in
            y.withUnsafeScalars { bp in
                out.withUnsafeMutableBufferPointer { cp in
                    guard let ab = ap.baseAddress, let bb = bp.baseAddress, let cb = cp.baseAddress else { return }
                    for i in 0..<count {
                        SGEMM.multiply(m: m, n: n, k: k, alpha: 1, a: ab + i * sa, lda: x.shape[x.rank - 1], transA: transA,
                                       b: bb + i * sb, ldb: y.shape[y.rank - 1], transB: transB, c: cb + i * m * n, ldc: n)
                    }
                }
            }
        }
        return Tensor(checkedShape: batch + [m, n], scalars: out)
    }

    static func backward(_ a: Tensor, _ b: Tensor, _ dy: Tensor) throws -> (Tensor, Tensor) {
        if a.rank == 2 && b.rank == 2 {
            let (da, db, _) = try LinearOp.backward(a, b, nil, GemmAttributes(), dy)
            return (da, db)
        }
        let (_, x, y) = try operands(a, b)
        return (try multiply(dy, y, transB: true).summed(toShape: a.shape), try multiply(x, transA: true, dy).summed(toShape: b.shape))
    }

    static func tangent(_ a: Tensor, _ b: Tensor, da: Tensor?, db: Tensor?) throws -> Tensor? {
        var out: Tensor? = nil
        if let da { out = try multiply(da, b) }
        if let db { let t = try multiply(a, db); out = try out.map { try $0 + t } ?? t }
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
