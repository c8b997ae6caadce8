import Kernels
import Runtime

// The exact solver: branch and bound with Lagrangian bounds, dynamic programming on one budget,
// and the greedy repair that gives it an incumbent.
extension BitAllocation {
    /// The optimum, by branch and bound with Lagrangian bounds. For multipliers λ ≥ 0 (one per
    /// budget), L(λ) = Σ_g min_o (Ω_go + λ·c_go) − λ·B is a lower bound on the optimum; λ is
    /// chosen at the root to maximise it (bisection for one budget, projected subgradient ascent
    /// with Polyak steps for several — any λ keeps the bound valid, so the search stays exact;
    /// on the benchmark instances it reaches HiGHS's LP bound). Nodes are also bounded with λ's
    /// neighbours (one multiplier scaled), which are tighter where a partial allocation's costs
    /// stray from the root's, by the least sensitivities, and by the least price of giving up
    /// the cost by which the undecided groups' Lagrangian choices would break a budget.
    /// Each group's options are tried in increasing reduced cost Ω + λ·c, and groups whose
    /// best and second-best reduced costs are closest are decided first. When at most one
    /// budget binds, dynamic programming on that budget with dominance replaces the tree.
    /// The search runs below a cutoff between L and the incumbent (the better of the greedy's
    /// answer and the Lagrangian choice repaired and improved), widened fourfold until an
    /// allocation appears: the first found is optimal, and near L far fewer nodes survive.
    /// Exact for any number of budgets (`scripts/bench --filter solve` times it beside HiGHS).
    public func solveExactly() throws -> Solution {
        var gs = try groups()
        try checkFeasible(gs)
        let nb = budgets.count
        let limits = budgets.map(\.limit)
        let greedy = try? solveGreedily()
        let lambda = nb == 0 ? [] : Self.lagrangeMultipliers(gs, limits, upperBound: greedy?.objective)
        func reduced(_ g: Group, _ o: Int, _ mu: [Double]) -> Double {
            var r = g.objective[o]
            for b in 0..<nb { r += mu[b] * g.cost[b][o] }
            return r
        }
        func spread(_ g: Group) -> Double {
            let r = g.objective.indices.map { reduced(g, $0, lambda) }.sorted()
            return r.count > 1 ? r[1] - r[0] : .infinity
        }
        let spreads = gs.map(spread)
        gs = gs.indices.sorted { spreads[$0] < spreads[$1] }.map { gs[$0] }
        let n = gs.count
        // Bounds come from several multiplier vectors ("tangents" of the concave Lagrangian):
        // λ itself, and λ with one budget's multiplier scaled. Far from the root's expected costs
        // the scaled ones are tighter, and any multipliers ≥ 0 give a valid bound.
        var tangents = [lambda]
        for b in 0..<nb where lambda[b] > 0 {
            for f in [0.0, 0.5, 0.8, 0.92, 1.08, 1.25, 2.0] {
                var mu = lambda
                mu[b] *= f
                tangents.append(mu)
            }
        }
        // Suffix sums over the undecided groups: least reduced cost per tangent, least
        // objective, least cost.
        var restReduced = [[Double]](repeating: [Double](repeating: 0, count: n + 1), count: tangents.count)
        var restObjective = [Double](repeating: 0, count: n + 1)
        var restCost = [[Double]](repeating: [Double](repeating: 0, count: nb), count: n + 1)
        for i in stride(from: n - 1, through: 0, by: -1) {
            for (t, mu) in tangents.enumerated() {
                restReduced[t][i] = restReduced[t][i + 1] + gs[i].objective.indices.map { reduced(gs[i], $0, mu) }.min()!
            }
            restObjective[i] = restObjective[i + 1] + gs[i].objective.min()!
            for b in 0..<nb { restCost[i][b] = restCost[i + 1][b] + gs[i].cost[b].min()! }
        }
        var best = Double.infinity
        var bestPick: [Int]? = nil
        // Incumbents: the greedy's answer, and the Lagrangian choice repaired and improved.
        if let greedy {
            bestPick = gs.map { g in g.bits.firstIndex(of: greedy.bits[g.members[0]])! }
            best = greedy.objective
        }
        let lagrangianChoice = gs.map { g in g.objective.indices.min { reduced(g, $0, lambda) < reduced(g, $1, lambda) }! }
        if let (pick, objective) = Self.repairAndImprove(gs, start: lagrangianChoice, limits: limits), objective < best {
            best = objective; bestPick = pick
        }
        guard let incumbent = bestPick else {
            throw MixedPrecisionError.infeasible(budget: budgets.first?.name ?? "", limit: budgets.first?.limit ?? 0, cheapest: .nan)
        }
        // Over-budget bound: where the undecided groups' Lagrangian choices would break budget b
        // by E, they must give up cost E, and no option frees cost for less than minRatio
        // reduced cost per unit; so the completion costs at least E·minRatio more.
        var restChoiceCost = [[Double]](repeating: [Double](repeating: 0, count: nb), count: n + 1)
        var minRatio = [[Double]](repeating: [Double](repeating: .infinity, count: nb), count: n + 1)
        for i in stride(from: n - 1, through: 0, by: -1) {
            let g = gs[i], c0 = lagrangianChoice[i], r0 = reduced(g, c0, lambda)
            for b in 0..<nb {
                restChoiceCost[i][b] = restChoiceCost[i + 1][b] + g.cost[b][c0]
                var m = minRatio[i + 1][b]
                for o in g.objective.indices {
                    let freed = g.cost[b][c0] - g.cost[b][o]
                    if freed > 0 { m = min(m, max(0, reduced(g, o, lambda) - r0) / freed) }
                }
                minRatio[i][b] = m
            }
        }
        let order = gs.map { g in g.objective.indices.sorted { reduced(g, $0, lambda) < reduced(g, $1, lambda) } }
        let tangentOffsets = tangents.map { mu in (0..<nb).reduce(0.0) { $0 - mu[$1] * limits[$1] } }

        /// Depth-first search for an allocation below `cutoff`; nil when there is none.
        func branchAndBound(below cutoff: Double) throws -> [Int]? {
            var best = cutoff, found: [Int]? = nil
            var pick = [Int](repeating: 0, count: n)
            var cost = [Double](repeating: 0, count: nb)
            let margin = 1e-12
            var visits = 0
            var interrupted: Error? = nil
            func visit(_ i: Int, _ obj: Double) {
                if interrupted != nil { return }
                visits += 1
                if visits & 0xFFFF == 0 { do { try Interrupt.check() } catch { interrupted = error; return } }
                let cut = best - margin * abs(best)
                if obj + restObjective[i] >= cut { return }
                var lagrangian = -Double.infinity
                for t in tangents.indices {
                    var bound = obj + restReduced[t][i] + tangentOffsets[t]
                    for b in 0..<nb { bound += tangents[t][b] * cost[b] }
                    if bound >= cut { return }
                    if t == 0 { lagrangian = bound }
                }
                var extra = 0.0
                for b in 0..<nb {
                    let excess = cost[b] + restChoiceCost[i][b] - limits[b]
                    if excess > 1e-9 * max(1, abs(limits[b])) { extra = max(extra, excess * minRatio[i][b]) }
                }
                if extra > 0 && lagrangian + extra >= cut { return }
                if i == n { best = obj; found = pick; return }
                for o in order[i] {
                    var ok = true
                    for b in 0..<nb where !Self.fits(cost[b] + gs[i].cost[b][o] + restCost[i + 1][b], limits[b]) { ok = false; break }
                    if !ok { continue }
                    for b in 0..<nb { cost[b] += gs[i].cost[b][o] }
                    pick[i] = o
                    visit(i + 1, obj + gs[i].objective[o])
                    for b in 0..<nb { cost[b] -= gs[i].cost[b][o] }
                }
            }
            visit(0, 0)
            if let interrupted { throw interrupted }
            return found
        }

        // Search below a guessed cutoff between the root bound and the incumbent, widening it
        // fourfold until something is found: whatever a search finds below its cutoff is the
        // optimum (it skipped only what could not beat the cutoff), and the optimum usually lies
        // much nearer the bound than the incumbent does, where far fewer nodes survive.
        // One binding budget (every other multiplier zero): dynamic programming over the groups
        // on that budget alone, keeping only partial solutions no other beats in both cost and
        // sensitivity and whose bound can still beat the cutoff. Its optimum ignores the other
        // budgets; when it happens to meet them it is the optimum here too.
        let root = restReduced[0][0] + tangentOffsets[0]
        let binding = (0..<nb).filter { lambda[$0] > 0 }
        var dynamic = nb >= 1 && binding.count <= 1
        let dpBudget = binding.first ?? 0
        let dpTangents = tangents.map { $0.isEmpty ? 0 : $0[dpBudget] }
        let final = best * (1 + 1e-12) + 1e-300
        var fraction = 1.0 / 256
        while true {
            let cutoff = fraction >= 1 || !(best - root > 1e-12 * abs(best)) ? final : root + fraction * (best - root)
            if dynamic {
                switch Self.boundedDynamicProgram(gs, budget: dpBudget, multipliers: dpTangents, limit: limits[dpBudget], below: cutoff) {
                case .found(let pick, _):
                    if (0..<nb).allSatisfy({ b in Self.fits(gs.indices.reduce(0.0) { $0 + gs[$1].cost[b][pick[$1]] }, limits[b]) }) {
                        return solution(gs, pick)
                    }
                    dynamic = false
                    continue
                case .tooLarge, .interrupted:
                    try Interrupt.check()
                    dynamic = false
                    continue
                case .none: break
                }
            } else if let pick = try branchAndBound(below: cutoff) {
                return solution(gs, pick)
            }
            if cutoff == final { return solution(gs, incumbent) }
            fraction *= 4
        }
    }

    /// Dynamic programming on one budget with dominance and Lagrangian bounds (one per
    /// multiplier; see `solveExactly`): the best allocation below `cutoff` under this budget.
    static func boundedDynamicProgram(_ gs: [Group], budget b: Int, multipliers: [Double], limit: Double, below cutoff: Double,
                                      stateLimit: Int = 40_000_000) -> Search {
        let n = gs.count, nt = multipliers.count
        // restReduced[i * nt + t]: least reduced cost of groups i..<n under multiplier t.
        var restReduced = [Double](repeating: 0, count: (n + 1) * nt), restCost = [Double](repeating: 0, count: n + 1)
        var offsets = multipliers.map { -$0 * limit }
        for i in stride(from: n - 1, through: 0, by: -1) {
            let g = gs[i]
            for t in 0..<nt {
                var m = Double.infinity
                for o in g.objective.indices { m = min(m, g.objective[o] + multipliers[t] * g.cost[b][o]) }
                restReduced[i * nt + t] = restReduced[(i + 1) * nt + t] + m
            }
            restCost[i] = restCost[i + 1] + g.cost[b].min()!
        }
        // Per level, what reconstruction needs; the current level's costs and objectives.
        var parents: [[Int32]] = [], options: [[UInt8]] = []
        var cost: [Double] = [0], objective: [Double] = [0]
        var total = 0
        var runs: [[Int32]] = []
        for i in 0..<n {
            if i & 63 == 0, Interrupt.isRequested { return .interrupted }
            let g = gs[i]
            let k = g.bits.count
            // Each option shifts the (cost-sorted) states by a constant: k sorted runs of the
            // survivors of the budget and bound tests, merged while dropping dominated states.
            let m = cost.count
            if runs.count < k { runs += [[Int32]](repeating: [], count: k - runs.count) }
            let next = (i + 1) * nt
            restReduced.withUnsafeBufferPointer { rr in
                offsets.withUnsafeMutableBufferPointer { off in
                    for t in 0..<nt { off[t] = rr[next + t] - multipliers[t] * limit }
                }
            }
            for o in 0..<k {
                runs[o].removeAll(keepingCapacity: true)
                let dc = g.cost[b][o], dob = g.objective[o]
                let room = limit + 1e-9 * max(1, abs(limit)) - restCost[i + 1]
                cost.withUnsafeBufferPointer { cs in
                    objective.withUnsafeBufferPointer { os in
                        offsets.withUnsafeBufferPointer { off in
                            multipliers.withUnsafeBufferPointer { mu in
                                for p in 0..<m {
                                    let c = cs[p] + dc, ob = os[p] + dob
                                    if c > room { break }       // costs only grow along the run
                                    var keep = true
                                    for t in 0..<nt where ob + mu[t] * c + off[t] >= cutoff { keep = false; break }
                                    if keep { runs[o].append(Int32(p)) }
                                }
                            }
                        }
                    }
                }
            }
            var heads = [Int](repeating: 0, count: k)
            var nextCost: [Double] = [], nextObjective: [Double] = [], nextParent: [Int32] = [], nextOption: [UInt8] = []
            let capacity = runs.prefix(k).reduce(0) { $0 + $1.count }
            nextCost.reserveCapacity(capacity); nextObjective.reserveCapacity(capacity)
            nextParent.reserveCapacity(capacity); nextOption.reserveCapacity(capacity)
            var lastObjective = Double.infinity
            while true {
                var bestO = -1, bestC = Double.infinity, bestOb = Double.infinity
                for o in 0..<k where heads[o] < runs[o].count {
                    let p = Int(runs[o][heads[o]])
                    let c = cost[p] + g.cost[b][o], ob = objective[p] + g.objective[o]
                    if c < bestC || (c == bestC && ob < bestOb) { bestO = o; bestC = c; bestOb = ob }
                }
                if bestO < 0 { break }
                let p = runs[bestO][heads[bestO]]
                heads[bestO] += 1
                if bestOb >= lastObjective { continue }   // dominated
                lastObjective = bestOb
                nextCost.append(bestC); nextObjective.append(bestOb); nextParent.append(p); nextOption.append(UInt8(bestO))
            }
            total += nextCost.count
            if nextCost.isEmpty { return .none }
            if total > stateLimit { return .tooLarge }
            parents.append(nextParent); options.append(nextOption)
            cost = nextCost; objective = nextObjective
        }
        guard let end = objective.indices.min(by: { objective[$0] < objective[$1] }) else { return .none }
        var pick = [Int](repeating: 0, count: n)
        var index = end
        for level in stride(from: n - 1, through: 0, by: -1) {
            pick[level] = Int(options[level][index])
            index = Int(parents[level][index])
        }
        return .found(pick, objective[end])
    }

    /// A feasible allocation near `start`: while a budget is broken, take the downgrade that
    /// costs the least sensitivity per unit of (normalised) broken budget it frees; then, while
    /// some upgrade fits every budget, take the one with the most sensitivity saved per unit of
    /// normalised cost. nil when no feasible point is reached.
    static func repairAndImprove(_ gs: [Group], start: [Int], limits: [Double]) -> ([Int], Double)? {
        let nb = limits.count
        var pick = start
        var cost = (0..<nb).map { b in gs.indices.reduce(0.0) { $0 + gs[$1].cost[b][pick[$1]] } }
        let scale = (0..<nb).map { b in max(abs(limits[b]), 1e-300) }
        func broken() -> [Int] { (0..<nb).filter { !fits(cost[$0], limits[$0]) } }
        var guardSteps = 0
        while !broken().isEmpty {
            guardSteps += 1
            if guardSteps > 100 * gs.count + 1000 { return nil }
            let violated = broken()
            var bestG = -1, bestO = -1, bestRatio = Double.infinity
            for (i, g) in gs.enumerated() {
                for o in g.objective.indices where o != pick[i] {
                    var freed = 0.0
                    for b in violated { freed += (g.cost[b][pick[i]] - g.cost[b][o]) / scale[b] }
                    guard freed > 0 else { continue }
                    let ratio = (g.objective[o] - g.objective[pick[i]]) / freed
                    if ratio < bestRatio { bestRatio = ratio; bestG = i; bestO = o }
                }
            }
            guard bestG >= 0 else { return nil }
            for b in 0..<nb { cost[b] += gs[bestG].cost[b][bestO] - gs[bestG].cost[b][pick[bestG]] }
            pick[bestG] = bestO
        }
        while true {
            var bestG = -1, bestO = -1, bestRatio = 0.0
            for (i, g) in gs.enumerated() {
                for o in g.objective.indices where g.objective[o] < g.objective[pick[i]] {
                    var extra = 0.0, ok = true
                    for b in 0..<nb {
                        let next = cost[b] + g.cost[b][o] - g.cost[b][pick[i]]
                        if !fits(next, limits[b]) { ok = false; break }
                        extra += max(0, g.cost[b][o] - g.cost[b][pick[i]]) / scale[b]
                    }
                    guard ok else { continue }
                    let ratio = (g.objective[pick[i]] - g.objective[o]) / max(extra, 1e-300)
                    if ratio > bestRatio { bestRatio = ratio; bestG = i; bestO = o }
                }
            }
            guard bestG >= 0 else { break }
            for b in 0..<nb { cost[b] += gs[bestG].cost[b][bestO] - gs[bestG].cost[b][pick[bestG]] }
            pick[bestG] = bestO
        }
        let objective = gs.indices.reduce(0.0) { $0 + gs[$1].objective[pick[$1]] }
        return (pick, objective)
    }
}
