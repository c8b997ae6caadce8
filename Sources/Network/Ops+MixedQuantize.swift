import Foundation
import Runtime
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

    /// One candidate's quantizer: its step and code range (mid-rise for the Gaussian weights,
    /// mid-tread for HWGQ); a zero step quantizes everything to 0.
    struct Level { var step: Float, lo: Float, hi: Float }

    func levels(_ x: Tensor, scale: Float) -> [Level] {
        switch kind {
        case .gaussianWeights:
            // As the policy's Gaussian quantizer computes it (Float sums), so that one-hot α is it.
            let std = x.withUnsafeScalars { v -> Float in
                let mean = v.reduce(0, +) / Float(max(v.count, 1))
                return (v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(max(v.count, 1))).squareRoot()
            }
            return bits.map { b in Level(step: Self.gaussianSteps[b]! * std, lo: -Float(1 << (b - 1)), hi: Float((1 << (b - 1)) - 1)) }
        case .hwgqActivations:
            return bits.map { b in Level(step: Self.hwgqSteps[b]! * scale, lo: 0, hi: Float((1 << b) - 1)) }
        }
    }

    /// Q(x) at one level.
    @inline(__always)
    static func value(_ x: Float, _ l: Level, midRise: Bool) -> Float {
        guard l.step > 0 else { return 0 }
        return midRise ? (min(max((x / l.step).rounded(.down), l.lo), l.hi) + 0.5) * l.step
                       : min(max((x / l.step).rounded(.toNearestOrEven), l.lo), l.hi) * l.step
    }

    /// `value` on sixteen lanes, with the same operations lane by lane (so the same results; the
    /// clamps spelled as `min`/`max` spell them — `clamped` ran lane by lane in scalar code).
    @inline(__always)
    static func values(_ x: SIMD16<Float>, _ l: Level, midRise: Bool) -> SIMD16<Float> {
        guard l.step > 0 else { return SIMD16() }
        let lo = SIMD16<Float>(repeating: l.lo), hi = SIMD16<Float>(repeating: l.hi)
        // (Each rounding rule spelled as a constant: a rule chosen at run time went through the generic path.)
        var q = midRise ? (x / l.step).rounded(.down) : (x / l.step).rounded(.toNearestOrEven)
        q.replace(with: lo, where: lo .>= q)
        q.replace(with: hi, where: hi .< q)
        return midRise ? (q + 0.5) * l.step : q * l.step
    }

    func forward(_ x: Tensor, alpha: Tensor, scale: Float = 1) throws -> Tensor {
        guard alpha.count == bits.count else {
            throw NetworkError("mixed quantizer: expected \(bits.count) logits (one per candidate width \(bits)), found \(alpha.count)")
        }
        let pi = Self.probabilities(alpha.scalars), levels = self.levels(x, scale: scale), midRise = kind == .gaussianWeights
        // One pass, sixteen lanes at a time (the divisions dominate): Σ_k π_k·Q_k(x).
        return Tensor(checkedShape: x.shape) { out in
            x.withUnsafeScalars { xs in
                let (xp, op) = (UnsafeRawPointer(xs.baseAddress!), out.baseAddress!)
                Parallel.chunks(x.count) { r, _ in
                    var i = r.lowerBound
                    while i + 16 <= r.upperBound {
                        let v = xp.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
                        var s = SIMD16<Float>()
                        for k in 0..<pi.count { s += pi[k] * Self.values(v, levels[k], midRise: midRise) }
                        UnsafeMutableRawPointer(op + i).storeBytes(of: s, as: SIMD16<Float>.self)
                        i += 16
                    }
                    for i in i..<r.upperBound {
                        var s: Float = 0
                        for k in 0..<pi.count { s += pi[k] * Self.value(xs[i], levels[k], midRise: midRise) }
                        op[i] = s
                    }
                }
            }
        }
    }

    /// dx (straight through, HWGQ's clipped ReLU for activations) and dα in one pass over x, in
    /// chunks on all cores, sixteen lanes at a time; g_k = ⟨dy, Q_k(x)⟩ accumulated in Double
    /// lanes (each product exact in Double).
    func backward(_ x: Tensor, alpha: Tensor, scale: Float = 1, _ dy: Tensor) -> (dx: Tensor, dalpha: Tensor) {
        let pi = Self.probabilities(alpha.scalars), levels = self.levels(x, scale: scale), weights = kind == .gaussianWeights
        let n = x.count, k = pi.count
        var partial = [Double](repeating: 0, count: Parallel.defaultThreads * k)
        var dx = weights ? [] : [Float].uninitialized(n)
        let tops = levels.map { $0.step * $0.hi }
        var workers = 1
        x.withUnsafeScalars { xs in
            dy.withUnsafeScalars { d in
                partial.withUnsafeMutableBufferPointer { g in
                    dx.withUnsafeMutableBufferPointer { out in
                        let (xp, dp, gp, op) = (xs.baseAddress!, d.baseAddress!, g.baseAddress!, out.baseAddress)
                        workers = Parallel.chunks(n) { r, w in
                            let (lo, hi) = (r.lowerBound, r.upperBound)
                            var sums = [SIMD8<Double>](repeating: SIMD8(), count: 2 * k)
                            var i = lo
                            while i + 16 <= hi {
                                let v = UnsafeRawPointer(xp + i).loadUnaligned(as: SIMD16<Float>.self)
                                let grad = UnsafeRawPointer(dp + i).loadUnaligned(as: SIMD16<Float>.self)
                                let (gLow, gHigh) = (SIMD8<Double>(grad.lowHalf), SIMD8<Double>(grad.highHalf))
                                var pass = SIMD16<Float>()
                                for j in 0..<k {
                                    let q = Self.values(v, levels[j], midRise: weights)
                                    sums[2 * j] += gLow * SIMD8<Double>(q.lowHalf)
                                    sums[2 * j + 1] += gHigh * SIMD8<Double>(q.highHalf)
                                    if !weights { pass.replace(with: pass + pi[j], where: (v .> 0) .& (v .<= tops[j])) }
                                }
                                if !weights { UnsafeMutableRawPointer(op! + i).storeBytes(of: pass * grad, as: SIMD16<Float>.self) }
                                i += 16
                            }
                            var tail = [Double](repeating: 0, count: k)
                            for i in i..<hi {
                                let v = xp[i], grad = dp[i]
                                var pass: Float = 0
                                for j in 0..<k {
                                    tail[j] += Double(grad) * Double(Self.value(v, levels[j], midRise: weights))
                                    if v > 0 && v <= tops[j] { pass += pi[j] }
                                }
                                if !weights { op![i] = pass * grad }
                            }
                            for j in 0..<k { gp[w * k + j] = (sums[2 * j] + sums[2 * j + 1]).sum() + tail[j] }
                        }
                    }
                }
            }
        }
        let g = (0..<k).map { j in (0..<workers).reduce(0.0) { $0 + partial[$1 * k + j] } }
        let mean = zip(pi, g).reduce(0.0) { $0 + Double($1.0) * $1.1 }
        let dalpha = Tensor(checkedShape: alpha.shape, scalars: zip(pi, g).map { Float(Double($0) * ($1 - mean)) })
        return (weights ? dy : Tensor(checkedShape: x.shape, scalars: dx), dalpha)
    }
}
