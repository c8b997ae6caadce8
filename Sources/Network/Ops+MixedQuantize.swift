import Foundation
import Tensors

/// EdMIPS' differentiable choice among quantizers (Cai and Vasconcelos, 2020): the node's output
/// is Σ_i π_i·Q_i(x) with π = softmax(α) over candidate widths, α a parameter of the graph
/// (one logit per candidate). Weights: the mid-rise Gaussian quantizer, Δ_b = g_b·std(W) over the
/// whole tensor, Q_b(W) = Δ_b·(clamp(⌊W/Δ_b⌋, −2^(b−1), 2^(b−1) − 1) + ½). Activations: HWGQ at
/// the input's scale σ = √(2·E[x²]) (the half-wave Gaussian's, as the policy's hwgq scheme
/// calibrates it), Q_b(x) = clamp(round(x/s_b), 0, 2^b − 1)·s_b with s_b = h_b·σ (round half to
/// even); in training σ is the batch's and a running σ (momentum 0.1, a buffer, as batch norm's
/// statistics) is what evaluation uses. Backward: x straight through — the weights as they are, the activations
/// where 0 < x ≤ s_b·(2^b − 1) for each candidate, weighted by π_b (HWGQ's clipped ReLU);
/// α_k gets π_k·(g_k − Σ_i π_i·g_i) with g_i = ⟨dL/dy, Q_i(x)⟩.
public struct MixedQuantization: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case gaussianWeights = "gaussian_weights"
        case hwgqActivations = "hwgq_activations"
    }
    public var kind: Kind
    /// The candidate widths, one per logit of α (1…4 bits).
    public var bits: [Int]

    public init(kind: Kind, bits: [Int]) {
        self.kind = kind; self.bits = bits
    }

    /// The running σ's momentum in training.
    public static let momentum: Float = 0.1

    /// σ = √(2·E[x²]) of a batch.
    public static func halfWaveScale(_ x: Tensor) -> Float {
        Float((2 * x.scalars.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(x.count, 1))).squareRoot())
    }

    /// EdMIPS' Gaussian weight steps g_b and HWGQ's activation steps h_b, for unit variance.
    public static let gaussianSteps: [Int: Float] = [1: 1.596, 2: 0.996, 3: 0.586, 4: 0.336]
    public static let hwgqSteps: [Int: Float] = [1: 0.799, 2: 0.538, 3: 0.3217, 4: 0.185]

    public func validate() throws {
        guard !bits.isEmpty, Set(bits).count == bits.count, bits.allSatisfy({ (1...4).contains($0) }) else {
            throw NetworkError("mixed quantizer: candidate widths must be distinct and in 1…4, found \(bits)")
        }
    }

    /// π = softmax(α), computed stably.
    public static func probabilities(_ alpha: [Float]) -> [Float] {
        let top = alpha.max() ?? 0
        let e = alpha.map { exp($0 - top) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    /// Q_b(x) for each candidate b, in order.
    func candidates(_ x: Tensor, scale: Float) -> [Tensor] {
        switch kind {
        case .gaussianWeights:
            let v = x.scalars
            let mean = v.reduce(0, +) / Float(max(v.count, 1))
            let std = (v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(max(v.count, 1))).squareRoot()
            return bits.map { b in
                let d = Self.gaussianSteps[b]! * std
                guard d > 0 else { return x.map { _ in 0 } }
                let lo = -Float(1 << (b - 1)), hi = Float((1 << (b - 1)) - 1)
                return x.map { (min(max(($0 / d).rounded(.down), lo), hi) + 0.5) * d }
            }
        case .hwgqActivations:
            return bits.map { b in
                let s = Self.hwgqSteps[b]! * scale, top = Float((1 << b) - 1)
                return x.map { min(max(($0 / s).rounded(.toNearestOrEven), 0), top) * s }
            }
        }
    }

    func forward(_ x: Tensor, alpha: Tensor, scale: Float = 1) throws -> Tensor {
        guard alpha.count == bits.count else {
            throw NetworkError("mixed quantizer: expected \(bits.count) logits (one per candidate width \(bits)), found \(alpha.count)")
        }
        let pi = Self.probabilities(alpha.scalars)
        var out = [Float](repeating: 0, count: x.count)
        for (p, q) in zip(pi, candidates(x, scale: scale)) {
            q.withUnsafeScalars { qs in for i in 0..<out.count { out[i] += p * qs[i] } }
        }
        return Tensor(checkedShape: x.shape, scalars: out)
    }

    func backward(_ x: Tensor, alpha: Tensor, scale: Float = 1, _ dy: Tensor) -> (dx: Tensor, dalpha: Tensor) {
        let pi = Self.probabilities(alpha.scalars)
        let g = candidates(x, scale: scale).map { q in zip(q.scalars, dy.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }
        let mean = zip(pi, g).reduce(0.0) { $0 + Double($1.0) * $1.1 }
        let dalpha = Tensor(checkedShape: alpha.shape, scalars: zip(pi, g).map { Float(Double($0) * ($1 - mean)) })
        switch kind {
        case .gaussianWeights:
            return (dy, dalpha)
        case .hwgqActivations:
            let tops = bits.map { Self.hwgqSteps[$0]! * scale * Float((1 << $0) - 1) }
            var dx = [Float](repeating: 0, count: x.count)
            x.withUnsafeScalars { xs in
                dy.withUnsafeScalars { d in
                    for i in 0..<dx.count where xs[i] > 0 {
                        var w: Float = 0
                        for (p, top) in zip(pi, tops) where xs[i] <= top { w += p }
                        dx[i] = w * d[i]
                    }
                }
            }
            return (Tensor(checkedShape: x.shape, scalars: dx), dalpha)
        }
    }
}
