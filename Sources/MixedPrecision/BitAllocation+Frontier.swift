import Kernels
import Runtime

// The Pareto frontier of cost against sensitivity for the first budget.
extension BitAllocation {
    /// The whole frontier for the first budget at once: every solution that no other beats in
    /// both cost and sensitivity (other budgets are ignored), by dynamic programming over the
    /// groups with the Pareto-optimal partial solutions kept at each step (Nemhauser–Ullmann).
    /// Each point is optimal for any budget between its cost and the next point's.
    public func paretoFrontier(limit: Int = 1_000_000) throws -> [Solution] {
        let gs = try groups()
        guard !budgets.isEmpty else { throw MixedPrecisionError.malformed("the Pareto frontier needs a budget") }
        struct Point { var cost: Double; var objective: Double; var parent: Int32; var option: Int32 }
        var levels: [[Point]] = []
        var current = [Point(cost: 0, objective: 0, parent: -1, option: -1)]
        for g in gs {
            try Interrupt.check()
            var candidates: [Point] = []
            candidates.reserveCapacity(current.count * g.bits.count)
            for (p, point) in current.enumerated() {
                for o in g.bits.indices {
                    candidates.append(Point(cost: point.cost + g.cost[0][o], objective: point.objective + g.objective[o],
                                            parent: Int32(p), option: Int32(o)))
                }
            }
            candidates.sort { ($0.cost, $0.objective) < ($1.cost, $1.objective) }
            var kept: [Point] = []
            for c in candidates where kept.isEmpty || c.objective < kept[kept.count - 1].objective {
                if let last = kept.last, last.cost == c.cost { kept[kept.count - 1] = c } else { kept.append(c) }
            }
            guard kept.count <= limit else {
                throw MixedPrecisionError.malformed("the Pareto frontier grew past \(limit) points at \(levels.count + 1) of \(gs.count) groups; use solveExactly for single budgets")
            }
            levels.append(kept)
            current = kept
        }
        return current.indices.map { end in
            var pick = [Int](repeating: 0, count: gs.count)
            var index = end
            for level in stride(from: gs.count - 1, through: 0, by: -1) {
                let point = levels[level][index]
                pick[level] = Int(point.option)
                index = Int(point.parent)
            }
            return solution(gs, pick)
        }
    }
}
