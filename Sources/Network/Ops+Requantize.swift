import Foundation
import Tensors

/// The integer engine's conversions (see `Requantization`), element by element in Double or
/// Int64, so a simulation that carries codes in floats reproduces the engine's integers exactly.
enum RequantizeOp {
    static func evaluate(_ x: Tensor, _ r: Requantization, node: String) throws -> Tensor {
        let channels = x.rank >= 2 ? x.shape[1] : 1
        let inner = x.rank >= 2 ? x.shape.dropFirst(2).reduce(1, *) : x.count
        func perChannel<T>(_ values: [T], _ what: String) throws -> (Int) -> T {
            guard values.count == 1 || values.count == channels else {
                throw NetworkError("node '\(node)' (Requantize): \(values.count) \(what) for \(channels) channels of \(x.shape)")
            }
            return values.count == 1 ? { _ in values[0] } : { values[($0 / inner) % channels] }
        }
        let (lo, hi) = (Double(r.lo), Double(r.hi))
        switch r.rule {
        case let .divide(scale, rounding):
            guard scale > 0, scale.isFinite else { throw NetworkError("node '\(node)' (Requantize): the scale must be positive, found \(scale)") }
            let rule: FloatingPointRoundingRule = rounding == .halfToEven ? .toNearestOrEven : .toNearestOrAwayFromZero
            return x.map { Float(min(max((Double($0) / scale).rounded(rule), lo), hi)) }
        case .sign:
            return x.map { $0 >= 0 ? 1 : -1 }
        case .multiply(let scales):
            let scale = try perChannel(scales, "scales")
            var out = x
            out.withUnsafeMutableScalars { p in for i in p.indices { p[i] = Float(Double(p[i]) * scale(i)) } }
            return out
        case let .dyadic(multipliers, shifts):
            let (m, s) = (try perChannel(multipliers, "multipliers"), try perChannel(shifts, "shifts"))
            guard shifts.allSatisfy({ (1...62).contains($0) }), multipliers.allSatisfy({ abs($0) < 1 << 32 }) else {
                throw NetworkError("node '\(node)' (Requantize): dyadic multipliers need |m| < 2^32 and shifts in 1…62")
            }
            var out = x
            var bad: Float? = nil
            out.withUnsafeMutableScalars { p in
                for i in p.indices {
                    let v = p[i]
                    guard v.rounded() == v, abs(v) < 16_777_216 else { bad = v; break }
                    let shift = Int64(s(i))
                    let q = (Int64(v) * m(i) + (1 << (shift - 1))) >> shift
                    p[i] = Float(min(max(q, r.lo), r.hi))
                }
            }
            if let bad {
                throw NetworkError("node '\(node)' (Requantize): expected integer sums below 2^24 (exact in Float32), found \(bad)")
            }
            return out
        }
    }
}
