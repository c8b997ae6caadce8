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

/// The search space of `additiveSpace(seed:)` under the budget of every layer at
/// `choices[width]`, and its additive accuracy.
private func additiveSearch(seed: UInt64, width: Int) throws -> (space: Evolution.Space, accuracy: ([Int]) -> Double) {
    let (choices, costs, loss) = additiveSpace(seed: seed)
    let space = try Evolution.Space(choices: choices, costs: costs, budget: costs.reduce(0) { $0 + $1[width] })
    return (space, { bits in 0.95 - zip(bits, loss).reduce(0) { $0 + $1.1[choices.firstIndex(of: $1.0)!] } })
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
    let (space, accuracy) = try additiveSearch(seed: 6, width: 3)
    var o = Evolution.Options(); o.iterations = 10; o.topK = 8; o.seed = 1
    // Measured: the prediction with layer 0's width penalised, so the predicted order is not the measured one.
    let r = try Evolution(options: o).run(space, predict: { $0.map(accuracy) }, measure: { $0.map { accuracy($0) - ($0[0] == 8 ? 0.1 : 0) } })
    #expect(r.best.measured == r.measured.map { $0.measured! }.max())
    #expect(r.measured.first?.bits == r.best.bits)
}

/// Given `rank` (a second score of what was measured), the best ranked is returned instead of the
/// best measured and every candidate carries its score, ordered by it; a rank that gives fewer
/// scores than asked (Ctrl-C) falls back to the accuracies and marks the result interrupted.
@Test func evolutionChoosesByRankWhenGiven() throws {
    let (space, accuracy) = try additiveSearch(seed: 6, width: 3)
    var o = Evolution.Options(); o.iterations = 10; o.topK = 8; o.seed = 1
    // The rank prefers narrow first layers: not the accuracy's order.
    func rank(_ points: [Evolution.Point]) -> [Double] { points.map { -Double($0.bits[0]) + accuracy($0.bits) } }
    let predict: ([Evolution.Point]) throws -> [Double] = { $0.map { accuracy($0.bits) } }
    let r = try Evolution(options: o).run(space, predictPoints: predict, measurePoints: predict, rank: { rank($0) })
    let scores = r.measured.map { $0.score! }
    #expect(r.measured.count > 2 && scores == scores.sorted(by: >) && r.best.score == scores[0] && !r.interrupted)
    #expect(r.best.bits == r.measured.max { rank([Evolution.Point(bits: $0.bits)])[0] < rank([Evolution.Point(bits: $1.bits)])[0] }!.bits)
    let plain = try Evolution(options: o).run(space, predictPoints: predict, measurePoints: predict)
    #expect(Set(plain.measured.map(\.bits)) == Set(r.measured.map(\.bits)) && plain.measured.allSatisfy { $0.score == nil } && plain.best.bits != r.best.bits)
    let cut = try Evolution(options: o).run(space, predictPoints: predict, measurePoints: predict, rank: { Array(rank($0).prefix(1)) })
    #expect(cut.interrupted && cut.best.bits == plain.best.bits && cut.best.score == nil)
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
    // Draws that run out before enough policies fit: an error saying how many were found.
    #expect {
        try space.random(count: 50, seed: 2, maxDraws: 20)
    } throws: { ($0 as? MixedPrecisionError)?.message.contains("of 20 uniform draws met the budget") == true }
    #expect(throws: MixedPrecisionError.self) { try Evolution.Space(choices: [2, 9], costs: costs, budget: 1) }
    var bad = o; bad.parents = 20
    #expect(throws: MixedPrecisionError.self) { try Evolution(options: bad).run(space, predict: { $0.map { _ in 1 } }, measure: { $0.map { _ in 1 } }) }
    #expect(throws: MixedPrecisionError.self) { try Evolution(options: o).run(space, predict: { $0.map { _ in .nan } }, measure: { $0.map { _ in 1 } }) }
}

/// A measurement cut short (Ctrl-C during it: fewer accuracies than asked) ends the search with
/// what was measured, marked interrupted; cut before anything was measured, it is an error.
@Test func evolutionEndsWithWhatWasMeasuredWhenInterrupted() throws {
    let (space, accuracy) = try additiveSearch(seed: 8, width: 2)
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

/// Rounds: a predictor that is optimistic about layer 0 at 8 bits leads a one-round search to
/// policies the measurements rate worse; with rounds, `refit` sees every policy measured so far
/// after each round (here it returns the true surface, as a refined predictor would learn it), and
/// the search then ends within 0.5% of the exact optimum. Rounds without a refit are refused.
@Test func evolutionRoundsRefitThePredictorOnWhatWasMeasured() throws {
    let (choices, costs, loss) = additiveSpace(seed: 9)
    let budget = costs.reduce(0) { $0 + $1[2] }
    func accuracy(_ bits: [Int]) -> Double { 0.95 - zip(bits, loss).reduce(0) { $0 + $1.1[choices.firstIndex(of: $1.0)!] } - (bits[0] == 8 ? 0.05 : 0) }
    func optimistic(_ bits: [Int]) -> Double { accuracy(bits) + (bits[0] == 8 ? 0.1 : 0) }
    let space = try Evolution.Space(choices: choices, costs: costs, budget: budget)
    var o = Evolution.Options(); o.iterations = 40; o.seed = 4
    let fixed = try Evolution(options: o).run(space, predict: { $0.map(optimistic) }, measure: { $0.map(accuracy) })
    o.rounds = 3
    var seen: [Int] = [], lines: [String] = []
    let r = try Evolution(options: o).run(space, predictPoints: { $0.map { optimistic($0.bits) } }, measurePoints: { $0.map { accuracy($0.bits) } },
                                          progress: { lines.append($0.line) },
                                          refit: { points, accuracies in
                                              seen.append(points.count)
                                              #expect(zip(points, accuracies).allSatisfy { accuracy($0.bits) == $1 })
                                              return { $0.map { accuracy($0.bits) } }
                                          })
    let problem = BitAllocation(layers: (0..<12).map { "l\($0)" }, choices: Array(repeating: choices, count: 12),
                                objective: loss.enumerated().map { l, row in row.enumerated().map { $1 + (l == 0 && $0 == 4 ? 0.05 : 0) } },
                                budgets: [.init(name: "size", cost: costs, limit: budget)])
    let optimum = 0.95 - (try problem.solveExactly()).objective
    print("rounds: fixed predictor \(fixed.best.measured!), three rounds \(r.best.measured!), optimum \(optimum)")
    #expect(fixed.best.bits[0] == 8 && r.best.bits[0] != 8)
    #expect(0.95 - r.best.measured! <= (0.95 - optimum) * 1.005 && r.best.measured! > fixed.best.measured!)
    #expect(seen.count == 2 && seen[0] >= o.topK && seen[1] > seen[0])
    #expect(lines.count == 121 && lines[0].hasPrefix("generation 0/120 (round 1/3)") && lines[120].hasPrefix("generation 120/120 (round 3/3)"))
    #expect(throws: MixedPrecisionError.self) { try Evolution(options: o).run(space, predict: { $0.map(optimistic) }, measure: { $0.map(accuracy) }) }
}

/// Searching with a predictor and measured samples: every policy is measured once (refits and the
/// final choice reuse the samples, which come back by point); a divergence-target predictor is
/// refined on the measured divergences and its progress line shows divergences; select: .divergence
/// returns the measured policy of least divergence.
@Test func evolutionWithAPredictorMeasuresEachPolicyOnce() throws {
    let (space, accuracy) = try additiveSearch(seed: 6, width: 2)
    // The divergence: the accuracy drop, doubled when layer 0 is below 8 bits (not the accuracy's order).
    func sample(_ p: Evolution.Point) -> PolicySamples.Sample {
        PolicySamples.Sample(bits: p.bits, accuracy: accuracy(p.bits), divergence: (0.96 - accuracy(p.bits)) * (p.bits[0] == 8 ? 1 : 2))
    }
    let training = try space.randomPoints(count: 60, seed: 4).map(sample)
    var mo = AccuracyMLP.Options(); mo.hidden = 32; mo.epochs = 100; mo.seed = 1; mo.target = .divergence
    let predictor = try AccuracyMLP.train(training, choices: space.choices, options: mo)
    var o = Evolution.Options(); o.iterations = 10; o.topK = 6; o.seed = 2; o.rounds = 2
    var asked: [Evolution.Point] = [], lines: [String] = []
    let (r, measured) = try Evolution(options: o).run(space, predictor: predictor, measure: { asked += $0; return $0.map(sample) },
                                                      select: .divergence, progress: { lines.append($0.line) })
    #expect(Set(asked).count == asked.count && asked.count == r.measured.count && Set(measured.keys) == Set(asked))
    let shown = lines[0].components(separatedBy: " · ").first { $0.hasPrefix("best predicted ") }
    #expect(shown?.hasPrefix("best predicted divergence ") == true && shown?.hasSuffix("%") == false, "\(lines[0])")
    let least = r.measured.min { measured[Evolution.Point(bits: $0.bits)]!.divergence! < measured[Evolution.Point(bits: $1.bits)]!.divergence! }!
    #expect(r.best.bits == least.bits && r.best.score == -log(measured[Evolution.Point(bits: least.bits)]!.divergence!))
    // A search that measures no divergence cannot refine a divergence predictor.
    #expect(throws: MixedPrecisionError.self) {
        try Evolution(options: o).run(space, predictor: predictor, measure: { $0.map { PolicySamples.Sample(bits: $0.bits, accuracy: accuracy($0.bits)) } })
    }
}

/// A predictor refined on measured policies moves its predictions of them toward what was
/// measured; one read from a file has no samples to refine with and is refused.
@Test func accuracyPredictorRefinesOnMeasuredPolicies() throws {
    var rng = RandomGenerator(seed: 11)
    let choices = [2, 4, 8]
    func truth(_ b: [Int]) -> Double { 0.5 + 0.05 * b.reduce(0) { $0 + log2(Double($1)) } }
    let samples = (0..<40).map { _ -> PolicySamples.Sample in
        let b = (0..<4).map { _ in choices[Int(rng.next() % 3)] }
        return PolicySamples.Sample(bits: b, accuracy: truth(b))
    }
    var o = AccuracyMLP.Options(); o.hidden = 16; o.epochs = 200; o.seed = 1
    let p = try AccuracyMLP.train(samples, choices: choices, options: o)
    // Policies the truth rates lower than the samples taught (a region the predictor is optimistic about).
    let surprises = [[8, 8, 2, 2], [8, 2, 8, 2]].map { PolicySamples.Sample(bits: $0, accuracy: truth($0) - 0.2) }
    let before = try p.predict(surprises.map(\.bits)), after = try p.refined(with: surprises).predict(surprises.map(\.bits))
    print("refined: before \(before), after \(after), measured \(surprises.map(\.accuracy))")
    for (i, s) in surprises.enumerated() { #expect(abs(after[i] - s.accuracy) < abs(before[i] - s.accuracy) / 2) }
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-refine-\(getpid()).npz").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    try p.save(to: path)
    #expect(throws: MixedPrecisionError.self) { try AccuracyMLP.load(path).refined(with: surprises) }
}
