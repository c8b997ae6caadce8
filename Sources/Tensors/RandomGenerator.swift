import Foundation

/// A seeded pseudo-random generator (xoshiro256**, seeded through SplitMix64).
///
/// Every random choice in mpq takes one of these, so the same seed gives the same numbers on
/// every machine: normals come from Box–Muller on this stream, never from the system.
public struct RandomGenerator: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)
    private var spareNormal: Float?

    public init(seed: UInt64) {
        var z = seed
        func splitmix() -> UInt64 {
            z &+= 0x9E37_79B9_7F4A_7C15
            var x = z
            x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
            x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
            return x ^ (x >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    public mutating func next() -> UInt64 {
        let result = rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = rotl(s.3, 45)
        return result
    }

    @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1) with 24 random bits.
    public mutating func uniform() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// Standard normal by Box–Muller (both values used).
    public mutating func normal() -> Float {
        if let v = spareNormal { spareNormal = nil; return v }
        var u1 = Double(next() >> 11) * 0x1p-53
        if u1 < 1e-300 { u1 = 1e-300 }
        let u2 = Double(next() >> 11) * 0x1p-53
        let r = (-2 * Foundation.log(u1)).squareRoot()
        spareNormal = Float(r * Foundation.sin(2 * .pi * u2))
        return Float(r * Foundation.cos(2 * .pi * u2))
    }

    /// −1 or +1 with equal probability (Hutchinson's probe vectors).
    public mutating func rademacher() -> Float { next() & 1 == 0 ? -1 : 1 }

    /// The generator's whole state (a checkpoint continues the stream exactly from it).
    public struct Snapshot: Codable, Equatable, Sendable {
        public var words: [UInt64]
        public var spareNormal: Float?
    }

    public var snapshot: Snapshot {
        get { Snapshot(words: [s.0, s.1, s.2, s.3], spareNormal: spareNormal) }
    }

    /// A generator in the state `snapshot` recorded.
    public init(_ snapshot: Snapshot) throws {
        guard snapshot.words.count == 4, snapshot.words.contains(where: { $0 != 0 }) else {
            throw TensorError.invalidArgument("random generator: a snapshot holds 4 words, not all zero; found \(snapshot.words)")
        }
        s = (snapshot.words[0], snapshot.words[1], snapshot.words[2], snapshot.words[3])
        spareNormal = snapshot.spareNormal
    }
}

/// Distributions a random tensor can be drawn from.
public enum Distribution: Sendable, Equatable {
    case uniform(low: Float, high: Float)
    case normal(mean: Float, std: Float)
    case rademacher
}

extension Tensor {
    /// A tensor of independent draws.
    public static func random(_ shape: [Int], _ distribution: Distribution,
                              using rng: inout RandomGenerator) throws -> Tensor {
        let n = try elementCount(of: shape)
        var v = [Float](repeating: 0, count: n)
        switch distribution {
        case let .uniform(lo, hi):
            guard lo <= hi, lo.isFinite, hi.isFinite else {
                throw TensorError.invalidArgument("uniform: expected finite low ≤ high, found \(lo) and \(hi)")
            }
            for i in 0..<n { v[i] = lo + (hi - lo) * rng.uniform() }
        case let .normal(mean, std):
            guard std >= 0, std.isFinite, mean.isFinite else {
                throw TensorError.invalidArgument("normal: expected finite mean and std ≥ 0, found \(mean) and \(std)")
            }
            for i in 0..<n { v[i] = mean + std * rng.normal() }
        case .rademacher:
            for i in 0..<n { v[i] = rng.rademacher() }
        }
        return Tensor(uncheckedShape: shape, scalars: v)
    }
}
