import Foundation
import Network
import Tensors

extension Policy {
    /// How one layer's weights are quantized: a `Quantizer` (scheme, slicing, rounding,
    /// clipping, bits) and, kernel-wise (AutoQ's granularity), one width per output channel,
    /// each channel quantized on its own at its width (`channelBits` overrides `quantizer.bits`
    /// and needs per-channel slicing).
    public struct Weight: Sendable, Equatable {
        public var quantizer: Quantizer
        public var channelBits: [Int]?

        public init(_ quantizer: Quantizer, channelBits: [Int]? = nil) {
            self.quantizer = quantizer; self.channelBits = channelBits
        }

        /// The reference weight quantizer `w{b}` (symmetric narrow range, max-abs, half-even;
        /// binary at 1 bit), as `WeightQuantizer` computes it.
        public static func reference(bits: Int, granularity: Granularity = .perChannel) -> Weight {
            Weight(Quantizer(bits: bits, scheme: bits == 1 ? .binary : .symmetric, slicing: granularity == .perChannel ? .channel : .tensor))
        }

        /// The same quantizer at another width: 1 bit is binary (but gaussian's 1-bit step), as
        /// in the reference quantizer; binary above 1 bit and ternary off 2 bits are symmetric.
        public func at(bits: Int) -> Weight {
            var q = quantizer
            q.bits = bits
            if bits == 1 && q.scheme != .gaussian { q.scheme = .binary }
            if (bits > 1 && q.scheme == .binary) || (bits != 2 && q.scheme == .ternary) { q.scheme = .symmetric }
            return Weight(q)
        }

        /// One width per output channel (kernel-wise), from this quantizer's other settings.
        public func perChannel(_ bits: [Int]) -> Weight {
            var w = self
            w.channelBits = bits
            w.quantizer.slicing = .channel
            // One canonical form: the quantizer's own width is the widest channel's.
            if let top = bits.max() { w.quantizer.bits = top }
            return w
        }

        /// The one width of every weight, or nil when channels differ.
        public var uniformBits: Int? {
            guard let c = channelBits else { return quantizer.bits }
            guard let first = c.first, c.allSatisfy({ $0 == first }) else { return nil }
            return first
        }

        /// Width of each of a layer's `channels` output channels.
        public func widths(channels: Int) -> [Int] { channelBits ?? Array(repeating: quantizer.bits, count: channels) }

        /// Bits the layer's weights take packed: Σ_c P_c·b_c (no per-channel padding).
        public func storedBits(for layer: Layer) -> Int {
            let channels = layer.weightShape[0], per = layer.parameterCount / max(1, channels)
            return widths(channels: channels).reduce(0) { $0 + per * $1 }
        }

        public func validate(for layer: Layer) throws {
            if let c = channelBits {
                guard c.count == layer.weightShape[0] else {
                    throw QuantizationError("weight.bits: expected \(layer.weightShape[0]) per-channel widths (one per output channel), found \(c.count)")
                }
                guard quantizer.slicing == .channel else {
                    throw QuantizationError("weight.bits: per-channel widths need per-channel slicing (granularity \"channel\")")
                }
                for (i, b) in c.enumerated() {
                    do { try at(bits: b).quantizer.validate() }
                    catch let e as QuantizationError { throw QuantizationError("weight.bits[\(i)]: \(e.message.replacingOccurrences(of: "quantize: ", with: ""))") }
                }
            } else {
                do { try quantizer.validate() }
                catch let e as QuantizationError { throw QuantizationError("weight: \(e.message.replacingOccurrences(of: "quantize: ", with: ""))") }
            }
            guard (channelBits ?? [quantizer.bits]).allSatisfy({ $0 <= 8 }) else {
                throw QuantizationError("weight.bits: a policy's weights take 1…8 bits (32: float), found \((channelBits ?? [quantizer.bits]).max()!)")
            }
        }

        /// Ŵ with the scales (one per slice) and zero points.
        public func quantize(_ w: Tensor) throws -> Quantizer.Result {
            guard let c = channelBits else { return try quantizer.quantize(w) }
            guard w.rank >= 1, w.shape[0] == c.count, w.count > 0 else {
                throw QuantizationError("quantize: expected a weight with \(c.count) output channels, found shape \(w.shape)")
            }
            let per = w.count / c.count
            var out = [Float](), scales = [Float](), zeros = [Int]()
            out.reserveCapacity(w.count)
            for (i, b) in c.enumerated() {
                var q = at(bits: b).quantizer
                q.slicing = .tensor
                let row = Tensor(checkedShape: [per], scalars: Array(w.scalars[(i * per)..<((i + 1) * per)]))
                let r = try q.quantize(row)
                out += r.dequantized.scalars; scales += r.scales; zeros += r.zeroPoints
            }
            return Quantizer.Result(dequantized: Tensor(checkedShape: w.shape, scalars: out), scales: scales, zeroPoints: zeros)
        }

        /// Integer codes (one row per output channel) and per-channel scales, Ŵ = code·scale,
        /// for the integer engine: the scheme must put every value on an integer multiple of one
        /// scale per output channel with zero point 0 (symmetric, pow2, binary, ternary do;
        /// asymmetric and the mid-rise gaussian do not).
        public func codes(_ w: Tensor) throws -> WeightQuantizer.Codes {
            if channelBits == nil, quantizer.slicing != .tensor, quantizer.slicing != .channel {
                throw QuantizationError("the integer engine needs one weight scale per output channel; group slicing has several")
            }
            let r = try quantize(w)
            guard r.zeroPoints.allSatisfy({ $0 == 0 }) else {
                throw QuantizationError("the integer engine runs weights with zero point 0; the \(quantizer.scheme.rawValue) scheme has others")
            }
            let channels = w.shape[0], per = w.count / channels
            let scales = r.scales.count == 1 ? Array(repeating: r.scales[0], count: channels) : r.scales
            var codes = [Int8](repeating: 0, count: w.count)
            for c in 0..<channels where scales[c] > 0 {
                for i in 0..<per {
                    let v = r.dequantized.scalars[c * per + i] / scales[c], k = v.rounded(.toNearestOrEven)
                    guard abs(v - k) <= 1e-3 * max(1, abs(k)), k >= -128, k <= 127 else {
                        throw QuantizationError("the integer engine needs integer weight codes; the \(quantizer.scheme.rawValue) scheme gives \(v)·scale")
                    }
                    codes[c * per + i] = Int8(k)
                }
            }
            return WeightQuantizer.Codes(codes: codes, scales: scales, shape: w.shape, bits: widths(channels: channels).max() ?? quantizer.bits)
        }
    }

    /// How the activation entering a layer is quantized, per tensor, calibrated on data:
    /// - uniform: min/max; unsigned (codes 0…2^b − 1, s = max/(2^b − 1)) when the value never
    ///   goes below 0 (or `sign` says unsigned), else signed narrow range (s = max|x|/(2^(b−1) − 1));
    /// - pow2: as uniform, with the scale rounded up to a power of two;
    /// - hwgq (HWGQ, 1…4 bits): unsigned, s = Δ_b·σ with Δ_b HWGQ's step for unit variance and
    ///   σ = √(2·E[x²]) the scale of the half-wave Gaussian the input is taken to be;
    /// - binary (1 bit, XNOR-Net): sign(x)·mean|x|.
    public struct Activation: Sendable, Equatable {
        public enum Scheme: String, Sendable, CaseIterable { case uniform, pow2, hwgq, binary }
        public enum Sign: String, Sendable, CaseIterable { case auto, signed, unsigned }
        public var bits: Int
        public var scheme: Scheme
        public var sign: Sign

        public init(bits: Int, scheme: Scheme? = nil, sign: Sign = .auto) {
            self.bits = bits; self.scheme = scheme ?? (bits == 1 ? .binary : .uniform); self.sign = sign
        }

        public func validate() throws {
            switch scheme {
            case .binary: guard bits == 1 else { throw QuantizationError("activation: the binary scheme has 1 bit, not \(bits)") }
            case .hwgq: guard Quantizer.hwgqSteps[bits] != nil else { throw QuantizationError("activation: the hwgq scheme takes 1…4 bits, not \(bits)") }
            case .uniform, .pow2:
                guard (2...16).contains(bits) else {
                    throw QuantizationError("activation.bits: expected 2…16 for the \(scheme.rawValue) scheme (1: binary), found \(bits)")
                }
            }
        }

        /// What calibration measures of a value.
        public struct Statistics: Sendable, Equatable {
            public var low: Float = .infinity, high: Float = -.infinity
            public var sumAbs: Double = 0, sumSquares: Double = 0, count = 0
            public init() {}
            public var meanAbs: Float { Float(sumAbs / Double(max(count, 1))) }
            public var meanSquare: Double { sumSquares / Double(max(count, 1)) }
            public mutating func add(_ x: Tensor) {
                let (smallest, largest) = x.extremes()
                low = min(low, smallest); high = max(high, largest)
                x.withUnsafeScalars { p in
                    // Four running sums of each (element i into sum i mod 4), then added: four
                    // independent chains instead of one.
                    var a = SIMD4<Double>(), s = SIMD4<Double>()
                    let whole = p.count / 4 * 4
                    var i = 0
                    while i < whole {
                        let d = SIMD4<Double>(Double(p[i]), Double(p[i + 1]), Double(p[i + 2]), Double(p[i + 3]))
                        a += SIMD4(abs(d.x), abs(d.y), abs(d.z), abs(d.w)); s += d * d
                        i += 4
                    }
                    var ta = a.x + a.y + a.z + a.w, ts = s.x + s.y + s.z + s.w
                    while i < p.count { let d = Double(p[i]); ta += abs(d); ts += d * d; i += 1 }
                    sumAbs += ta; sumSquares += ts
                }
                count += x.count
            }
        }

        /// Scale and code range of the value's codes (x̂ = clamp(round(x/s), qmin, qmax)·s), or
        /// binary (x̂ = sign(x)·scale).
        public struct Point: Sendable, Equatable {
            public var scale: Float, qmin: Int, qmax: Int, binary: Bool
        }

        public func point(_ s: Statistics) -> Point {
            switch scheme {
            case .binary:
                return Point(scale: s.meanAbs, qmin: -1, qmax: 1, binary: true)
            case .hwgq:
                let sigma = Float((2 * s.meanSquare).squareRoot())
                return Point(scale: Quantizer.hwgqSteps[bits]! * sigma, qmin: 0, qmax: (1 << bits) - 1, binary: false)
            case .uniform, .pow2:
                var low = s.low
                if sign == .unsigned { low = max(low, 0) }
                if sign == .signed && low >= 0 { low = -max(abs(s.high), .leastNonzeroMagnitude) }
                let q = ActivationQuantizer(low: low, high: s.high, bits: bits)
                let (qmin, qmax) = q.codeRange
                var scale = q.scale
                if scheme == .pow2, scale > 0 { scale = Float(sign: .plus, exponent: Int(ceil(log2(Double(scale)))), significand: 1) }
                return Point(scale: scale, qmin: qmin, qmax: qmax, binary: false)
            }
        }
    }
}
