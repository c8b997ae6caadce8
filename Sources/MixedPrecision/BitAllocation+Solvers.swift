import HeapModule

// The reference solvers: enumeration (for checking) and the greedy.
extension BitAllocation {
    /// Every combination (for checking the other solvers on small problems).
    public func solveByEnumeration() throws -> Solution {
        let gs = try groups()
        try checkFeasible(gs)
        let total = gs.reduce(1) { $0 * $1.bits.count }
        guard total <= 50_000_000 else { throw MixedPrecisionError.malformed("\(total) combinations are too many to enumerate") }
        var bestPick: [Int]? = nil, bestObjective = Double.infinity
        var pick = [Int](repeating: 0, count: gs.count)
        var costs = [Double](repeating: 0, count: budgets.count)
        for index in 0..<total {
            var rest = index, obj = 0.0
            for b in costs.indices { costs[b] = 0 }
            for (i, g) in gs.enumerated() {
                let o = rest % g.bits.count
                rest /= g.bits.count
                pick[i] = o
                obj += g.objective[o]
                for b in costs.indices { costs[b] += g.cost[b][o] }
            }
            guard obj < bestObjective, zip(costs, budgets).allSatisfy({ Self.fits($0, $1.limit) }) else { continue }
            bestObjective = obj; bestPick = pick
        }
        guard let bestPick else { throw MixedPrecisionError.infeasible(budget: budgets.first?.name ?? "", limit: budgets.first?.limit ?? 0, cheapest: .nan) }
        return solution(gs, bestPick)
    }

    /// The multiple-choice knapsack greedy (MPQNNCO) for the first budget: drop dominated
    /// options, keep each group's lower convex hull of (cost, sensitivity), start every group at
    /// its cheapest option and repeatedly take the upgrade with the best sensitivity decrease per
    /// unit of cost that still fits every budget. Not always optimal: compare with `solveExactly`.
    public func solveGreedily() throws -> Solution {
        let gs = try groups()
        try checkFeasible(gs)
        guard !budgets.isEmpty else { return solution(gs, gs.map { g in g.objective.indices.min { g.objective[$0] < g.objective[$1] }! }) }
        // Lower convex hull per group, in increasing cost.
        let hulls: [[Int]] = gs.map { g in
            let sorted = g.objective.indices.sorted { (g.cost[0][$0], g.objective[$0]) < (g.cost[0][$1], g.objective[$1]) }
            var hull: [Int] = []
            for o in sorted {
                if let last = hull.last, g.objective[o] >= g.objective[last] { continue }  // dominated
                while hull.count >= 2 {
                    let a = hull[hull.count - 2], b = hull[hull.count - 1]
                    let slopeAB = (g.objective[b] - g.objective[a]) / max(g.cost[0][b] - g.cost[0][a], 1e-300)
                    let slopeAO = (g.objective[o] - g.objective[a]) / max(g.cost[0][o] - g.cost[0][a], 1e-300)
                    if slopeAO <= slopeAB { hull.removeLast() } else { break }
                }
                hull.append(o)
            }
            return hull
        }
        var position = [Int](repeating: 0, count: gs.count)
        var pick = hulls.map { $0[0] }
        var cost = budgets.indices.map { b in zip(gs, pick).reduce(0.0) { $0 + $1.0.cost[b][$1.1] } }
        // Each group's next hull step, best ratio first (ties to the lower group). A step that
        // does not fit waits until some budget's cost falls (with costs that only grow, never).
        struct Step: Comparable {
            var ratio: Double, group: Int
            static func < (a: Step, b: Step) -> Bool { a.ratio < b.ratio || (a.ratio == b.ratio && a.group > b.group) }
        }
        func step(_ i: Int) -> Step? {
            guard position[i] + 1 < hulls[i].count else { return nil }
            let g = gs[i], from = pick[i], to = hulls[i][position[i] + 1]
            let ratio = (g.objective[from] - g.objective[to]) / max(g.cost[0][to] - g.cost[0][from], 1e-300)
            return ratio > 0 ? Step(ratio: ratio, group: i) : nil
        }
        var queue = Heap(gs.indices.compactMap(step))
        var waiting: [Step] = []
        while let s = queue.popMax() {
            let i = s.group, g = gs[i], from = pick[i], to = hulls[i][position[i] + 1]
            guard budgets.indices.allSatisfy({ Self.fits(cost[$0] - g.cost[$0][from] + g.cost[$0][to], budgets[$0].limit) }) else {
                waiting.append(s)
                continue
            }
            var fell = false
            for b in budgets.indices {
                cost[b] += g.cost[b][to] - g.cost[b][from]
                if g.cost[b][to] < g.cost[b][from] { fell = true }
            }
            pick[i] = to
            position[i] += 1
            if let next = step(i) { queue.insert(next) }
            if fell { for w in waiting { queue.insert(w) }; waiting.removeAll() }
        }
        // The cheapest start may break a second budget; report that rather than return it.
        let s = solution(gs, pick)
        if let b = budgets.indices.first(where: { !Self.fits(s.costs[$0], budgets[$0].limit) }) {
            throw MixedPrecisionError.infeasible(budget: budgets[b].name, limit: budgets[b].limit, cheapest: s.costs[b])
        }
        return s
    }
}
