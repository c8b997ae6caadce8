import Foundation
import Tensors

/// A function applied to every element on its own (the ONNX activations and unary maths), with
/// its first and second derivatives: backward multiplies by f′, tangents by f′, and the
/// Hessian path adds f″·dy·ẋ.
public enum Pointwise: Codable, Equatable, Sendable {
    case sigmoid, tanh, erf, sqrt, exp, log, neg, abs, reciprocal, softplus
    /// max(0, min(1, α·x + β)).
    case hardSigmoid(alpha: Float, beta: Float)
    /// x · max(0, min(1, x/6 + 1/2)).
    case hardSwish
    /// x for x ≥ 0, α·x below.
    case leakyRelu(alpha: Float)
    /// x for x > 0, α·(eˣ − 1) below.
    case elu(alpha: Float)
    /// xᵖ for a constant exponent p.
    case power(Float)
    /// x·Φ(x) (exact) or its tanh approximation.
    case gelu(approximate: Bool)
    /// γ·x for x > 0, γ·α·(eˣ − 1) below (self-normalising networks).
    case selu(alpha: Float, gamma: Float)
    /// −1, 0 or 1 (no gradient).
    case sign
    /// x − bias above λ, x + bias below −λ, 0 between.
    case shrink(lambda: Float, bias: Float)

    /// The ONNX operator name.
    public var onnxName: String {
        switch self {
        case .sigmoid: "Sigmoid"; case .tanh: "Tanh"; case .erf: "Erf"; case .sqrt: "Sqrt"; case .exp: "Exp"
        case .log: "Log"; case .neg: "Neg"; case .abs: "Abs"; case .reciprocal: "Reciprocal"; case .softplus: "Softplus"
        case .hardSigmoid: "HardSigmoid"; case .hardSwish: "HardSwish"; case .leakyRelu: "LeakyRelu"; case .elu: "Elu"
        case .power: "Pow"; case .gelu: "Gelu"; case .selu: "Selu"; case .sign: "Sign"; case .shrink: "Shrink"
        }
    }

    /// Piecewise linear functions have f″ = 0 almost everywhere.
    public var isPiecewiseLinear: Bool {
        switch self {
        case .neg, .abs, .leakyRelu, .hardSigmoid, .sign, .shrink: true
        case .power(let p): p == 1
        default: false
        }
    }

    static let sqrt2OverPi: Float = 0.7978845608
    static let invSqrt2: Float = 0.70710678118
    static let invSqrt2Pi: Float = 0.3989422804

    /// f(x), as a graph computes it (the integer engine's lookup tables are built from it).
    public func value(_ x: Float) -> Float { evaluate(x).0 }

    /// f(x), f′(x) and f″(x).
    @inline(__always)
    func evaluate(_ x: Float) -> (Float, Float, Float) {
        switch self {
        case .sigmoid:
            let s = 1 / (1 + Foundation.exp(-x))
            return (s, s * (1 - s), s * (1 - s) * (1 - 2 * s))
        case .tanh:
            let t = Foundation.tanh(x)
            return (t, 1 - t * t, -2 * t * (1 - t * t))
        case .erf:
            let d = 2 / Float.pi.squareRoot() * Foundation.exp(-x * x)
            return (Foundation.erf(x), d, -2 * x * d)
        case .sqrt:
            let r = x.squareRoot()
            return (r, 0.5 / r, -0.25 / (r * x))
        case .exp:
            let e = Foundation.exp(x)
            return (e, e, e)
        case .log:
            return (Foundation.log(x), 1 / x, -1 / (x * x))
        case .neg:
            return (-x, -1, 0)
        case .abs:
            return (Swift.abs(x), x >= 0 ? 1 : -1, 0)
        case .reciprocal:
            return (1 / x, -1 / (x * x), 2 / (x * x * x))
        case .softplus:
            let s = 1 / (1 + Foundation.exp(-x))
            return (x > 20 ? x : Foundation.log1p(Foundation.exp(x)), s, s * (1 - s))
        case .hardSigmoid(let a, let b):
            let v = a * x + b
            return (Swift.max(0, Swift.min(1, v)), v > 0 && v < 1 ? a : 0, 0)
        case .hardSwish:
            if x <= -3 { return (0, 0, 0) }
            if x >= 3 { return (x, 1, 0) }
            return (x * (x + 3) / 6, (2 * x + 3) / 6, 1.0 / 3)
        case .leakyRelu(let a):
            return x >= 0 ? (x, 1, 0) : (a * x, a, 0)
        case .elu(let a):
            if x > 0 { return (x, 1, 0) }
            let e = a * Foundation.exp(x)
            return (e - a, e, e)
        case .power(let p):
            if p == 1 { return (x, 1, 0) }
            if p == 2 { return (x * x, 2 * x, 2) }
            let y = Foundation.pow(x, p)
            return (y, p * Foundation.pow(x, p - 1), p * (p - 1) * Foundation.pow(x, p - 2))
        case .gelu(let approximate):
            if approximate {
                let u = Self.sqrt2OverPi * (x + 0.044715 * x * x * x)
                let du = Self.sqrt2OverPi * (1 + 3 * 0.044715 * x * x)
                let d2u = Self.sqrt2OverPi * 6 * 0.044715 * x
                let t = Foundation.tanh(u), sech2 = 1 - t * t
                let y = 0.5 * x * (1 + t)
                let dy = 0.5 * (1 + t) + 0.5 * x * sech2 * du
                let d2y = sech2 * du + 0.5 * x * (-2 * t * sech2 * du * du + sech2 * d2u)
                return (y, dy, d2y)
            }
            let phi = Self.invSqrt2Pi * Foundation.exp(-x * x / 2)
            let cdf = 0.5 * (1 + Foundation.erf(x * Self.invSqrt2))
            return (x * cdf, cdf + x * phi, phi * (2 - x * x))
        case .selu(let a, let g):
            if x > 0 { return (g * x, g, 0) }
            let e = g * a * Foundation.exp(x)
            return (e - g * a, e, e)
        case .sign:
            return (x > 0 ? 1 : x < 0 ? -1 : 0, 0, 0)
        case .shrink(let l, let b):
            if x < -l { return (x + b, 1, 0) }
            if x > l { return (x - b, 1, 0) }
            return (0, 0, 0)
        }
    }

    func apply(_ x: Tensor) -> Tensor { x.map { evaluate($0).0 } }

    /// dY ⊙ f′(x): the backward pass, and the tangent pass with ẋ for dY.
    func derivative(_ x: Tensor, times dy: Tensor) -> Tensor {
        Tensor(checkedShape: x.shape) { out in
            x.withUnsafeScalars { xp in
                dy.withUnsafeScalars { d in
                    for i in 0..<out.count { out[i] = d[i] * evaluate(xp[i]).1 }
                }
            }
        }
    }

    /// dY ⊙ f″(x) ⊙ ẋ: how the backward pass moves with the input.
    func secondDerivative(_ x: Tensor, _ dy: Tensor, _ dx: Tensor) -> Tensor {
        var out = [Float](repeating: 0, count: x.count)
        for i in 0..<out.count { out[i] = dy.scalars[i] * dx.scalars[i] * evaluate(x.scalars[i]).2 }
        return Tensor(checkedShape: x.shape, scalars: out)
    }
}
