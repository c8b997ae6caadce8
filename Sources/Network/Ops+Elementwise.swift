import Tensors

/// Pointwise operations and softmax.
enum PointwiseOp {
    /// dY masked where the input lies strictly inside (lo, hi): ReLU is (0, ∞).
    static func clipGradient(_ x: Tensor, _ dy: Tensor, lo: Float, hi: Float) -> Tensor {
        var out = [Float](repeating: 0, count: x.count)
        x.withUnsafeScalars { xp in
            dy.withUnsafeScalars { d in
                out.withUnsafeMutableBufferPointer { o in
                    for i in 0..<o.count { o[i] = xp[i] > lo && xp[i] < hi ? d[i] : 0 }
                }
            }
        }
        return Tensor(checkedShape: x.shape, scalars: out)
    }

    static func softmax(_ x: Tensor, axis: Int) throws -> Tensor {
        let a = axis < 0 ? axis + x.rank : axis
        guard a >= 0 && a < x.rank else { throw NetworkError("Softmax: axis \(axis) out of range for \(x.shape)") }
        let outer = x.shape[..<a].reduce(1, *), n = x.shape[a], inner = x.shape[(a + 1)...].reduce(1, *)
        var out = x.scalars
        for o in 0..<outer {
            for i in 0..<inner {
                var m = -Float.infinity
                for k in 0..<n { m = max(m, out[(o * n + k) * inner + i]) }
                var s: Float = 0
                for k in 0..<n { let e = expf(out[(o * n + k) * inner + i] - m); out[(o * n + k) * inner + i] = e; s += e }
                for k in 0..<n { out[(o * n + k) * inner + i] /= s }
            }
        }
        return Tensor(checkedShape: x.shape, scalars: out)
    }

    /// dX = y ⊙ (dY − Σ_axis dY ⊙ y); the same map gives the tangent from ẋ.
    static func softmaxBackward(_ y: Tensor, _ dy: Tensor, axis: Int) throws -> Tensor {
        let a = axis < 0 ? axis + y.rank : axis
        let outer = y.shape[..<a].reduce(1, *), n = y.shape[a], inner = y.shape[(a + 1)...].reduce(1, *)
        var out = [Float](repeating: 0, count: y.count)
        for o in 0..<outer {
            for i in 0..<inner {
                var dot: Float = 0
                for k in 0..<n { let j = (o * n + k) * inner + i; dot += dy.scalars[j] * y.scalars[j] }
                for k in 0..<n { let j = (o * n + k) * inner + i; out[j] = y.scalars[j] * (dy.scalars[j] - dot) }
            }
        }
        return Tensor(checkedShape: y.shape, scalars: out)
    }
}

#if canImport(Glibc)
import Glibc
#endif
