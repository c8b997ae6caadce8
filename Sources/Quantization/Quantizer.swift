import Foundation
import Network
import Tensors

/// A configurable weight quantizer: scheme, granularity, rounding and clipping. With the
/// defaults (symmetric, per channel, round half to even, max clipping) it is the reference
/// quantizer `WeightQuantizer`.
///
/// Schemes, for a slice x with clipping range m (or lo…hi):
/// - symmetric (narrow): s = m/(2^(b−1) − 1), q ∈ [−(2^(b−1) − 1), 2^(b−1) − 1]
/// - symmetric_full: s = 2m/(2^b − 1), q ∈ [−2^(b−1), 2^(b−1) − 1] (PyTorch's full range)
/// - asymmetric: lo = min(x, 0), hi = max(x, 0), s = (hi − lo)/(2^b − 1),
///   z = clamp(round(−lo/s), 0, 2^b − 1), q = clamp(round(x/s) + z, 0, 2^b − 1), x̂ = (q − z)·s
/// - binary: x̂ = sign(x)·mean|x| (sign(0) = +1)
/// - ternary (TWN): Δ = 0.7·mean|x|, α = mean of |x| over |x| > Δ, x̂ = α·sign(x)·[|x| > Δ]
/// - gaussian (EdMIPS, 1…4 bits): mid-rise, Δ = g_b·std(x),
///   x̂ = Δ·(clamp(⌊x/Δ⌋, −2^(b−1), 2^(b−1) − 1) + ½) (clipping does not apply)
/// - pow2 (HMQ's thresholds, 2…8 bits): T_max = the least power of two ≥ max|x|, thresholds
///   T_j = T_max/2^j (j = 0…7), Δ = T/2^(b−1) (a power of two), q = clamp(round(x/Δ),
///   −2^(b−1), 2^(b−1) − 1), x̂ = q·Δ. Clipping picks the threshold: max → T_max, a percentile
///   → the least T_j at or above it, mse → the T_j with the least ‖x̂ − x‖² (HMQ's rule at
///   inference: the best threshold for the chosen bits).
/// Granularity: one slice for the tensor, one per output channel (dimension 0), or groups of
/// `size` consecutive weights within each output channel (a channel with no more than `size`
/// weights is one group). Clipping: max (m = max|x|), a
/// percentile of |x| (lo/hi: the matching lower and upper percentiles for asymmetric), or the
/// m in {0.30, 0.31, …, 1.00}·max|x| with the least squared error ‖x̂ − x‖².
/// Rounding: half to even, half away from zero, or stochastic (⌊x/s + u⌋, u uniform, seeded).
public struct Quantizer: Sendable, Equatable {
    public enum Scheme: String, Sendable, CaseIterable { case symmetric, symmetricFull = "symmetric_full", asymmetric, binary, ternary, gaussian, powerOfTwo = "pow2" }

    /// EdMIPS' Gaussian weight quantizer steps, Δ = g_b·std(W), for 1…4 bits.
    public static let gaussianSteps = MixedQuantization.gaussianSteps
    /// HWGQ's activation steps (half-wave Gaussian), for 1…4 bits.
    public static let hwgqSteps = MixedQuantization.hwgqSteps

    /// HWGQ (EdMIPS' activation quantizer): clamp to [0, Δ_b·(2^b − 1)] and round to steps Δ_b
    /// (half to even), for inputs of unit variance after batch norm.
    public static func hwgq(_ x: Tensor, bits: Int) throws -> Tensor {
        guard let d = hwgqSteps[bits] else { throw QuantizationError("hwgq: bits must be 1…4, got \(bits)") }
        let top = d * Float((1 << bits) - 1)
        return x.map { (min(max($0, 0), top) / d).rounded(.toNearestOrEven) * d }
    }
    public enum Slicing: Sendable, Equatable { case tensor, channel, group(Int) }
    public enum Rounding: Sendable, Equatable { case nearestEven, nearestAway, stochastic(seed: UInt64) }
    public enum Clipping: Sendable, Equatable { case max, percentile(Double), mse }

    public var bits: Int
    public var scheme: Scheme = .symmetric
    public var slicing: Slicing = .channel
    public var rounding: Rounding = .nearestEven
    public var clipping: Clipping = .max

    public init(bits: Int, scheme: Scheme = .symmetric, slicing: Slicing = .channel, rounding: Rounding = .nearestEven, clipping: Clipping = .max) {
        self.bits = bits; self.scheme = scheme; self.slicing = slicing; self.rounding = rounding; self.clipping = clipping
    }

    /// The result: x̂, and per slice its scale and zero point.
    public struct Result: Sendable {
        public var dequantized: Tensor
        public var scales: [Float]
        public var zeroPoints: [Int]
    }

    public func validate() throws {
        switch scheme {
        case .binary: guard bits == 1 else { throw QuantizationError("quantize: the binary scheme has 1 bit, not \(bits)") }
        case .ternary: guard bits == 2 else { throw QuantizationError("quantize: the ternary scheme takes 2 bits, not \(bits)") }
        case .gaussian: guard (1...4).contains(bits) else { throw QuantizationError("quantize: the gaussian scheme takes 1…4 bits, not \(bits)") }
        case .powerOfTwo: guard (2...8).contains(bits) else { throw QuantizationError("quantize: the pow2 scheme takes 2…8 bits, not \(bits)") }
        default: guard (2...16).contains(bits) else { throw QuantizationError("quantize: bits must be in 2…16 for the \(scheme.rawValue) scheme, got \(bits)") }
        }
        if case .percentile(let p) = clipping, !(p > 50 && p <= 100) {
            throw QuantizationError("quantize: the clipping percentile must be in (50, 100], got \(p)")
        }
        if case .group(let g) = slicing, g < 1 { throw QuantizationError("quantize: the group size must be at least 1, got \(g)") }
    }

    public func quantize(_ x: Tensor) throws -> Result {
        try validate()
        guard x.count > 0 else { throw QuantizationError("quantize: the tensor is empty") }
        guard !x.hasNonFinite else { throw QuantizationError("quantize: the tensor holds NaN or infinite values") }
        let rows = slicing == .tensor || x.rank == 0 ? 1 : x.shape[0]
        let perRow = x.count / rows
        let size: Int
        switch slicing {
        case .tensor, .channel: size = perRow
        case .group(let g):
            guard perRow <= g || perRow % g == 0 else {
                throw QuantizationError("quantize: groups of \(g) do not divide the \(perRow) weights of each output channel")
            }
            size = min(g, perRow)
        }
        let slices = x.count / size
        var out = [Float](repeating: 0, count: x.count)
        var scales = [Float](repeating: 0, count: slices), zeros = [Int](repeating: 0, count: slices)
        var rng = RandomGenerator(seed: { if case .stochastic(let s) = rounding { return s }; return 0 }())
        for slice in 0..<slices {
            let v = Array(x.scalars[(slice * size)..<((slice + 1) * size)])
            let (q, s, z) = quantizeSlice(v, &rng)
            for i in 0..<size { out[slice * size + i] = q[i] }
            scales[slice] = s; zeros[slice] = z
        }
        return Result(dequantized: Tensor(checkedShape: x.shape, scalars: out), scales: scales, zeroPoints: zeros)
    }

    func round(_ v: Float, _ rng: inout RandomGenerator) -> Float {
        switch rounding {
        case .nearestEven: return v.rounded(.toNearestOrEven)
        case .nearestAway: return v.rounded(.toNearestOrAwayFromZero)
        case .stochastic: return (v + rng.uniform()).rounded(.down)
        }
    }

    /// x̂ for one slice at clipping range (lo, hi), with its scale and zero point.
    func apply(_ v: [Float], lo: Float, hi: Float, _ rng: inout RandomGenerator) -> ([Float], Float, Int) {
        let b = bits
        switch scheme {
        case .symmetric, .symmetricFull:
            let m = max(abs(lo), abs(hi))
            let (s, qmin, qmax): (Float, Float, Float) = scheme == .symmetric
                ? (m / Float((1 << (b - 1)) - 1), -Float((1 << (b - 1)) - 1), Float((1 << (b - 1)) - 1))
                : (2 * m / Float((1 << b) - 1), -Float(1 << (b - 1)), Float((1 << (b - 1)) - 1))
            guard s > 0 else { return (v.map { _ in 0 }, 0, 0) }
            return (v.map { min(max(round($0 / s, &rng), qmin), qmax) * s }, s, 0)
        case .asymmetric:
            let l = min(lo, 0), h = max(hi, 0)
            let levels = Float((1 << b) - 1)
            let s = (h - l) / levels
            guard s > 0 else { return (v.map { _ in 0 }, 0, 0) }
            let z = min(max((-l / s).rounded(.toNearestOrEven), 0), levels)
            return (v.map { (min(max(round($0 / s, &rng) + z, 0), levels) - z) * s }, s, Int(z))
        case .binary:
            let a = v.reduce(0) { $0 + abs($1) } / Float(v.count)
            return (v.map { $0 >= 0 ? a : -a }, a, 0)
        case .gaussian:
            let mean = v.reduce(0, +) / Float(v.count)
            let std = (v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(v.count)).squareRoot()
            let d = Self.gaussianSteps[b]! * std
            guard d > 0 else { return (v.map { _ in 0 }, 0, 0) }
            let lo = -Float(1 << (b - 1)), hi = Float((1 << (b - 1)) - 1)
            return (v.map { (min(max(($0 / d).rounded(.down), lo), hi) + 0.5) * d }, d, 0)
        case .powerOfTwo:
            // lo…hi here is ±T, a power-of-two threshold.
            let t = max(abs(lo), abs(hi))
            let s = t / Float(1 << (b - 1))
            guard s > 0 else { return (v.map { _ in 0 }, 0, 0) }
            let qmin = -Float(1 << (b - 1)), qmax = Float((1 << (b - 1)) - 1)
            return (v.map { min(max(round($0 / s, &rng), qmin), qmax) * s }, s, 0)
        case .ternary:
            let delta = 0.7 * v.reduce(0) { $0 + abs($1) } / Float(v.count)
            let big = v.filter { abs($0) > delta }
            let a = big.isEmpty ? 0 : big.reduce(0) { $0 + abs($1) } / Float(big.count)
            return (v.map { abs($0) > delta ? ($0 > 0 ? a : -a) : 0 }, a, 0)
        }
    }

    func quantizeSlice(_ v: [Float], _ rng: inout RandomGenerator) -> ([Float], Float, Int) {
        let lo = v.min()!, hi = v.max()!
        if scheme == .gaussian || scheme == .binary || scheme == .ternary { return apply(v, lo: lo, hi: hi, &rng) }
        if scheme == .powerOfTwo { return powerOfTwo(v, &rng) }
        switch clipping {
        case .max:
            return apply(v, lo: lo, hi: hi, &rng)
        case .percentile(let p):
            if scheme == .asymmetric {
                let sorted = v.sorted()
                func at(_ q: Double) -> Float { sorted[min(sorted.count - 1, max(0, Int((q / 100 * Double(sorted.count - 1)).rounded())))] }
                return apply(v, lo: at(100 - p), hi: at(p), &rng)
            }
            let mags = v.map(abs).sorted()
            let m = mags[min(mags.count - 1, Int((p / 100 * Double(mags.count - 1)).rounded()))]
            return apply(v, lo: -m, hi: m, &rng)
        case .mse:
            var best: ([Float], Float, Int)? = nil, bestError = Float.infinity
            for step in 30...100 {
                let f = Float(step) / 100
                var r = rng
                let candidate = apply(v, lo: lo * f, hi: hi * f, &r)
                var e: Float = 0
                for i in v.indices { let d = candidate.0[i] - v[i]; e += d * d }
                if e < bestError { bestError = e; best = candidate }
            }
            return best!
        }
    }
}

extension Quantizer {
    /// HMQ's power-of-two thresholds T_max/2^j, j = 0…7, T_max the least power of two ≥ max|x|
    /// (the search layer's, `GumbelQuantization.thresholds`).
    public static func powerOfTwoThresholds(_ v: [Float]) -> [Float] { GumbelQuantization.thresholds(v) }

    func powerOfTwo(_ v: [Float], _ rng: inout RandomGenerator) -> ([Float], Float, Int) {
        let thresholds = Self.powerOfTwoThresholds(v)
        guard let top = thresholds.first else { return apply(v, lo: 0, hi: 0, &rng) }
        switch clipping {
        case .max:
            return apply(v, lo: -top, hi: top, &rng)
        case .percentile(let p):
            let mags = v.map(abs).sorted()
            let m = mags[min(mags.count - 1, Int((p / 100 * Double(mags.count - 1)).rounded()))]
            let t = thresholds.last { $0 >= m } ?? top
            return apply(v, lo: -t, hi: t, &rng)
        case .mse:
            var best: ([Float], Float, Int)? = nil, bestError = Float.infinity
            for t in thresholds {
                var r = rng
                let candidate = apply(v, lo: -t, hi: t, &r)
                var e: Float = 0
                for i in v.indices { let d = candidate.0[i] - v[i]; e += d * d }
                if e < bestError { bestError = e; best = candidate }
            }
            return best!
        }
    }
}

extension Model {
    /// Every conv/linear weight through `quantizer` (weight-only; biases stay FP32).
    public func quantized(weights quantizer: Quantizer) throws -> Model {
        let q = copy()
        for layer in layers {
            do { q.parameters[layer.weight] = try quantizer.quantize(parameters[layer.weight]!).dequantized }
            catch let e as QuantizationError {
                let reason = e.message.hasPrefix("quantize: ") ? String(e.message.dropFirst(10)) : e.message
                throw QuantizationError("layer '\(layer.name)': \(reason)")
            }
        }
        return q
    }
}
