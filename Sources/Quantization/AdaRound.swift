import Foundation
import Kernels
import Network
import Tensors
import Runtime

/// Learned rounding (AdaRound: Nagel et al. 2020, "Up or down? Adaptive rounding for
/// post-training quantization"). Each weight keeps the policy's grid — its scale, zero point
/// and range are the policy quantizer's — but chooses between rounding down and up:
/// Ŵ = s·(⌊W/s⌋ + h(V)), h(V) = clamp(σ(V)·(ζ − γ) + γ, 0, 1) with ζ = 1.1, γ = −0.1, V learned
/// with Adam to minimise, layer by layer in network order,
///
///     Σ_c E‖W_c·x_f − Ŵ_c·x_q‖² / E‖W_c·x_f‖²  +  λ·Σ (1 − |2h(V) − 1|^β)
///
/// x_f the layer's input in the float model, x_q its input in the model whose earlier layers
/// are already rounded (the paper's asymmetric reconstruction), over every calibration image
/// and output position. The regulariser is off for the first `warmup` of the iterations, then
/// β falls linearly from `betaStart` to `betaEnd`; at the end h is set to 0 or 1 (h ≥ ½).
/// Each output channel's error is divided by its output's second moment, so λ weighs it as it
/// would a batch-normalised output (AdaRound works on BN-folded layers).
///
/// The expectations are exact and cheap: with G_qq = E[x_q x_qᵀ] and G_fq = E[x_f x_qᵀ]
/// (one K×K matrix each per layer and group, K = C_in·k_h·k_w, accumulated once over the
/// calibration set), the error and its gradient are quadratic forms, so each step is one
/// (C_out×K)·(K×K) product — full-batch, where the paper samples mini-batches of 32.
///
/// With bias correction, the second moments are centred (covariances) and each layer's mean
/// output shift W·E[x_f] − Ŵ·E[x_q] is taken out of its bias or batch norm before the next
/// layer reads it (the sequential form of `BiasCorrection`).
///
/// Schemes on a uniform grid (symmetric, symmetric_full, pow2, asymmetric) learn their
/// rounding; binary, ternary and gaussian layers are quantized as the policy says and the
/// report names them. The weight with the largest magnitude in each slice keeps its nearest
/// code, so re-quantizing the result with the policy gives the same grid (checked per layer).
public struct AdaRound: Sendable, Equatable {
    /// Adam steps per layer. The defaults (1,000 steps at rate 0.03) were chosen on a
    /// validation split carved from Fashion-MNIST's training set (ResNet-20, HAWQ-V3 policies at
    /// 3- and 4-bit averages; scripts/adaround-tune.mpq), against 500/2,000 steps and rate 0.01.
    public var iterations: Int
    /// λ, the regulariser's weight.
    public var regularization: Float
    public var betaStart: Float
    public var betaEnd: Float
    /// Fraction of the iterations without the regulariser.
    public var warmup: Double
    public var learningRate: Float
    /// Calibration images per pass when accumulating the second moments (memory, not result).
    public var chunk: Int

    public static let zeta: Float = 1.1, gamma: Float = -0.1

    public init(iterations: Int = 1000, regularization: Float = 0.01, betaStart: Float = 20, betaEnd: Float = 2,
                warmup: Double = 0.2, learningRate: Float = 0.03, chunk: Int = 64) {
        self.iterations = iterations; self.regularization = regularization
        self.betaStart = betaStart; self.betaEnd = betaEnd; self.warmup = warmup
        self.learningRate = learningRate; self.chunk = chunk
    }

    public func validate() throws {
        guard iterations >= 1, iterations <= 1_000_000 else { throw QuantizationError("adaround: iterations must be in 1…1000000, got \(iterations)") }
        guard regularization >= 0, regularization.isFinite else { throw QuantizationError("adaround: the regularisation weight must be ≥ 0, got \(regularization)") }
        guard betaStart >= betaEnd, betaEnd > 0 else { throw QuantizationError("adaround: β must fall from betaStart to betaEnd > 0, got \(betaStart) → \(betaEnd)") }
        guard warmup >= 0, warmup < 1 else { throw QuantizationError("adaround: warmup is a fraction in [0, 1), got \(warmup)") }
        guard learningRate > 0, learningRate.isFinite else { throw QuantizationError("adaround: the learning rate must be > 0, got \(learningRate)") }
        guard chunk >= 1 else { throw QuantizationError("adaround: chunk must be at least 1 image, got \(chunk)") }
    }

    /// What rounding did to one layer.
    public struct LayerReport: Sendable, Equatable {
        public var layer: String
        /// False when the layer kept the policy's own rounding (`note` says why).
        public var learned: Bool
        public var note: String?
        /// The reconstruction error Σ_c E‖W_c·x_f − Ŵ_c·x_q‖² / Σ_c E‖W_c·x_f‖² with rounding to
        /// nearest and with the learned rounding (equal when not learned).
        public var nearestError: Double
        public var learnedError: Double
        /// Fraction of the layer's weights whose code differs from rounding to nearest.
        public var flipped: Double
        public var seconds: Double
    }

    public struct Report: Sendable, Equatable {
        public var layers: [LayerReport]
        public var seconds: Double
    }

    static func learns(_ scheme: Quantizer.Scheme) -> Bool {
        switch scheme {
        case .symmetric, .symmetricFull, .powerOfTwo, .asymmetric: return true
        case .binary, .ternary, .gaussian: return false
        }
    }

    /// Codes a slice may take, in steps from its zero point.
    static func range(bits b: Int, scheme: Quantizer.Scheme, zero: Int) -> (lo: Float, hi: Float) {
        switch scheme {
        case .symmetric: return (-Float((1 << (b - 1)) - 1), Float((1 << (b - 1)) - 1))
        case .asymmetric: return (-Float(zero), Float((1 << b) - 1 - zero))
        default: return (-Float(1 << (b - 1)), Float((1 << (b - 1)) - 1))
        }
    }
}


extension AdaRound {
    /// `rows`×`k` times `k`×`k`, row-major, into `out`.
    static func multiply(_ a: UnsafePointer<Float>, _ g: UnsafePointer<Float>, rows: Int, k: Int, into out: UnsafeMutablePointer<Float>) {
        if rows * k * k < 1 << 14 {
            for r in 0..<rows {
                let o = out + r * k
                for j in 0..<k { o[j] = 0 }
                for p in 0..<k {
                    let v = a[r * k + p]
                    if v == 0 { continue }
                    let gr = g + p * k
                    for j in 0..<k { o[j] += v * gr[j] }
                }
            }
        } else {
            SGEMM.multiply(m: rows, n: k, k: k, a: a, lda: k, b: g, ldb: k, c: out, ldc: k)
        }
    }

    /// Learns the rounding of one group's `rows` output channels (row-major, `k` weights each;
    /// `scale`, `lo`, `hi` per weight, in steps from the zero point; `fixed` weights keep their
    /// nearest code). Returns Ŵ, the reconstruction errors with nearest and learned rounding
    /// (relative to the float output's second moment), and how many codes differ from nearest.
    func round(weights w: [Float], scale: [Float], lo: [Float], hi: [Float], fixed: [Bool], rows: Int, k: Int,
               moments m: InputMoments, group: Int) throws -> (rounded: [Float], nearestError: Double, learnedError: Double, flipped: Int) {
        let n = w.count, zeta = Self.zeta, gamma = Self.gamma
        let norm = (0..<rows).map { m.outputMoment[group * m.rowsPerGroup + $0] }
        let total = norm.reduce(0, +)
        // A channel with no output variance still has its error weighed, by the layer's mean.
        let floor = max(total / Double(max(1, rows)), 1e-30)
        let weigh = norm.map { Float(2 / max($0, 1e-6 * floor)) }
        // Working arrays: W·G_fq, the current Ŵ, Ŵ·G_qq, V, Adam's moments.
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: 8 * n)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 0, count: 8 * n)
        let t = buffer, b = buffer + n, bq = buffer + 2 * n, v = buffer + 3 * n, adamM = buffer + 4 * n, adamV = buffer + 5 * n, base = buffer + 6 * n
        let sigmoid = buffer + 7 * n
        w.withUnsafeBufferPointer { wp in m.fq[group].withUnsafeBufferPointer { gp in Self.multiply(wp.baseAddress!, gp.baseAddress!, rows: rows, k: k, into: t) } }
        var nearest = [Float](repeating: 0, count: n)
        var free = [Bool](repeating: false, count: n)
        for i in 0..<n where scale[i] > 0 {
            let x = w[i] / scale[i]
            base[i] = x.rounded(.down)
            nearest[i] = min(max(x.rounded(.toNearestOrEven), lo[i]), hi[i]) * scale[i]
            free[i] = !fixed[i] && base[i] >= lo[i] && base[i] + 1 <= hi[i]
            // h(V) starts at the fractional part: the relaxed weight starts at W.
            let frac = min(max(x - base[i], 0.01), 0.99)
            v[i] = -log((zeta - gamma) / (frac - gamma) - 1)
        }
        func error(_ weights: [Float]) -> Double {
            var bqLocal = [Float](repeating: 0, count: n)
            weights.withUnsafeBufferPointer { wp in
                m.qq[group].withUnsafeBufferPointer { gp in bqLocal.withUnsafeMutableBufferPointer { Self.multiply(wp.baseAddress!, gp.baseAddress!, rows: rows, k: k, into: $0.baseAddress!) } }
            }
            var e = 0.0
            for r in 0..<rows {
                var s = norm[r]
                for j in 0..<k { let i = r * k + j; s += Double(bqLocal[i] - 2 * t[i]) * Double(weights[i]) }
                e += s
            }
            return e / max(total, 1e-30)
        }
        for i in 0..<n { b[i] = nearest[i] }
        let (b1, b2, eps): (Float, Float, Float) = (0.9, 0.999, 1e-8)
        var b1t: Float = 1, b2t: Float = 1
        let warm = Int(Double(iterations) * warmup)
        let lambda = regularization, rate = learningRate
        let threads = rows * k >= 4096 ? Parallel.defaultThreads : 1
        let blocks = max(1, threads), perBlock = (rows + blocks - 1) / blocks
        try free.withUnsafeBufferPointer { freeP in
            try scale.withUnsafeBufferPointer { sp in
                try m.qq[group].withUnsafeBufferPointer { gp in
                    for it in 0..<iterations {
                        if it % 16 == 0 { try Interrupt.check() }
                        let regularize = it >= warm && lambda > 0
                        let beta = betaEnd + (betaStart - betaEnd) * max(0, 1 - Float(it - warm) / Float(max(1, iterations - warm)))
                        b1t *= b1; b2t *= b2
                        let (c1, c2) = (1 - b1t, 1 - b2t)
                        // Ŵ from V, then Ŵ·G_qq, then the step on V: rows split between the cores.
                        Parallel.forEach(blocks, threads: threads) { block, _ in
                            for i in (block * perBlock * k)..<min(n, (block + 1) * perBlock * k) where freeP[i] {
                                let s = 1 / (1 + exp(-v[i]))
                                sigmoid[i] = s
                                b[i] = sp[i] * (base[i] + min(max(s * (zeta - gamma) + gamma, 0), 1))
                            }
                        }
                        Self.multiply(b, gp.baseAddress!, rows: rows, k: k, into: bq)
                        Parallel.forEach(blocks, threads: threads) { block, _ in
                            for r in (block * perBlock)..<min(rows, (block + 1) * perBlock) {
                                let rw = weigh[r]
                                for i in (r * k)..<(r * k + k) where freeP[i] {
                                    let s = sigmoid[i], raw = s * (zeta - gamma) + gamma
                                    guard raw > 0, raw < 1 else { continue }   // h is clamped: no gradient through it
                                    var g = rw * (bq[i] - t[i]) * sp[i]
                                    if regularize {
                                        let u = 2 * raw - 1, au = abs(u)
                                        if au > 0 { g -= lambda * beta * exp((beta - 1) * log(au)) * (u < 0 ? -2 : 2) }
                                    }
                                    g *= (zeta - gamma) * s * (1 - s)
                                    adamM[i] = b1 * adamM[i] + (1 - b1) * g
                                    adamV[i] = b2 * adamV[i] + (1 - b2) * g * g
                                    v[i] -= rate * (adamM[i] / c1) / ((adamV[i] / c2).squareRoot() + eps)
                                }
                            }
                        }
                    }
                }
            }
        }
        var rounded = nearest, flipped = 0
        for i in 0..<n where free[i] {
            let raw = 1 / (1 + exp(-v[i])) * (zeta - gamma) + gamma
            rounded[i] = scale[i] * (base[i] + (raw >= 0.5 ? 1 : 0))
            if rounded[i] != nearest[i] { flipped += 1 }
        }
        return (rounded, error(nearest), error(rounded), flipped)
    }
}
