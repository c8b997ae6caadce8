import Foundation
import Tensors

/// HMQ's search quantizer (Habi et al., ECCV 2020; ../shared/METHODS.md §5): one categorical
/// choice per tensor over (width b ∈ `bits`) × (power-of-two threshold T_j = T_max/2^j,
/// j = 0…7), T_max the least power of two ≥ max|x| (measured on x as it runs), with the signed
/// uniform quantizer Δ = T/2^(b−1), x̂ = clamp(Δ·round(x/Δ), −T, T − Δ) (round half to even).
///
/// inputs: x, the logits π [B, 8] (a parameter), the Gumbel noise g [B, 8] and the temperature
/// τ [1] (buffers the search sets before each batch).
/// - Training: P = softmax((log softmax(π) + g)/τ) over all B·8 cells; the forward quantizer uses
///   the expected step Δ̂ = Σ P·Δ_{b,j} and threshold T̂ = Σ P·T_j. Backward: x straight
///   through inside the range; Δ̂ by LSQ's estimator (round(x/Δ̂) − x/Δ̂ inside, −1 at the top
///   clamp) and T̂ by the clamps (±1); π gets (1/τ)·P⊙(G − ⟨P, G⟩), G = ∂L/∂P (log softmax
///   passes it unchanged, as it sums to 0).
/// - Evaluation: the discrete choice HMQ infers with — b = argmax of the marginal Σ_j softmax(π)
///   over thresholds, then the threshold with the least ‖x̂ − x‖² at that width (the pow2
///   quantizer with mse clipping); noise and temperature unused.
public struct GumbelQuantization: Codable, Equatable, Sendable {
    /// The candidate widths, one row of logits each (2…8).
    public var bits: [Int]
    public init(bits: [Int]) { self.bits = bits }

    /// The number of thresholds per width.
    public static let thresholdCount = 8

    public func validate() throws {
        guard !bits.isEmpty, Set(bits).count == bits.count, bits.allSatisfy({ (2...8).contains($0) }) else {
            throw NetworkError("gumbel quantizer: candidate widths must be distinct and in 2…8, found \(bits)")
        }
    }

    /// T_j = T_max/2^j (j = 0…7), T_max the least power of two ≥ max|v|; empty when v is all zeros.
    public static func thresholds(_ v: [Float]) -> [Float] {
        let m = v.reduce(Float(0)) { max($0, abs($1)) }
        guard m > 0, m.isFinite else { return [] }
        var top = Float(sign: .plus, exponent: m.exponent, significand: 1)
        if top < m { top *= 2 }
        return (0..<thresholdCount).map { top / Float(1 << $0) }
    }

    /// x̂ at width b and threshold t.
    public static func quantize(_ v: [Float], bits b: Int, threshold t: Float) -> [Float] {
        let s = t / Float(1 << (b - 1))
        guard s > 0 else { return v.map { _ in 0 } }
        let qmin = -Float(1 << (b - 1)), qmax = Float((1 << (b - 1)) - 1)
        return v.map { min(max(($0 / s).rounded(.toNearestOrEven), qmin), qmax) * s }
    }

    /// The threshold with the least squared error at width b (the first among equals).
    public static func bestThreshold(_ v: [Float], bits b: Int) -> Float? {
        var best: Float? = nil, bestError = Float.infinity
        for t in thresholds(v) {
            let q = quantize(v, bits: b, threshold: t)
            var e: Float = 0
            for i in v.indices { let d = q[i] - v[i]; e += d * d }
            if e < bestError { bestError = e; best = t }
        }
        return best
    }

    /// softmax over all cells, computed stably.
    static func softmax(_ z: [Float]) -> [Float] {
        let top = z.max() ?? 0
        let e = z.map { exp($0 - top) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    /// Σ_j softmax(π)_{b,j} for each width, in `bits`' order.
    public func marginal(_ logits: [Float]) -> [Float] {
        let p = Self.softmax(logits), j = Self.thresholdCount
        return bits.indices.map { r in p[(r * j)..<((r + 1) * j)].reduce(0, +) }
    }

    /// The width HMQ infers: the marginal's argmax (the first among equals).
    public func chosenBits(_ logits: [Float]) -> Int {
        let m = marginal(logits)
        return bits[m.indices.max { m[$0] < m[$1] || (m[$0] == m[$1] && $0 > $1) }!]
    }

    /// Gumbel-softmax probabilities P over the cells.
    static func sample(_ logits: [Float], noise: [Float], temperature: Float) -> [Float] {
        let lse: Float = { let top = logits.max() ?? 0; return top + log(logits.reduce(0) { $0 + exp($1 - top) }) }()
        return softmax(zip(logits, noise).map { ($0 - lse + $1) / temperature })
    }

    func checkShapes(_ x: Tensor, _ logits: Tensor, _ noise: Tensor?, _ temperature: Tensor?) throws {
        let cells = bits.count * Self.thresholdCount
        guard logits.count == cells else {
            throw NetworkError("gumbel quantizer: expected \(cells) logits (\(bits.count) widths × \(Self.thresholdCount) thresholds), found \(logits.count)")
        }
        if let n = noise, n.count != cells { throw NetworkError("gumbel quantizer: expected \(cells) noise values, found \(n.count)") }
        if let t = temperature, t.count != 1 || !(t.scalars[0] > 0) || !t.scalars[0].isFinite {
            throw NetworkError("gumbel quantizer: expected a positive temperature, found \(t.scalars)")
        }
    }

    /// The step and threshold of each cell, row-major (width, threshold).
    func cells(_ thresholds: [Float]) -> (steps: [Float], thresholds: [Float]) {
        var steps: [Float] = [], ts: [Float] = []
        for b in bits { for t in thresholds { steps.append(t / Float(1 << (b - 1))); ts.append(t) } }
        return (steps, ts)
    }

    /// Δ̂ and T̂ of a training pass, with P.
    func expected(_ x: Tensor, logits: Tensor, noise: Tensor, temperature: Tensor) -> (step: Float, threshold: Float, p: [Float], steps: [Float], thresholds: [Float])? {
        let ts = Self.thresholds(x.scalars)
        guard !ts.isEmpty else { return nil }
        let p = Self.sample(logits.scalars, noise: noise.scalars, temperature: temperature.scalars[0])
        let (steps, cellThresholds) = cells(ts)
        let d = zip(p, steps).reduce(Float(0)) { $0 + $1.0 * $1.1 }, t = zip(p, cellThresholds).reduce(Float(0)) { $0 + $1.0 * $1.1 }
        return (d, t, p, steps, cellThresholds)
    }

    func forward(_ x: Tensor, logits: Tensor, noise: Tensor, temperature: Tensor, training: Bool) throws -> Tensor {
        try checkShapes(x, logits, noise, temperature)
        if !training {
            let b = chosenBits(logits.scalars)
            guard let t = Self.bestThreshold(x.scalars, bits: b) else { return x.map { _ in 0 } }
            return Tensor(checkedShape: x.shape, scalars: Self.quantize(x.scalars, bits: b, threshold: t))
        }
        guard let e = expected(x, logits: logits, noise: noise, temperature: temperature) else { return x.map { _ in 0 } }
        let (d, t) = (e.step, e.threshold)
        return x.map { min(max(($0 / d).rounded(.toNearestOrEven) * d, -t), t - d) }
    }

    func backward(_ x: Tensor, logits: Tensor, noise: Tensor, temperature: Tensor, _ dy: Tensor) -> (dx: Tensor, dlogits: Tensor) {
        guard let e = expected(x, logits: logits, noise: noise, temperature: temperature) else {
            return (x.map { _ in 0 }, Tensor(checkedShape: logits.shape, scalars: Array(repeating: 0, count: logits.count)))
        }
        let (d, t) = (e.step, e.threshold)
        var dx = [Float](repeating: 0, count: x.count)
        var dStep = 0.0, dThreshold = 0.0
        x.withUnsafeScalars { xs in
            dy.withUnsafeScalars { g in
                for i in 0..<dx.count {
                    let r = (xs[i] / d).rounded(.toNearestOrEven)
                    if r * d < -t {
                        dThreshold -= Double(g[i])
                    } else if r * d > t - d {
                        dThreshold += Double(g[i]); dStep -= Double(g[i])
                    } else {
                        dx[i] = g[i]
                        dStep += Double(r - xs[i] / d) * Double(g[i])
                    }
                }
            }
        }
        let big = zip(e.steps, e.thresholds).map { dStep * Double($0) + dThreshold * Double($1) }
        let mean = zip(e.p, big).reduce(0.0) { $0 + Double($1.0) * $1.1 }
        let tau = Double(temperature.scalars[0])
        let dlogits = zip(e.p, big).map { Float(Double($0) * ($1 - mean) / tau) }
        return (Tensor(checkedShape: x.shape, scalars: dx), Tensor(checkedShape: logits.shape, scalars: dlogits))
    }
}
