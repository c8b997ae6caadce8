import Tensors

/// One scale for the whole tensor, or one per output channel (dimension 0 of a weight).
public enum Granularity: String, Sendable, CaseIterable {
    case perTensor = "tensor", perChannel = "channel"
}

/// The reference weight quantizer `w{b}` of ../shared/reference/README.md: symmetric, narrow
/// range, max-abs scale, round half to even —
///   s = max|W_c| / (2^(b−1) − 1),  Ŵ = clamp(round(W/s), −(2^(b−1) − 1), 2^(b−1) − 1) · s
/// — and at 1 bit, binary: Ŵ = sign(W) · mean|W_c| with sign(0) = +1.
public enum WeightQuantizer {
    /// Integer codes and their scales (one per channel, or a single one).
    public struct Codes: Sendable {
        public var codes: [Int8]
        public var scales: [Float]
        public var shape: [Int]
        public var bits: Int
    }

    public static func validate(bits: Int) throws {
        guard (1...8).contains(bits) else { throw QuantizationError("bits must be in 1…8, got \(bits)") }
    }

    /// Codes and scales. At 1 bit the codes are ±1 and the scale is mean|W_c|.
    public static func codes(_ w: Tensor, bits: Int, granularity: Granularity) throws -> Codes {
        try validate(bits: bits)
        guard w.rank >= 1, w.count > 0 else { throw QuantizationError("quantize: expected a non-empty weight, found shape \(w.shape)") }
        guard !w.hasNonFinite else { throw QuantizationError("quantize: the weight holds NaN or infinite values") }
        let channels = granularity == .perChannel ? w.shape[0] : 1
        let per = w.count / channels
        var codes = [Int8](repeating: 0, count: w.count)
        var scales = [Float](repeating: 0, count: channels)
        let levels = Float((1 << (bits - 1)) - 1)
        w.withUnsafeScalars { x in
            for c in 0..<channels {
                let base = c * per
                if bits == 1 {
                    var total: Float = 0
                    for i in 0..<per { total += abs(x[base + i]) }
                    scales[c] = total / Float(per)
                    for i in 0..<per { codes[base + i] = x[base + i] >= 0 ? 1 : -1 }
                    continue
                }
                var m: Float = 0
                for i in 0..<per { m = max(m, abs(x[base + i])) }
                let s = m / levels
                scales[c] = s
                guard s > 0 else { continue }
                for i in 0..<per {
                    let q = (x[base + i] / s).rounded(.toNearestOrEven)
                    codes[base + i] = Int8(min(max(q, -levels), levels))
                }
            }
        }
        return Codes(codes: codes, scales: scales, shape: w.shape, bits: bits)
    }

    /// Ŵ: the weight as the quantized model sees it (fake quantization).
    public static func quantize(_ w: Tensor, bits: Int, granularity: Granularity) throws -> Tensor {
        let q = try codes(w, bits: bits, granularity: granularity)
        let per = w.count / q.scales.count
        var out = [Float](repeating: 0, count: w.count)
        for i in 0..<w.count { out[i] = Float(q.codes[i]) * q.scales[i / per] }
        return Tensor(checkedShape: w.shape, scalars: out)
    }
}

/// Per-tensor activation quantization calibrated by min/max (the reference `a{a}`): an input
/// that never goes below 0 is unsigned, s = max/(2^a − 1), codes 0…2^a − 1; otherwise signed
/// narrow-range, s = max(|min|, |max|)/(2^(a−1) − 1), codes ±(2^(a−1) − 1). Zero point 0.
public struct ActivationQuantizer: Sendable, Equatable {
    public var low: Float, high: Float
    public var bits: Int

    public init(low: Float, high: Float, bits: Int) { self.low = low; self.high = high; self.bits = bits }

    public var isUnsigned: Bool { low >= 0 }
    public var scale: Float {
        isUnsigned ? high / Float((1 << bits) - 1) : max(abs(low), abs(high)) / Float((1 << (bits - 1)) - 1)
    }
    public var codeRange: (Int, Int) {
        isUnsigned ? (0, (1 << bits) - 1) : (-((1 << (bits - 1)) - 1), (1 << (bits - 1)) - 1)
    }
}
