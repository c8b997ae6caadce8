import Foundation
import Kernels

/// A dyadic number b/2^c standing in for a real multiplier s (HAWQ-V3's requantization):
/// frexp(s) = (m, e) with m ∈ [0.5, 1), b = round(m·2^31), c = 31 − e (b rounding up to 2^31
/// is halved and c decremented). Applied to an Int32 accumulator y in Int64:
/// (y·b + 2^(c−1)) >> c, i.e. y·s rounded half up, exact except where y·s lies within y·s·2^−31
/// of a half.
public struct Dyadic: Sendable, Equatable, CustomStringConvertible {
    public var multiplier: Int64
    public var shift: Int

    public init(_ s: Double) throws {
        guard s.isFinite, s > 0 else { throw QuantizationError("dyadic: the scale must be a positive finite number, found \(s)") }
        let e = s.exponent + 1                     // s = m·2^e with m in [0.5, 1)
        let m = s / pow(2, Double(e))
        var b = Int64((m * 2147483648).rounded())
        var c = 31 - e
        if b == 2147483648 { b /= 2; c -= 1 }
        guard c >= 1, c <= 62 else { throw QuantizationError("dyadic: the scale \(s) is out of the representable range") }
        multiplier = b; shift = c
    }

    init(multiplier: Int64, shift: Int) { self.multiplier = multiplier; self.shift = shift }

    /// The multiplier 0 (every product 0), for channels whose scale is 0.
    public static let zero = Dyadic(multiplier: 0, shift: 1)

    /// y·s, rounded half up, in integers.
    @inline(__always)
    public func apply(_ y: Int64) -> Int64 { (y * multiplier + (1 << (shift - 1))) >> shift }

    public var value: Double { Double(multiplier) / pow(2, Double(shift)) }
    public var description: String { "\(multiplier)/2^\(shift)" }
}

extension Requantize.Scales {
    /// The kernels' form of per-channel dyadic numbers (one meaning every channel).
    init(_ dyadics: [Dyadic], channels: Int) {
        self.init(multipliers: dyadics.map(\.multiplier), shifts: dyadics.map(\.shift), channels: channels)
    }
}
