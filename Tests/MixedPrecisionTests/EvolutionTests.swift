import Foundation
import Testing
import MixedPrecision
import Network
import Tensors

/// A space whose predicted accuracy is additive, so the exact optimum under the budget is known
/// from the branch-and-bound solver: 12 layers × 5 widths, every cost ≤ the budget.
private func additiveSpace(seed: UInt64) -> (choices: [Int], costs: [[Double]], loss: [[Double]]) {
    var rng = RandomGenerator(seed: seed)
    let choices = [2, 3, 4, 6, 8]
    let size = (0..<12).map { _ in Double(rng.uniform()) * 900 + 100 }
    let costs = size.map { s in choices.map { s * Double($0) } }
    let loss = size.map { _ in let w = Double(rng.uniform()) * 0.04 + 0.002; return choices.map { w * pow(2, Double(8 - $0)) / 8 } }
    return (choices, costs, loss)
}

/// The search ends within 0.5% (of the accuracy drop) of the exact optimum on an additive
/// surface, every generation's best and the returned policy within the budget; the top-k are
/// measured and the best measured returned; the same seed gives the same policy.
@Test func evolutionFindsTheOptimumOfAnAdditiveSurface() throws {
    let (choices, costs, loss) = additiveSpace(seed: 5)
    let budget = costs.reduce(0) { $0 + $1[2] }  // every layer at 4 bits
    func accuracy(_ bits: [Int]) -> Double { 0.95 - zip(bits, loss).reduce(0) { $0 + $1.1[choices.firstIndex(of: $1.0)!] } }
    let problem = BitAllocation(layers: (0..<12).map { "l\($0)" }, choices: Array(repeating: choices, count: 12), objective: loss,
                                    budgets: [.init(name: "size", cost: costs, limit: budget)])
    let exact = try problem.solveExactly()
    let space = try Evolution.Space(choices: choices, costs: costs, budget: budget)
    var o = Evolution.Options(); o.iterations = 60; o.seed = 3
    var measured = 0, lines: [String] = []
    let r = try Evolution(options: o).run(space, predict: { $0.map(accuracy) }, measure: { measured += $0.count; return $0.map(accuracy) },
                                          progress: { lines.append($0.line) })
    let optimum = 0.95 - exact.objective
    print("evolution: \(r.best.predicted) vs optimum \(optimum); \(r.predictions) predictions, \(measured) measured")
    #expect(0.95 - r.best.measured! <= (0.95 - optimum) * 1.005)
    #expect(r.best.cost <= budget && r.history.allSatisfy { $0.budgetUse <= 1 })
    #expect(lines.count == 61 && lines[0].hasPrefix("generation 0/60 · best predicted"))
    #expect(r.measured.count >= o.topK && r.measured.count == measured)
    let again = try Evolution(options: o).run(space, predict: { $0.map(accuracy) }, measure: { $0.map(accuracy) })
    #expect(again.best.bits == r.best.bits)
}

/// The predictor ranks, the measurements decide: a predictor that prefers a policy the
/// measurements rate worse does not get its favourite returned.
@Test func evolutionReturnsTheBestMeasuredFinalist() throws {
    let (choices, costs, loss) = additiveSpace(seed: 6)
    let budget = costs.reduce(0) { $0 + $1[3] }
    func accuracy(_ bits: [Int]) -> Double { 0.95 - zip(bits, loss).reduce(0) { $0 + $1.1[choices.firstIndex(of: $1.0)!] } }
    let space = try Evolution.Space(choices: choices, costs: costs, budget: budget)
    var o = Evolution.Options(); o.iterations = 10; o.topK = 8; o.seed = 1
    // Measured: the prediction with layer 0's width penalised, so the predicted order is not the measured one.
    let r = try Evolution(options: o).run(space, predict: { $0.map(accuracy) }, measure: { $0.map { accuracy($0) - ($0[0] == 8 ? 0.1 : 0) } })
    #expect(r.best.measured == r.measured.map { $0.measured! }.max())
    #expect(r.measured.first?.bits == r.best.bits)
}

/// Pins and ties hold in every candidate; a budget below the cheapest policy is an error naming
/// that cost; random candidates all meet the budget.
@Test func evolutionKeepsPinsTiesAndBudget() throws {
    let (choices, costs, _) = additiveSpace(seed: 7)
    let cheapest = costs.enumerated().reduce(0.0) { $0 + ($1.offset == 0 || $1.offset == 11 ? $1.element[4] : $1.element[0]) }
    #expect {
        try Evolution.Space(choices: choices, costs: costs, budget: cheapest * 0.99, pinned: [0: 4, 11: 4]).checkFeasible()
    } throws: { ($0 as? MixedPrecisionError)?.message.contains(String(format: "%.6g", cheapest)) == true }
    let space = try Evolution.Space(choices: choices, costs: costs, budget: cheapest * 1.6, pinned: [0: 4, 11: 4], ties: [[3, 5]])
    var seen: [[Int]] = []
    var o = Evolution.Options(); o.iterations = 5; o.population = 20; o.parents = 5
    _ = try Evolution(options: o).run(space, predict: { seen += $0; return $0.map { Double($0.reduce(0, +)) } }, measure: { $0.map { _ in 0.5 } })
    #expect(!seen.isEmpty && seen.allSatisfy { $0[0] == 8 && $0[11] == 8 && $0[3] == $0[5] })
    let seenFit = try seen.allSatisfy { try space.cost(bits: $0) <= space.budget }
    #expect(seenFit)
    let random = try space.random(count: 50, seed: 2)
    let randomFits = try random.allSatisfy { try space.cost(bits: $0) <= space.budget && $0[3] == $0[5] }
    #expect(random.count == 50 && randomFits)
    #expect(throws: MixedPrecisionError.self) { try Evolution.Space(choices: [2, 9], costs: costs, budget: 1) }
    var bad = o; bad.parents = 20
    #expect(throws: MixedPrecisionError.self) { try Evolution(options: bad).run(space, predict: { $0.map { _ in 1 } }, measure: { $0.map { _ in 1 } }) }
    #expect(throws: MixedPrecisionError.self) { try Evolution(options: o).run(space, predict: { $0.map { _ in .nan } }, measure: { $0.map { _ in 1 } }) }
}

/// A measurement cut short (Ctrl-C during it: fewer accuracies than asked) ends the search with
/// what was measured, marked interrupted; cut before anything was measured, it is an error.
@Test func evolutionEndsWithWhatWasMeasuredWhenInterrupted() throws {
    let (choices, costs, loss) = additiveSpace(seed: 8)
    let budget = costs.reduce(0) { $0 + $1[2] }
    func accuracy(_ bits: [Int]) -> Double { 0.95 - zip(bits, loss).reduce(0) { $0 + $1.1[choices.firstIndex(of: $1.0)!] } }
    let space = try Evolution.Space(choices: choices, costs: costs, budget: budget)
    var o = Evolution.Options(); o.iterations = 30; o.seed = 2
    var calls = 0
    let r = try Evolution(options: o).run(space, predict: { $0.map(accuracy) }, measure: { p in
        calls += 1
        return calls < 3 ? p.map(accuracy) : []
    })
    #expect(r.interrupted && r.history.count < 31 && !r.measured.isEmpty && r.best.measured != nil)
    #expect(throws: MixedPrecisionError.self) {
        try Evolution(options: o).run(space, predict: { $0.map(accuracy) }, measure: { _ in [] })
    }
}
