import Foundation
import Network
import Runtime
import Tensors

/// An accuracy predictor that looks at the quantized model itself: each policy's whole-model
/// output divergence on calibration images (`PolicyDivergence`, bias-corrected as the samples
/// are) mapped to accuracy by a curve fitted on measured samples,
/// logit(accuracy) = c₀ + c₁x + c₂x², x = log KL, held monotone (beyond the curve's turning
/// point the accuracy stays at its value there, so more divergence never predicts more accuracy).
/// Where APQ's MLP must learn from a few hundred samples how low widths in several layers
/// compound, the divergence measures it, so a few dozen samples fix the curve. The price: one
/// forward pass of the calibration images per predicted policy (about 56 ms on ResNet-20 with 259
/// images, against microseconds for the MLP) — for scoring and re-ranking, not for the hundreds of
/// thousands of queries of a long evolutionary search.
public struct DivergencePredictor: PolicyPredictor {
    public let divergence: PolicyDivergence
    public let choices: [Int]
    /// c₀, c₁, c₂ of the fitted curve in x = log KL.
    public let coefficients: [Double]
    /// The fitted curve's x is clamped to this range's monotone side (its turning point).
    let turn: (x: Double, below: Bool)?
    public var layers: Int { divergence.model.layers.count }

    /// Fits the curve to `samples` (measured policies; at least 3 with different divergences).
    /// `progress` sees (done, total) while their divergences are computed.
    public init(divergence: PolicyDivergence, samples: [PolicySamples.Sample], choices: [Int]? = nil,
                progress: (Int, Int) -> Void = { _, _ in }) throws {
        guard samples.count >= 3 else { throw MixedPrecisionError("divergence predictor: needs at least 3 measured policies, found \(samples.count)") }
        guard samples.allSatisfy({ $0.accuracy.isFinite && (0...1).contains($0.accuracy) }) else {
            throw MixedPrecisionError("divergence predictor: expected accuracies in 0…1, found \(samples.map(\.accuracy).first { !($0.isFinite && (0...1).contains($0)) }!)")
        }
        var xs: [Double] = []
        for (i, s) in samples.enumerated() {
            try Interrupt.check()
            xs.append(log(max(try divergence.divergence(bits: s.bits), 1e-12)))
            progress(i + 1, samples.count)
        }
        let ts = samples.map { Self.logit($0.accuracy) }
        let mean = xs.reduce(0, +) / Double(xs.count)
        let spread = (xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(xs.count)).squareRoot()
        guard spread > 1e-9 else { throw MixedPrecisionError("divergence predictor: the samples' policies all have the same divergence; measure policies of different widths") }
        // Least squares in u = (x − mean)/spread (well conditioned), a light ridge on the square term.
        var a = [[Double]](repeating: [0, 0, 0], count: 3), b = [0.0, 0, 0]
        for (x, t) in zip(xs, ts) {
            let u = (x - mean) / spread, f = [1, u, u * u]
            for i in 0..<3 { b[i] += f[i] * t; for j in 0..<3 { a[i][j] += f[i] * f[j] } }
        }
        a[2][2] += 1e-3 * Double(xs.count)
        let d = try Self.solve3(a, b)
        // Back to x: c₀ + c₁x + c₂x² = d₀ + d₁u + d₂u².
        let c2 = d[2] / (spread * spread), c1 = d[1] / spread - 2 * d[2] * mean / (spread * spread)
        let c0 = d[0] - d[1] * mean / spread + d[2] * mean * mean / (spread * spread)
        guard c1 + 2 * c2 * mean < 0 else {
            throw MixedPrecisionError("divergence predictor: the measured accuracies do not fall as the divergence grows (slope \(c1 + 2 * c2 * mean) at the samples' mean); check that the samples are of this model and calibration")
        }
        coefficients = [c0, c1, c2]
        turn = c2 == 0 ? nil : (x: -c1 / (2 * c2), below: c2 > 0)
        self.divergence = divergence
        self.choices = choices ?? Array(Set(samples.flatMap(\.bits))).sorted()
    }

    static func logit(_ p: Double) -> Double { let q = min(max(p, 1e-4), 1 - 1e-4); return log(q / (1 - q)) }

    static func solve3(_ m: [[Double]], _ v: [Double]) throws -> [Double] {
        var a = m, b = v
        for c in 0..<3 {
            let p = (c..<3).max { abs(a[$0][c]) < abs(a[$1][c]) }!
            guard abs(a[p][c]) > 1e-12 else { throw MixedPrecisionError("divergence predictor: the samples do not determine the curve (too few distinct divergences)") }
            a.swapAt(c, p); b.swapAt(c, p)
            for r in 0..<3 where r != c {
                let f = a[r][c] / a[c][c]
                for k in c..<3 { a[r][k] -= f * a[c][k] }
                b[r] -= f * b[c]
            }
        }
        return (0..<3).map { b[$0] / a[$0][$0] }
    }

    /// The predicted accuracy at a divergence `kl`.
    public func accuracy(divergence kl: Double) -> Double {
        var x = log(max(kl, 1e-12))
        if let turn { x = turn.below ? min(x, turn.x) : max(x, turn.x) }
        let t = coefficients[0] + coefficients[1] * x + coefficients[2] * x * x
        return 1 / (1 + exp(-t))
    }

    public func predict(_ policies: [[Int]]) throws -> [Double] {
        try policies.map { bits in
            try Interrupt.check()
            return accuracy(divergence: try divergence.divergence(bits: bits))
        }
    }
}
