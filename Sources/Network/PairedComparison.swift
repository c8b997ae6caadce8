import Foundation

/// Two classifiers compared on the same examples (McNemar's test): only the examples one gets
/// right and the other wrong tell them apart. With b such examples for the first and c for the
/// second, the difference in accuracy is (b − c)/n, its standard error √(b + c)/n (the paired
/// one, far smaller than two independent accuracies' when the classifiers mostly agree), and the
/// exact two-sided p-value is P(|B − C| ≥ |b − c|) for B ~ Binomial(b + c, ½): the chance of a
/// split at least this uneven if neither classifier were better.
public struct PairedComparison: Sendable, Equatable {
    public let count: Int
    /// Examples each classifier gets right.
    public let correctA: Int, correctB: Int
    /// Examples only the first (only the second) gets right.
    public let onlyA: Int, onlyB: Int

    /// From each classifier's predicted class per example and the labels (equal lengths, ≥ 1).
    public init(predictionsA: [Int], predictionsB: [Int], labels: [Int]) throws {
        guard !labels.isEmpty, predictionsA.count == labels.count, predictionsB.count == labels.count else {
            throw NetworkError("paired comparison: expected one prediction of each classifier per label (\(labels.count) labels), found \(predictionsA.count) and \(predictionsB.count)")
        }
        var a = 0, b = 0, onlyA = 0, onlyB = 0
        for i in labels.indices {
            let ra = predictionsA[i] == labels[i], rb = predictionsB[i] == labels[i]
            if ra { a += 1 }
            if rb { b += 1 }
            if ra && !rb { onlyA += 1 }
            if rb && !ra { onlyB += 1 }
        }
        count = labels.count; correctA = a; correctB = b; self.onlyA = onlyA; self.onlyB = onlyB
    }

    public var accuracyA: Double { Double(correctA) / Double(count) }
    public var accuracyB: Double { Double(correctB) / Double(count) }
    /// accuracyA − accuracyB.
    public var difference: Double { Double(onlyA - onlyB) / Double(count) }
    /// The paired standard error of `difference`, √(onlyA + onlyB)/n.
    public var standardError: Double { Double(onlyA + onlyB).squareRoot() / Double(count) }

    /// McNemar's exact two-sided p-value (1 when the classifiers never disagree on correctness).
    public var pValue: Double {
        let n = onlyA + onlyB, k = min(onlyA, onlyB)
        guard n > 0 else { return 1 }
        // P(B ≤ k) for B ~ Binomial(n, ½), terms in logs (n may be thousands).
        let logHalfN = Double(n) * log(0.5)
        var tail = 0.0
        for i in 0...k { tail += exp(lgamma(Double(n + 1)) - lgamma(Double(i + 1)) - lgamma(Double(n - i + 1)) + logHalfN) }
        return min(1, 2 * tail)
    }
}
