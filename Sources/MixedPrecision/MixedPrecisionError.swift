import Foundation

/// The one error type of MixedPrecision: bad input to an analysis, a sensitivity table, a cost
/// model, a predictor or a search (a message naming what was expected and what was found), or
/// a bit allocation that is malformed or fits no budget. Errors of the layers below (a model's
/// `NetworkError`, a quantizer's `QuantizationError`) pass through unchanged.
public enum MixedPrecisionError: Error, CustomStringConvertible, Equatable, Sendable {
    case invalid(String)
    /// A bit-allocation problem whose lists do not match.
    case malformed(String)
    /// No choice fits; `cheapest` is the least the budget can cost on its own.
    case infeasible(budget: String, limit: Double, cheapest: Double)

    public init(_ message: String) { self = .invalid(message) }

    public var message: String { description }

    public var description: String {
        switch self {
        case .invalid(let m): return m
        case .malformed(let m): return "bit allocation: \(m)"
        case let .infeasible(budget, limit, cheapest):
            return "no bit allocation fits the \(budget) budget \(Self.format(limit)): the cheapest possible is \(Self.format(cheapest))"
        }
    }

    static func format(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : String(format: "%.6g", x)
    }
}
