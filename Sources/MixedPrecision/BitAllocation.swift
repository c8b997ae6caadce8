import Foundation

/// A bit-allocation problem: one choice of bits per layer, minimise the summed sensitivity
/// subject to any number of linear budgets (size, BitOps, latency), with tied layers (a 1×1
/// shortcut takes its main-branch conv's bits) and pinned layers.
public struct BitAllocation: Sendable {
    public struct Budget: Sendable {
        public var name: String
        /// cost[layer][choice]
        public var cost: [[Double]]
        public var limit: Double
        public init(name: String, cost: [[Double]], limit: Double) { self.name = name; self.cost = cost; self.limit = limit }
    }

    public var layers: [String]
    /// Candidate bit widths per layer.
    public var choices: [[Int]]
    /// objective[layer][choice]: the sensitivity Ω of that layer at that width.
    public var objective: [[Double]]
    public var budgets: [Budget]
    /// Groups of layer indices that must take equal bits.
    public var ties: [[Int]]
    /// Layers whose bits are fixed.
    public var pinned: [Int: Int]

    public init(layers: [String], choices: [[Int]], objective: [[Double]], budgets: [Budget],
                ties: [[Int]] = [], pinned: [Int: Int] = [:]) {
        self.layers = layers; self.choices = choices; self.objective = objective
        self.budgets = budgets; self.ties = ties; self.pinned = pinned
    }

    public struct Solution: Sendable, Equatable {
        /// Bits per layer.
        public var bits: [Int]
        public var objective: Double
        /// Cost under each budget.
        public var costs: [Double]
    }

    /// Tied layers merged into groups; each group's options are the widths every member offers.
    struct Group {
        var members: [Int]
        var bits: [Int]
        var objective: [Double]
        var cost: [[Double]]  // [budget][option]
    }

    func groups() throws -> [Group] {
        let n = layers.count
        guard choices.count == n, objective.count == n, budgets.allSatisfy({ $0.cost.count == n }) else {
            throw MixedPrecisionError.malformed("every layer needs choices, objective values and costs (\(n) layers)")
        }
        for l in 0..<n {
            guard !choices[l].isEmpty, objective[l].count == choices[l].count,
                  budgets.allSatisfy({ $0.cost[l].count == choices[l].count }) else {
                throw MixedPrecisionError.malformed("layer '\(layers[l])' has mismatched choice, objective and cost lists")
            }
            guard objective[l].allSatisfy(\.isFinite), budgets.allSatisfy({ $0.cost[l].allSatisfy(\.isFinite) }) else {
                throw MixedPrecisionError.malformed("layer '\(layers[l])' has a NaN or infinite objective or cost")
            }
        }
        // Union of tie groups.
        var parent = Array(0..<n)
        func find(_ x: Int) -> Int { var x = x; while parent[x] != x { parent[x] = parent[parent[x]]; x = parent[x] }; return x }
        for t in ties {
            guard t.allSatisfy({ $0 >= 0 && $0 < n }) else { throw MixedPrecisionError.malformed("a tie names a layer index out of range") }
            for m in t.dropFirst() { parent[find(m)] = find(t[0]) }
        }
        var byRoot: [Int: [Int]] = [:]
        for l in 0..<n { byRoot[find(l), default: []].append(l) }
        return try byRoot.keys.sorted().map { root in
            let members = byRoot[root]!
            var common = Set(choices[members[0]])
            for m in members { common.formIntersection(choices[m]) }
            for m in members { if let p = pinned[m] { common.formIntersection([p]) } }
            let bits = common.sorted()
            guard !bits.isEmpty else {
                throw MixedPrecisionError.malformed("layers \(members.map { layers[$0] }.joined(separator: ", ")) are tied or pinned but share no bit width")
            }
            let obj = bits.map { b in members.reduce(0.0) { $0 + objective[$1][choices[$1].firstIndex(of: b)!] } }
            let cost = budgets.map { budget in bits.map { b in members.reduce(0.0) { $0 + budget.cost[$1][choices[$1].firstIndex(of: b)!] } } }
            return Group(members: members, bits: bits, objective: obj, cost: cost)
        }
    }

    func solution(_ groups: [Group], _ pick: [Int]) -> Solution {
        var bits = [Int](repeating: 0, count: layers.count)
        var obj = 0.0
        var costs = [Double](repeating: 0, count: budgets.count)
        for (g, o) in zip(groups, pick) {
            for m in g.members { bits[m] = g.bits[o] }
            obj += g.objective[o]
            for b in budgets.indices { costs[b] += g.cost[b][o] }
        }
        return Solution(bits: bits, objective: obj, costs: costs)
    }

    /// Relative slack for rounding: a budget computed as all4 + f·(all8 − all4) must admit the
    /// configuration that meets it exactly.
    static func fits(_ cost: Double, _ limit: Double) -> Bool { cost <= limit + 1e-9 * max(1, abs(limit)) }

    func checkFeasible(_ groups: [Group]) throws {
        for (b, budget) in budgets.enumerated() {
            let cheapest = groups.reduce(0.0) { $0 + $1.cost[b].min()! }
            if !Self.fits(cheapest, budget.limit) { throw MixedPrecisionError.infeasible(budget: budget.name, limit: budget.limit, cheapest: cheapest) }
        }
    }
}
