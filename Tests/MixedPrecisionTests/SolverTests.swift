import Foundation
import Testing
import TestSupport
import MixedPrecision
import Network

/// HAWQ-V3's published ILP for ResNet-18: the exact solver returns all nine configurations.
@Test(arguments: ["modelsize", "bops", "latency"], [0.25, 0.5, 0.75])
func hawqV3ResNet18Configurations(kind: String, fraction: Double) throws {
    let data = try Data(contentsOf: URL(fileURLWithPath: "\(referenceDirectory)/hawq_v3_resnet18_ilp.json"))
    let j = try JSONSerialization.jsonObject(with: data) as! [String: Any]
    let layers = j["layers"] as! [String]
    let trace = j["hessian_trace"] as! [Double]
    let dw8 = j["delta_weight_sq_8bit"] as! [Double], dw4 = j["delta_weight_sq_4bit"] as! [Double]
    let params = j["params_millions"] as! [Double], bops = j["bops_millions_fp"] as! [Double]
    let lat4 = j["latency_ms_int4"] as! [Double], lat8 = j["latency_ms_int8"] as! [Double]
    let n = layers.count
    let cost: [[Double]] = (0..<n).map { l in
        switch kind {
        case "modelsize": return [params[l] * 4 / 8, params[l] * 8 / 8]
        case "bops": return [bops[l] / 64, bops[l] / 16]
        default: return [lat4[l], lat8[l]]
        }
    }
    let all4 = cost.reduce(0) { $0 + $1[0] }, all8 = cost.reduce(0) { $0 + $1[1] }
    let ties = (j["ties"] as! [[String]]).map { pair in pair.map { layers.firstIndex(of: $0)! } }
    let problem = BitAllocation(layers: layers, choices: Array(repeating: [4, 8], count: n),
                                objective: (0..<n).map { [trace[$0] * dw4[$0], trace[$0] * dw8[$0]] },
                                budgets: [.init(name: kind, cost: cost, limit: all4 + fraction * (all8 - all4))], ties: ties)
    let expected = (j["expected"] as! [String: [Int]])["\(kind)_\(fraction)"]!
    #expect(try problem.solveExactly().bits == expected)
    #expect(try problem.solveByEnumeration().bits == expected)
}

/// Random instances (≤ 10 layers × ≤ 5 widths, 1–3 budgets, ties and pins): branch and bound
/// equals enumeration; the Pareto frontier's point under the budget is optimal; the greedy is feasible, never better than the optimum, and its gap is
/// reported.
@Test func exactAndGreedyAgainstEnumeration() throws {
    var state: UInt64 = 12345
    func next() -> Double {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Double(state >> 11) / Double(1 << 53)
    }
    var solved = 0, greedyOptimal = 0, worstGap = 0.0, infeasible = 0, paretoChecked = 0
    for _ in 0..<1200 {
        let widths = [2, 3, 4, 6, 8].shuffled(using: &SeededShuffle.shared).prefix(2 + Int(next() * 4)).sorted()
        // Up to 10 layers, as many as keep enumeration under ~250,000 combinations.
        let most = min(10, Int(log(250_000.0) / log(Double(widths.count))))
        let n = 2 + Int(next() * Double(most - 1))
        let choices = (0..<n).map { _ in widths }
        let objective = (0..<n).map { _ in widths.map { b in next() * 10 / Double(b * b) } }
        let nb = 1 + Int(next() * 3)
        let budgets: [BitAllocation.Budget] = (0..<nb).map { b in
            let cost = (0..<n).map { _ in let scale = 0.5 + next(); return widths.map { Double($0) * scale } }
            let lo = cost.reduce(0) { $0 + $1.min()! }, hi = cost.reduce(0) { $0 + $1.max()! }
            return .init(name: "b\(b)", cost: cost, limit: lo + next() * (hi - lo) * 1.05 - 0.02 * (hi - lo))
        }
        var ties: [[Int]] = []
        if n > 3 && next() < 0.3 { ties = [[0, n - 1]] }
        let problem = BitAllocation(layers: (0..<n).map { "l\($0)" }, choices: choices, objective: objective, budgets: budgets, ties: ties)
        let truth: BitAllocation.Solution
        do { truth = try problem.solveByEnumeration() } catch { infeasible += 1; continue }
        let exact = try problem.solveExactly()
        #expect(abs(exact.objective - truth.objective) <= 1e-9 * max(1, truth.objective))
        // The frontier of the first budget: with one budget its best point under the limit is
        // the optimum; with several, no feasible solution beats it on the first budget alone.
        let frontier = try problem.paretoFrontier()
        #expect(zip(frontier, frontier.dropFirst()).allSatisfy { $0.costs[0] < $1.costs[0] && $0.objective > $1.objective })
        if let point = frontier.last(where: { $0.costs[0] <= budgets[0].limit + 1e-9 * max(1, budgets[0].limit) }) {
            if nb == 1 { #expect(abs(point.objective - truth.objective) <= 1e-9 * max(1, truth.objective)); paretoChecked += 1 }
            else { #expect(point.objective <= truth.objective + 1e-9 * max(1, truth.objective)) }
        }
        if let greedy = try? problem.solveGreedily() {
            #expect(greedy.objective >= truth.objective - 1e-9)
            #expect(zip(greedy.costs, budgets).allSatisfy { $0 <= $1.limit + 1e-6 })
            let gap = (greedy.objective - truth.objective) / max(truth.objective, 1e-12)
            worstGap = max(worstGap, gap)
            if gap < 1e-9 { greedyOptimal += 1 }
        }
        solved += 1
    }
    #expect(solved >= 1000)
    #expect(paretoChecked >= 200)
    print("bit allocation: \(solved) random instances, exact = enumeration on all, Pareto optimal on the \(paretoChecked) with one budget; greedy optimal on \(greedyOptimal), worst gap \(String(format: "%.1f%%", worstGap * 100)); \(infeasible) infeasible budgets refused")
}

/// A deterministic generator for `shuffled(using:)`.
struct SeededShuffle: RandomNumberGenerator {
    nonisolated(unsafe) static var shared = SeededShuffle()
    var state: UInt64 = 99
    mutating func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state }
}

@Test func infeasibleBudgetsNameTheCheapestCost() {
    let p = BitAllocation(layers: ["a", "b"], choices: [[4, 8], [4, 8]], objective: [[2, 1], [2, 1]],
                          budgets: [.init(name: "size", cost: [[4, 8], [4, 8]], limit: 7)])
    #expect(throws: MixedPrecisionError.infeasible(budget: "size", limit: 7, cheapest: 8)) { try p.solveExactly() }
    let bad = BitAllocation(layers: ["a"], choices: [[4]], objective: [[.nan]], budgets: [])
    #expect(throws: MixedPrecisionError.self) { try bad.solveExactly() }
}

/// The exact solver on instances too large to enumerate (20–50 layers × 5 widths, one or two
/// budgets with small integer costs, HAWQ-shaped sensitivities), against dynamic programming
/// over every reachable pair of costs — a method that shares nothing with it.
@Test func exactSolverAgainstCostTableDP() throws {
    var state: UInt64 = 777
    func next() -> Double {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Double(state >> 11) / Double(1 << 53)
    }
    let widths = [2, 3, 4, 6, 8]
    for trial in 0..<40 {
        let n = 20 + Int(next() * 31), nb = 1 + trial % 2
        let objective = (0..<n).map { _ in
            let t = pow(10, next() * 3)
            return widths.map { t * pow(4, -Double($0)) * (1 + 0.3 * next()) }
        }
        let scales = (0..<nb).map { _ in (0..<n).map { _ in 1 + Int(next() * 3) } }
        let costs = (0..<nb).map { b in (0..<n).map { l in widths.map { Double($0 * scales[b][l]) } } }
        let limits = (0..<nb).map { b in
            let lo = costs[b].reduce(0) { $0 + $1[0] }, hi = costs[b].reduce(0) { $0 + $1[4] }
            return (lo + (0.25 + 0.3 * next()) * (hi - lo)).rounded(.down)
        }
        let problem = BitAllocation(layers: (0..<n).map { "l\($0)" }, choices: Array(repeating: widths, count: n), objective: objective,
                                    budgets: (0..<nb).map { .init(name: "b\($0)", cost: costs[$0], limit: limits[$0]) })
        // table[c0 * (B1 + 1) + c1]: least summed sensitivity at exactly those costs.
        let b0 = Int(limits[0]), b1 = nb > 1 ? Int(limits[1]) : 0
        var table = [Double](repeating: .infinity, count: (b0 + 1) * (b1 + 1))
        table[0] = 0
        for l in 0..<n {
            var next = [Double](repeating: .infinity, count: table.count)
            for c0 in 0...b0 {
                for c1 in 0...b1 where table[c0 * (b1 + 1) + c1] < .infinity {
                    for o in widths.indices {
                        let d0 = c0 + Int(costs[0][l][o]), d1 = c1 + (nb > 1 ? Int(costs[1][l][o]) : 0)
                        guard d0 <= b0, d1 <= b1 else { continue }
                        next[d0 * (b1 + 1) + d1] = min(next[d0 * (b1 + 1) + d1], table[c0 * (b1 + 1) + c1] + objective[l][o])
                    }
                }
            }
            table = next
        }
        let truth = table.min()!
        let exact = try problem.solveExactly()
        #expect(abs(exact.objective - truth) <= 1e-9 * truth, "trial \(trial): \(n) layers, \(nb) budgets")
        #expect(zip(exact.costs, limits).allSatisfy { $0 <= $1 + 1e-9 })
    }
}

/// `Search` is what the prompt's `search` runs: budgets by kind, ends, ties and a solver, over a
/// sensitivity table. Its answer is the direct problem's, and what it cannot do it says.
@Test func searchIsTheLibrarysCall() throws {
    let model = try Zoo.make("mlp")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_mlp.npz")
    let data = try FashionMNIST.load(.train, limit: 32)
    let table = try SensitivityTable.measured(.mse, model: model, images: data.images, bits: [2, 4, 8])
    var search = Search(budgets: [.averageBits(4)])
    let exact = try search.run(table, model: model)
    #expect(exact.policy.averageBits <= 4)
    let direct = try BitAllocation(model: model, table: table, budgets: [(.size, try CostModel.size.uniformCost(model, bits: 1) * 4)],
                                   tieSharedInputs: true, pinned: [:]).solveExactly()
    #expect(exact.solution == direct && exact.gap == nil)
    search.solver = .greedy
    let greedy = try search.run(table, model: model)
    #expect(greedy.gap.map { $0 >= 0 } == true)
    search.ends = 8  // fc1 holds 85% of the weights: 8 bits there cannot average 4
    #expect(throws: MixedPrecisionError.self) { try search.run(table, model: model) }
    #expect(throws: MixedPrecisionError.self) { try Search(budgets: []).run(table, model: model) }
    // A BitOps budget with the activations at a fixed width counts Σ MACs·b_w·a: the budget of
    // uniform 4-bit weights under 8-bit activations admits exactly that cost, not Σ MACs·4·4.
    let macs = Double(model.layers.reduce(0) { $0 + $1.macs })
    var fixed = Search(budgets: [.bitOps(macs * 4 * 8)])
    fixed.activationBits = 8
    let r = try fixed.run(table, model: model)
    #expect(r.solution.costs[0] <= macs * 32 * (1 + 1e-12))
    #expect(r.solution.costs[0] == zip(model.layers, r.solution.bits).reduce(0.0) { $0 + Double($1.0.macs * $1.1 * 8) })
    let free = try Search(budgets: [.bitOps(macs * 4 * 8)]).run(table, model: model)
    #expect(free.solution.costs[0] == zip(model.layers, free.solution.bits).reduce(0.0) { $0 + Double($1.0.macs * $1.1 * $1.1) })
}
