import Testing
import MixedPrecision
import Tensors

/// The rounding that meets a cost target from learned marginals: on random instances (30
/// decisions over {2, 3, 4, 6, 8}, costs Σ c_d·w_d) it ends within the tolerance whenever one
/// step of the cheapest decision is finer than the band, moves only one candidate step at a
/// time from the argmax in the direction of the miss, and leaves a choice inside the band alone.
@Test func marginalRoundingMeetsTheTarget() throws {
    var rng = RandomGenerator(seed: 9)
    let widths = [2, 3, 4, 6, 8]
    for trial in 0..<20 {
        let n = 30
        let c = (0..<n).map { _ in 1 + Double(rng.uniform()) * 0.2 }
        let marginals = (0..<n).map { _ -> [Float] in
            let raw = (0..<widths.count).map { _ in rng.uniform() + 0.01 }, total = raw.reduce(0, +)
            return raw.map { $0 / total }
        }
        let argmax = marginals.map { m in widths[m.indices.max { m[$0] < m[$1] }!] }
        func cost(_ w: [Int]) -> Double { zip(c, w).reduce(0.0) { $0 + $1.0 * Double($1.1) } }
        let target = cost(Array(repeating: 2, count: n)) * (1.2 + 2.5 * Double(trial) / 20)
        let got = MarginalRounding.meet(argmax, widths: Array(repeating: widths, count: n), marginals: marginals, tolerance: 0.02) {
            (cost($0) - target) / target
        }
        #expect(abs(cost(got) - target) / target <= 0.02, "trial \(trial): \(cost(got)) vs \(target)")
        let up = cost(argmax) < target
        #expect(zip(got, argmax).allSatisfy { up ? $0 >= $1 : $0 <= $1 }, "trial \(trial): moves against the miss")
        let inside = MarginalRounding.meet(got, widths: Array(repeating: widths, count: n), marginals: marginals, tolerance: 0.02) { (cost($0) - target) / target }
        #expect(inside == got)
    }
}
