// Lagrangian relaxation: the lower bound and the multipliers that (nearly) maximise it.
extension BitAllocation {
    /// The Lagrangian lower bound on the optimum and its multipliers (one per budget): no
    /// allocation within the budgets has a smaller summed sensitivity.
    public func lagrangianBound() throws -> (bound: Double, multipliers: [Double]) {
        let gs = try groups()
        let lambda = budgets.isEmpty ? [] : Self.lagrangeMultipliers(gs, budgets.map(\.limit))
        var bound = 0.0
        for g in gs {
            bound += g.objective.indices.map { o in g.objective[o] + budgets.indices.reduce(0.0) { $0 + lambda[$1] * g.cost[$1][o] } }.min()!
        }
        for b in budgets.indices { bound -= lambda[b] * budgets[b].limit }
        return (bound, lambda)
    }

    enum Search { case found([Int], Double), none, tooLarge, interrupted }

    /// Multipliers that (nearly) maximise the Lagrangian bound L(λ). One budget: L is concave
    /// and piecewise linear in λ, maximised where its subgradient Σ c(o*(λ)) − B changes sign
    /// (bisection). Several: projected subgradient ascent with a diminishing step, keeping the
    /// best λ seen.
    static func lagrangeMultipliers(_ gs: [Group], _ limits: [Double], upperBound: Double? = nil) -> [Double] {
        let nb = limits.count
        // Options in one contiguous run (group g's at start[g]..<start[g+1]); costs option-major.
        var start = [0], objective: [Double] = [], costs: [Double] = []
        for g in gs {
            for o in g.objective.indices {
                objective.append(g.objective[o])
                for b in 0..<nb { costs.append(g.cost[b][o]) }
            }
            start.append(objective.count)
        }
        func evaluate(_ lambda: [Double]) -> (bound: Double, subgradient: [Double]) {
            var bound = 0.0
            var used = [Double](repeating: 0, count: nb)
            objective.withUnsafeBufferPointer { obj in
                costs.withUnsafeBufferPointer { cost in
                    for g in 0..<gs.count {
                        var bestO = start[g], bestR = Double.infinity
                        for o in start[g]..<start[g + 1] {
                            var r = obj[o]
                            for b in 0..<nb { r += lambda[b] * cost[o * nb + b] }
                            if r < bestR { bestR = r; bestO = o }
                        }
                        bound += bestR
                        for b in 0..<nb { used[b] += cost[bestO * nb + b] }
                    }
                }
            }
            for b in 0..<nb { bound -= lambda[b] * limits[b] }
            return (bound, (0..<nb).map { used[$0] - limits[$0] })
        }
        // A scale for λ: objective range over cost range.
        let objectiveRange = gs.reduce(0.0) { $0 + ($1.objective.max()! - $1.objective.min()!) }
        let costRanges = (0..<nb).map { b in gs.reduce(0.0) { $0 + ($1.cost[b].max()! - $1.cost[b].min()!) } }
        if nb == 1 {
            var lo = 0.0, hi = objectiveRange / max(costRanges[0], 1e-300) * 4 + 1e-300
            // Grow hi until the relaxed choice fits.
            var grow = 0
            while evaluate([hi]).subgradient[0] > 0 && grow < 200 { hi *= 2; grow += 1 }
            if evaluate([0]).subgradient[0] <= 0 { return [0] }
            for _ in 0..<100 {
                let mid = (lo + hi) / 2
                if evaluate([mid]).subgradient[0] > 0 { lo = mid } else { hi = mid }
            }
            // The maximum lies at the breakpoint between lo and hi; take the better end.
            return evaluate([lo]).bound >= evaluate([hi]).bound ? [lo] : [hi]
        }
        // Several budgets: projected subgradient ascent in cost-normalised coordinates with
        // Polyak steps towards the incumbent's objective (or diminishing steps without one).
        var lambda = [Double](repeating: 0, count: nb)
        var bestLambda = lambda, bestBound = evaluate(lambda).bound
        var theta = 1.0, stall = 0
        let target = upperBound ?? .nan
        for k in 0..<600 {
            let (bound, sub) = evaluate(lambda)
            if bound > bestBound + 1e-12 * abs(bestBound) { bestBound = bound; bestLambda = lambda; stall = 0 } else {
                stall += 1
                if stall >= 15 { theta /= 2; stall = 0; lambda = bestLambda }
            }
            // The bound has met the incumbent: nothing can beat it, and more steps cannot help.
            if target.isFinite && bestBound >= target - 1e-12 * abs(target) { break }
            let g = (0..<nb).map { sub[$0] / max(costRanges[$0], 1e-300) }
            let norm2 = g.reduce(0) { $0 + $1 * $1 }
            if norm2 == 0 || theta < 1e-6 { break }
            let gap = target.isFinite ? max(target - bound, 1e-12 * abs(target)) : objectiveRange / Double(k + 2)
            let step = theta * gap / norm2
            for b in 0..<nb { lambda[b] = max(0, lambda[b] + step * g[b] / max(costRanges[b], 1e-300)) }
        }
        return bestLambda
    }
}
