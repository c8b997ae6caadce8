import Tensors

/// Pointwise operations and softmax.
enum PointwiseOp {
    /// dY masked where the input lies strictly inside (lo, hi): ReLU is (0, ∞).
    static func clipGradient(_ x: Tensor, _ dy: Tensor, lo: Float, hi: Float) -> Tensor {
        Tensor(checkedShape: x.shape) { o in
            x.withUnsafeScalars { xp in
                dy.withUnsafeScalars { d in
                    for i in 0..<o.count { o[i] = xp[i] > lo && xp[i] < hi ? d[i] : 0 }
                }
            }
        }
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

    /// Calls `body(base, n, stride)` for each run of `n` values along `axis` (stride apart).
    static func lanes(_ shape: [Int], axis: Int, _ what: String, _ body: (Int, Int, Int) -> Void) throws {
        let a = axis < 0 ? axis + shape.count : axis
        guard a >= 0 && a < shape.count else { throw NetworkError("\(what): axis \(axis) out of range for \(shape)") }
        let outer = shape[..<a].reduce(1, *), n = shape[a], inner = shape[(a + 1)...].reduce(1, *)
        for o in 0..<outer { for i in 0..<inner { body(o * n * inner + i, n, inner) } }
    }

    /// y = x − log Σ exp(x) along the axis (the maximum taken out first).
    static func logSoftmax(_ x: Tensor, axis: Int) throws -> Tensor {
        var out = x.scalars
        try lanes(x.shape, axis: axis, "LogSoftmax") { base, n, stride in
            var m = -Float.infinity
            for k in 0..<n { m = max(m, out[base + k * stride]) }
            var s: Float = 0
            for k in 0..<n { s += expf(out[base + k * stride] - m) }
            let l = m + logf(s)
            for k in 0..<n { out[base + k * stride] -= l }
        }
        return Tensor(checkedShape: x.shape, scalars: out)
    }

    /// dX = dY − p·Σ dY, p = exp(y).
    static func logSoftmaxBackward(_ y: Tensor, _ dy: Tensor, axis: Int) throws -> Tensor {
        var out = [Float](repeating: 0, count: y.count)
        try lanes(y.shape, axis: axis, "LogSoftmax") { base, n, stride in
            var s: Float = 0
            for k in 0..<n { s += dy.scalars[base + k * stride] }
            for k in 0..<n { let j = base + k * stride; out[j] = dy.scalars[j] - expf(y.scalars[j]) * s }
        }
        return Tensor(checkedShape: y.shape, scalars: out)
    }

    /// ẏ = ẋ − Σ p⊙ẋ.
    static func logSoftmaxTangent(_ y: Tensor, _ xt: Tensor, axis: Int) throws -> Tensor {
        var out = [Float](repeating: 0, count: y.count)
        try lanes(y.shape, axis: axis, "LogSoftmax") { base, n, stride in
            var s: Float = 0
            for k in 0..<n { let j = base + k * stride; s += expf(y.scalars[j]) * xt.scalars[j] }
            for k in 0..<n { let j = base + k * stride; out[j] = xt.scalars[j] - s }
        }
        return Tensor(checkedShape: y.shape, scalars: out)
    }

    /// The backward pass's movement with the input: −(Σ dY)·ṗ, ṗ = p ⊙ (ẋ − Σ p⊙ẋ).
    static func logSoftmaxSecond(_ y: Tensor, _ dy: Tensor, inputTangent xt: Tensor, axis: Int) throws -> Tensor {
        var out = [Float](repeating: 0, count: y.count)
        try lanes(y.shape, axis: axis, "LogSoftmax") { base, n, stride in
            var s: Float = 0, px: Float = 0
            for k in 0..<n { let j = base + k * stride; s += dy.scalars[j]; px += expf(y.scalars[j]) * xt.scalars[j] }
            for k in 0..<n { let j = base + k * stride; out[j] = -s * expf(y.scalars[j]) * (xt.scalars[j] - px) }
        }
        return Tensor(checkedShape: y.shape, scalars: out)
    }

    /// The backward pass's movement with the input (second-order term): with ẏ the output's
    /// tangent, ∂[y ⊙ (dY − s)] = ẏ ⊙ (dY − s) − y ⊙ Σ_axis dY ⊙ ẏ, s = Σ_axis dY ⊙ y.
    static func softmaxSecond(_ y: Tensor, _ dy: Tensor, outputTangent yt: Tensor, axis: Int) throws -> Tensor {
        var out = [Float](repeating: 0, count: y.count)
        try lanes(y.shape, axis: axis, "Softmax") { base, n, stride in
            var s: Float = 0, st: Float = 0
            for k in 0..<n { let j = base + k * stride; s += dy.scalars[j] * y.scalars[j]; st += dy.scalars[j] * yt.scalars[j] }
            for k in 0..<n { let j = base + k * stride; out[j] = yt.scalars[j] * (dy.scalars[j] - s) - y.scalars[j] * st }
        }
        return Tensor(checkedShape: y.shape, scalars: out)
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Two-input elementwise operations beyond Add and Mul, with numpy broadcasting.
public enum Binary: String, Codable, Equatable, Sendable {
    case sub, div
    /// PRelu: x where x ≥ 0, slope·x below (the slope broadcast to x).
    case prelu
    /// Integer division truncating toward zero (ONNX Div on integer tensors: shape arithmetic).
    case integerDiv
    /// Integer remainder with the divisor's sign (ONNX Mod with fmod = 0: shape arithmetic).
    case mod
    /// 1 where equal, 0 elsewhere (shape arithmetic; no gradient).
    case equal
    case max, min

    public var onnxName: String {
        switch self {
        case .sub: "Sub"; case .div, .integerDiv: "Div"; case .mod: "Mod"; case .equal: "Equal"; case .prelu: "PRelu"; case .max: "Max"; case .min: "Min"
        }
    }

    func apply(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        switch self {
        case .sub: return try a - b
        case .div: return try a / b
        case .prelu: return try Tensor.zip(a, b, operation: "PRelu") { $0 >= 0 ? $0 : $0 * $1 }
        case .integerDiv:
            return try Tensor.zip(a, b, operation: "Div") { x, y in
                y == 0 ? 0 : (x / y).rounded(.towardZero)
            }
        case .mod:
            return try Tensor.zip(a, b, operation: "Mod") { x, y in
                guard y != 0 else { return 0 }
                let r = x.truncatingRemainder(dividingBy: y)
                return r != 0 && (r < 0) != (y < 0) ? r + y : r
            }
        case .equal: return try Tensor.zip(a, b, operation: "Equal") { $0 == $1 ? 1 : 0 }
        case .max: return try Tensor.maximum(a, b)
        case .min: return try Tensor.minimum(a, b)
        }
    }

    /// ∂y/∂a and ∂y/∂b at the output's shape.
    func partials(_ a: Tensor, _ b: Tensor) throws -> (Tensor, Tensor) {
        switch self {
        case .sub:
            let shape = try Tensor.broadcastShape(a.shape, b.shape)
            return (try Tensor(repeating: 1, shape: shape), try Tensor(repeating: -1, shape: shape))
        case .div:
            return (try Tensor.zip(a, b) { _, y in 1 / y }, try Tensor.zip(a, b) { x, y in -x / (y * y) })
        case .prelu:
            return (try Tensor.zip(a, b) { x, s in x >= 0 ? 1 : s }, try Tensor.zip(a, b) { x, _ in x >= 0 ? 0 : x })
        case .max:
            return (try Tensor.zip(a, b) { x, y in x >= y ? 1 : 0 }, try Tensor.zip(a, b) { x, y in x >= y ? 0 : 1 })
        case .min:
            return (try Tensor.zip(a, b) { x, y in x <= y ? 1 : 0 }, try Tensor.zip(a, b) { x, y in x <= y ? 0 : 1 })
        case .integerDiv, .mod, .equal:
            throw NetworkError("\(onnxName) on integer values (shape arithmetic) has no gradient")
        }
    }

    func backward(_ a: Tensor, _ b: Tensor, _ dy: Tensor) throws -> [Tensor?] {
        let (pa, pb) = try partials(a, b)
        return [try (dy * pa).summed(toShape: a.shape), try (dy * pb).summed(toShape: b.shape)]
    }

    func tangent(_ a: Tensor, _ b: Tensor, _ da: Tensor?, _ db: Tensor?) throws -> Tensor {
        let (pa, pb) = try partials(a, b)
        var out = try Tensor.zeros(pa.shape)
        if let da { out = try out + da * pa }
        if let db { out = try out + db * pb }
        return out
    }

    /// The backward pass's movement with the inputs (second-order terms): for a/b,
    /// ∂(dy/b) = −dy·ḃ/b² and ∂(−dy·a/b²) = −dy·ȧ/b² + 2·dy·a·ḃ/b³; for PRelu, where x < 0,
    /// ∂(dy·s) = dy·ṡ and ∂(dy·x) = dy·ẋ. Sub, Max and Min are linear almost everywhere.
    func backwardTangent(_ a: Tensor, _ b: Tensor, _ dy: Tensor, _ da: Tensor?, _ db: Tensor?) throws -> (Tensor?, Tensor?) {
        switch self {
        case .sub, .max, .min, .integerDiv, .mod, .equal: return (nil, nil)
        case .div:
            let inv2 = try Tensor.zip(a, b) { _, y in 1 / (y * y) }
            var ga: Tensor? = nil, gb: Tensor? = nil
            if let db { ga = try (dy * db * inv2).map { -$0 }.summed(toShape: a.shape) }
            var t = try Tensor.zeros(dy.shape)
            if let da { t = try t - dy * da * inv2 }
            if let db { t = try t + (dy * db * a * inv2 / b).map { 2 * $0 } }
            if da != nil || db != nil { gb = try t.summed(toShape: b.shape) }
            return (ga, gb)
        case .prelu:
            let negative = try Tensor.zip(a, b) { x, _ in x >= 0 ? 0 : 1 }
            return (try db.map { try (dy * $0 * negative).summed(toShape: a.shape) },
                    try da.map { try (dy * $0 * negative).summed(toShape: b.shape) })
        }
    }
}
