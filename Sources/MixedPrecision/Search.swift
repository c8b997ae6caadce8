import Network
import Quantization

/// The search the prompt's `search` runs, as one library call: budgets by kind, pins, ties and a
/// solver over a sensitivity table, giving a policy with how it was found.
public struct Search: Sendable {
    public enum Solver: String, Sendable, CaseIterable {
        /// Exact: branch and bound on Lagrangian bounds.
        case ilp
        /// The multiple-choice knapsack greedy on convex hulls (its gap to the optimum is reported).
        case greedy
        /// Enumeration of every allocation (small problems).
        case brute
    }

    public enum Budget: Sendable {
        /// Weight bytes.
        case size(Double)
        /// Parameter-weighted mean weight bits (a size budget).
        case averageBits(Double)
        /// Σ MACs·b_w·b_a per image (activations at `Search.activationBits`, else the weight bits).
        case bitOps(Double)
        /// ms per image from the latency table measured on this machine.
        case latency(Double)
        /// µJ per image on a 16×32 BitFusion array (45 nm constants), activations as for BitOps.
        case energy(Double)
    }

    public var budgets: [Budget]
    public var solver: Solver = .ilp
    /// Layer name → bits.
    public var pins: [String: Int] = [:]
    /// Pins the first and last layer at these bits (HAWQ and APQ use 8).
    public var ends: Int? = nil
    /// Layers reading the same input (a block's conv and its 1×1 shortcut) take equal bits.
    public var tieSharedInputs = true
    /// The activation width the BitOps and energy budgets count (nil: each layer's weight bits).
    public var activationBits: Int? = nil

    public init(budgets: [Budget], solver: Solver = .ilp) { self.budgets = budgets; self.solver = solver }

    public struct Result: Sendable {
        public var policy: Policy
        public var problem: BitAllocation
        public var solution: BitAllocation.Solution
        /// The greedy's relative gap to the exact optimum (nil for the other solvers).
        public var gap: Double?
    }

    /// Solves the problem `table` and the budgets pose on `model`. `progress` sees the latency
    /// table's measurement when a latency budget needs it.
    public func run(_ table: SensitivityTable, model: Model, progress: ((Int, Int) -> Void)? = nil) throws -> Result {
        guard !budgets.isEmpty else { throw MixedPrecisionError("search: give at least one budget: size:, bitops:, latency:, energy: or average_bits:") }
        let costs = try budgets.map { try $0.costModel(for: model, widths: table.bits, activationBits: activationBits, progress: progress) }
        var pinned = table.fixedWidths.merging(pins) { $1 }
        if let ends, let first = model.layers.first, let last = model.layers.last { pinned[first.name] = ends; pinned[last.name] = ends }
        let problem = try BitAllocation(model: model, table: table, budgets: costs, tieSharedInputs: tieSharedInputs, pinned: pinned)
        let solution: BitAllocation.Solution
        var gap: Double? = nil
        switch solver {
        case .ilp: solution = try problem.solveExactly()
        case .greedy:
            solution = try problem.solveGreedily()
            let best = try problem.solveExactly()
            gap = best.objective > 0 ? (solution.objective - best.objective) / best.objective : 0
        case .brute: solution = try problem.solveByEnumeration()
        }
        return Result(policy: try table.policy(bits: solution.bits, model: model), problem: problem, solution: solution, gap: gap)
    }
}

extension Search.Budget {
    /// The cost model this budget counts on `model` and its limit: size and average bits in weight
    /// bytes, BitOps and BitFusion energy with activations at `activationBits` (nil: each layer's
    /// weight bits), latency from the table measured on this machine (cached) over `widths`.
    public func costModel(for model: Model, widths: [Int], activationBits: Int? = nil,
                          progress: ((Int, Int) -> Void)? = nil) throws -> (CostModel, Double) {
        switch self {
        case .size, .averageBits: return (.size, try bytes(for: model)!)
        case .bitOps(let v): return (.bitOps(activationBits: activationBits), v)
        case .latency(let v):
            guard widths.allSatisfy({ $0 >= 2 }) else {
                throw MixedPrecisionError("search: a latency budget needs widths of 2…8 bits (the integer kernels' range)")
            }
            let measured = try LatencyTable.cached(model, bits: Array(Set(widths).union(2...8)).sorted(), progress: progress)
            return (measured.table.costModel, v)
        case .energy(let v): return (.bitFusionEnergy(activationBits: activationBits, rows: 16, columns: 32, constants: .horowitz45nm), v)
        }
    }

    /// The weight-byte limit of a size or average-bits budget (average b: b bytes per 8
    /// weights), checked positive and finite; nil for the other kinds.
    public func bytes(for model: Model) throws -> Double? {
        let (name, v): (String, Double)
        switch self {
        case .size(let s): (name, v) = ("size", s)
        case .averageBits(let b): (name, v) = ("average_bits", b)
        case .bitOps, .latency, .energy: return nil
        }
        guard v.isFinite, v > 0 else { throw MixedPrecisionError("\(name): expected a positive finite budget, found \(v)") }
        return name == "size" ? v : try CostModel.size.uniformCost(model, bits: 1) * v
    }
}
