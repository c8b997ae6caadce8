extension BitAllocation {
    /// The optimum, by depth-first branch and bound. Groups with the widest spread of
    /// sensitivity are decided first; a branch is cut when even the cheapest completion breaks a
    /// budget, or when the best possible completion (each remaining group at its least
    /// sensitivity) cannot beat the incumbent. Exact for any number of budgets.
    public func solveExactly() throws -> Solution {
        var gs = try groups()
        try checkFeasible(gs)
        gs.sort { ($0.objective.max()! - $0.objective.min()!) > ($1.objective.max()! - $1.objective.min()!) }
        let n = gs.count, nb = budgets.count
        // Suffix sums of the least objective and least cost of the groups not yet decided.
        var restObjective = [Double](repeating: 0, count: n + 1)
        var restCost = [[Double]](repeating: [Double](repeating: 0, count: nb), count: n + 1)
        for i in stride(from: n - 1, through: 0, by: -1) {
            restObjective[i] = restObjective[i + 1] + gs[i].objective.min()!
            for b in 0..<nb { restCost[i][b] = restCost[i + 1][b] + gs[i].cost[b].min()! }
        }
        var best = Double.infinity
        var bestPick: [Int]? = nil
        var pick = [Int](repeating: 0, count: n)
        var cost = [Double](repeating: 0, count: nb)
        // Options in increasing sensitivity, so good incumbents come early.
        let order = gs.map { g in g.objective.indices.sorted { g.objective[$0] < g.objective[$1] } }
        func visit(_ i: Int, _ obj: Double) {
            if obj + restObjective[i] >= best { return }
            if i == n { best = obj; bestPick = pick; return }
            for o in order[i] {
                var ok = true
                for b in 0..<nb where !Self.fits(cost[b] + gs[i].cost[b][o] + restCost[i + 1][b], budgets[b].limit) { ok = false; break }
                if !ok { continue }
                for b in 0..<nb { cost[b] += gs[i].cost[b][o] }
                pick[i] = o
                visit(i + 1, obj + gs[i].objective[o])
                for b in 0..<nb { cost[b] -= gs[i].cost[b][o] }
            }
        }
        visit(0, 0)
        guard let bestPick else { throw Failure.infeasible(budget: budgets.first?.name ?? "", limit: budgets.first?.limit ?? 0, cheapest: .nan) }
        return solution(gs, bestPick)
    }

    /// Every combination (for checking the other solvers on small problems).
    public func solveByEnumeration() throws -> Solution {
        let gs = try groups()
        try checkFeasible(gs)
        let total = gs.reduce(1) { $0 * $1.bits.count }
        guard total <= 50_000_000 else { throw Failure.malformed("\(total) combinations are too many to enumerate") }
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
        guard let bestPick else { throw Failure.infeasible(budget: budgets.first?.name ?? "", limit: budgets.first?.limit ?? 0, cheapest: .nan) }
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
        while true {
            var bestGroup = -1, bestRatio = 0.0
            for (i, g) in gs.enumerated() where position[i] + 1 < hulls[i].count {
                let from = pick[i], to = hulls[i][position[i] + 1]
                let fitsAll = budgets.indices.allSatisfy { Self.fits(cost[$0] - g.cost[$0][from] + g.cost[$0][to], budgets[$0].limit) }
                guard fitsAll else { continue }
                let gain = g.objective[from] - g.objective[to], extra = max(g.cost[0][to] - g.cost[0][from], 1e-300)
                if gain / extra > bestRatio { bestRatio = gain / extra; bestGroup = i }
            }
            guard bestGroup >= 0 else { break }
            let g = gs[bestGroup], from = pick[bestGroup], to = hulls[bestGroup][position[bestGroup] + 1]
            for b in budgets.indices { cost[b] += g.cost[b][to] - g.cost[b][from] }
            pick[bestGroup] = to
            position[bestGroup] += 1
        }
        // The cheapest start may break a second budget; report that rather than return it.
        let s = solution(gs, pick)
        if let b = budgets.indices.first(where: { !Self.fits(s.costs[$0], budgets[$0].limit) }) {
            throw Failure.infeasible(budget: budgets[b].name, limit: budgets[b].limit, cheapest: s.costs[b])
        }
        return s
    }
}
