import Foundation
import Testing
import Network

/// McNemar's test on hand-made predictions: the counts, the difference and its paired error, and
/// the exact p-value against SciPy's binomtest (2 of 12 disagreements: 0.03857421875; 30 of 70:
/// 0.281978921793656); agreement everywhere gives p = 1; mismatched lengths are refused.
@Test func pairedComparisonCountsDisagreementsAndTestsThem() throws {
    // 100 examples, label 0: both right on 80, only A on 10, only B on 2, both wrong on 8.
    let labels = [Int](repeating: 0, count: 100)
    let a = (0..<100).map { $0 < 90 ? 0 : 1 }
    let b = (0..<100).map { $0 < 80 || (90..<92).contains($0) ? 0 : 1 }
    let c = try PairedComparison(predictionsA: a, predictionsB: b, labels: labels)
    #expect(c.correctA == 90 && c.correctB == 82 && c.onlyA == 10 && c.onlyB == 2)
    #expect(abs(c.difference - 0.08) < 1e-12 && abs(c.standardError - 12.0.squareRoot() / 100) < 1e-12)
    #expect(abs(c.pValue - 0.03857421875) < 1e-12)
    // 30 only A, 40 only B of 200.
    let l2 = [Int](repeating: 1, count: 200)
    let a2 = (0..<200).map { $0 < 30 ? 1 : $0 < 70 ? 0 : 1 }
    let b2 = (0..<200).map { $0 < 30 ? 0 : 1 }
    let c2 = try PairedComparison(predictionsA: a2, predictionsB: b2, labels: l2)
    #expect(c2.onlyA == 30 && c2.onlyB == 40)
    #expect(abs(c2.pValue - 0.281978921793656) < 1e-9)
    #expect(try PairedComparison(predictionsA: a, predictionsB: a, labels: labels).pValue == 1)
    #expect(throws: NetworkError.self) { try PairedComparison(predictionsA: a, predictionsB: [0], labels: labels) }
    #expect(throws: NetworkError.self) { try PairedComparison(predictionsA: [], predictionsB: [], labels: []) }
}
