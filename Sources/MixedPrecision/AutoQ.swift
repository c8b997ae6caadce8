import Foundation
import Network
import Quantization
import Runtime
import Tensors

/// AutoQ (../shared/METHODS.md §7, reconstructed): two DDPG agents search kernel-wise weight
/// widths. Each episode, the high-level agent walks the layers and picks each layer's weight-bit
/// goal (and its activation width when activations are searched); the low-level agent picks every
/// output kernel's width given the layer, the goal and the kernel's weight statistics. Actions
/// map to widths by round((b_max − b_min + 1)·a + b_min − 0.5). The policy is evaluated on a
/// validation split, and both agents learn from the episode's reward:
/// - resource-constrained: the widest free kernels are lowered one step at a time until the
///   budget holds, among equally wide ones the least preferred first (the agents remember what
///   they chose), reward 0.1·(accuracy − float accuracy), HAQ's. (HAQ's own rule — every kernel
///   down one step per pass, keeping the agents' differences — left most early policies with
///   layers at 2 bits and far lower accuracy on ResNet-20 at 3 bits within 120 episodes.)
///   Given a kernel-wise sensitivity table (`run(sensitivity:)`), the kernels are lowered instead
///   in the order of `SensitivityLowering` (least sensitivity added per unit of cost saved first).
/// - accuracy-guaranteed: nothing is lowered, reward (accuracy − float accuracy) − w·cost/cost₈
///   (cost₈: every layer at 8 bits).
/// The low level's reward adds −goalWeight·|mean width of the layer − goal|/(b_max − b_min), so
/// it learns to meet the goal it is given (the hierarchy's intrinsic term). The first and last
/// layer stay at `ends` bits. Ctrl-C ends the search (an episode cut short is dropped); the best
/// policy so far is returned.
public struct AutoQ {
    public enum Mode: Sendable, Equatable {
        case resourceConstrained
        case accuracyGuaranteed(costWeight: Double)
    }

    public struct Options: Sendable {
        public var episodes = 100
        public var weightBits = 2...8
        /// Searched per layer when given; nil leaves activations float.
        public var activationBits: ClosedRange<Int>? = nil
        public var ends: Int? = 8
        public var mode: Mode = .resourceConstrained
        /// HAQ's DDPG defaults (400-300, lr 1e-4/1e-3, τ 0.01, batch 64, 20 warm-up episodes, σ 0.5 × 0.99 per episode).
        public var agent = DDPG.Options()
        /// Updates of each agent after each episode past the warm-up.
        public var updates = 32
        public var goalWeight: Float = 0.5
        /// Random search instead: every episode's actions uniform (the agents never act).
        public var random = false
        public var seed: UInt64 = 0
        /// A .npz the search's whole state is written to after every episode; when it exists, the
        /// same search continues from it and ends as an unbroken one would.
        public var checkpoint: String? = nil
        public init() {}

        /// Everything that shapes the search (the checkpoint's identity).
        var description: String {
            let a = agent
            return "episodes \(episodes), weights \(weightBits), activations \(activationBits.map { "\($0)" } ?? "float"), ends \(ends.map { "\($0)" } ?? "searched"), "
                + "mode \(mode), updates \(updates), goal weight \(goalWeight), random \(random), seed \(seed), agent \(a.hidden) lr \(a.actorLearningRate)/\(a.criticLearningRate) "
                + "τ \(a.tau) batch \(a.batchSize) warm-up \(a.warmup) noise \(a.noise)×\(a.noiseDecay) γ \(a.discount) replay \(a.replaySize) baseline \(a.baselineRate)"
        }
    }

    public struct Episode: Codable, Sendable {
        public var index: Int
        public var reward: Double, accuracy: Double, cost: Double
        public var bestReward: Double, bestAccuracy: Double
        public var line: String
    }

    public struct Result: Sendable {
        public var policy: Policy
        public var accuracy: Double, cost: Double, reward: Double
        public var history: [Episode]
        /// Distinct policies evaluated (repeats come from the cache).
        public var evaluations: Int
        public var interrupted: Bool
    }

    public var options: Options
    public init(options: Options = Options()) { self.options = options }

    /// Layer features of the high-level state: index, Cin, Cout, stride, kernel, #weights, output
    /// size, depthwise — min-max normalised over the model's layers.
    static func layerFeatures(_ model: Model) -> [[Float]] {
        let raw: [[Float]] = model.layers.enumerated().map { i, l in
            let s = l.weightShape
            var stride = 1
            if case .conv(let a) = model.nodes[l.node].op { stride = a.strides.first ?? 1 }
            let kernel = s.count == 4 ? s[2] * s[3] : 1
            return [Float(i), Float(s.count > 1 ? s[1] * l.groups : 1), Float(s[0]), Float(stride), Float(kernel),
                    Float(l.parameterCount), Float(l.macs / max(1, l.parameterCount)), l.groups > 1 ? 1 : 0]
        }
        return normalised(raw)
    }

    static func normalised(_ rows: [[Float]]) -> [[Float]] {
        guard let w = rows.first?.count else { return rows }
        var out = rows
        for j in 0..<w {
            let column = rows.map { $0[j] }
            let lo = column.min()!, hi = column.max()!
            for i in rows.indices { out[i][j] = hi > lo ? (rows[i][j] - lo) / (hi - lo) : 0 }
        }
        return out
    }

    /// Per kernel (output channel) of each layer: mean |w|, standard deviation and max |w|,
    /// min-max normalised within the layer.
    static func kernelFeatures(_ model: Model) throws -> [[[Float]]] {
        try model.layers.map { l in
            guard let w = model.parameters[l.weight] else { throw MixedPrecisionError("autoq: layer '\(l.name)' has no weight") }
            let cout = l.weightShape[0], per = w.count / max(1, cout)
            let rows: [[Float]] = (0..<cout).map { c in
                let v = w.scalars[(c * per)..<((c + 1) * per)]
                let mean = v.reduce(0) { $0 + $1 } / Float(max(1, per))
                let variance = v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(max(1, per))
                return [v.reduce(0) { $0 + abs($1) } / Float(max(1, per)), variance.squareRoot(), v.reduce(0) { max($0, abs($1)) }]
            }
            return normalised(rows)
        }
    }

    func width(_ a: Float, _ range: ClosedRange<Int>) -> Int {
        let b = Int(((Float(range.upperBound - range.lowerBound + 1)) * a + Float(range.lowerBound) - 0.5).rounded())
        return min(range.upperBound, max(range.lowerBound, b))
    }

    /// The policy of per-kernel widths (and per-layer activation widths).
    public static func policy(_ model: Model, widths: [[Int]], activations: [Int?]) throws -> Policy {
        try Policy(model: model, entries: model.layers.indices.map { entry(model.layers[$0], widths: widths[$0], activation: activations[$0]) })
    }

    /// One layer at per-kernel widths (one width: the plain per-channel quantizer).
    public static func entry(_ layer: Layer, widths w: [Int], activation: Int?) -> Policy.Entry {
        let weight = Set(w).count == 1 ? Policy.Weight.reference(bits: w[0]) : Policy.Weight.reference(bits: w.max()!).perChannel(w)
        return Policy.Entry(layer: layer, weight: weight, activation: activation.map { Policy.Activation(bits: $0) })
    }

    /// Searches `model`'s kernel-wise widths under `cost` ≤ `budget` (resource-constrained) or
    /// trading against it (accuracy-guaranteed), evaluating on `validation`; `calibration` sets the
    /// activation ranges when activations are searched.
    public func run(_ model: Model, validation: Dataset, cost: CostModel, budget: Double, calibration: Tensor? = nil,
                    sensitivity: KernelWiseTable? = nil, progress: (Episode) -> Void = { _ in }) throws -> Result {
        let o = options
        let layers = model.layers, n = layers.count
        guard n > 0, validation.count > 0 else { throw MixedPrecisionError("autoq: the model has no conv/linear layers or the validation split is empty") }
        guard (1...100_000).contains(o.episodes), (1...8).contains(o.weightBits.lowerBound), o.weightBits.upperBound <= 8, (0...10_000).contains(o.updates),
              o.goalWeight.isFinite else {
            throw MixedPrecisionError("autoq: expected episodes 1…100000, weight widths within 1…8, updates 0…10000 and a finite goal weight; found \(o.episodes), \(o.weightBits), \(o.updates), \(o.goalWeight)")
        }
        if case .accuracyGuaranteed(let w) = o.mode, !w.isFinite { throw MixedPrecisionError("autoq: expected a finite cost weight, found \(w)") }
        if let a = o.activationBits {
            guard (1...16).contains(a.lowerBound), a.upperBound <= 16 else { throw MixedPrecisionError("autoq: activation widths must lie within 1…16, found \(a)") }
            guard calibration != nil else { throw MixedPrecisionError("autoq: searching activation widths needs calibration images") }
        }
        guard budget.isFinite, budget > 0 else { throw MixedPrecisionError("autoq: expected a positive finite budget, found \(budget)") }
        let pinned: Set<Int> = o.ends == nil ? [] : [0, n - 1]
        if let e = o.ends, !(1...8).contains(e) { throw MixedPrecisionError("autoq: ends must be 1…8 bits, found \(e)") }
        let fixedActivation = o.activationBits.map { $0.upperBound }
        func costOf(_ widths: [[Int]], _ acts: [Int?]) throws -> [Double] {
            let p = try Self.policy(model, widths: widths, activations: acts)
            return try p.entries.map { try cost.cost($0) }
        }
        // The cheapest policy: free kernels at the narrowest width, activations at their narrowest.
        let lowest: [[Int]] = layers.indices.map { i in Array(repeating: pinned.contains(i) ? o.ends! : o.weightBits.lowerBound, count: layers[i].weightShape[0]) }
        let lowestActs: [Int?] = layers.indices.map { pinned.contains($0) ? fixedActivation : o.activationBits?.lowerBound }
        let cheapest = try costOf(lowest, lowestActs).reduce(0, +)
        if o.mode == .resourceConstrained && cheapest > budget {
            throw MixedPrecisionError("autoq: no policy meets the budget \(String(format: "%.6g", budget)): every free kernel at \(o.weightBits.lowerBound) bits\(o.ends.map { ", ends at \($0)" } ?? "") costs \(String(format: "%.6g", cheapest))")
        }
        let reference = try costOf(layers.map { Array(repeating: 8, count: $0.weightShape[0]) }, layers.map { _ in o.activationBits == nil ? nil : 8 }).reduce(0, +)
        let floatAccuracy = try model.accuracy(on: validation)
        let layerState = Self.layerFeatures(model), kernelState = try Self.kernelFeatures(model)
        let highActions = o.activationBits == nil ? 1 : 2
        var agentOptions = o.agent
        if o.random { agentOptions.warmup = o.episodes }
        agentOptions.seed = o.seed
        var high = try DDPG(stateSize: layerState[0].count + highActions, actionSize: highActions, options: agentOptions)
        var lowOptions = agentOptions
        lowOptions.seed = o.seed &+ 100
        lowOptions.replaySize = max(agentOptions.replaySize, 20 * layers.reduce(0) { $0 + $1.weightShape[0] })
        var low = try DDPG(stateSize: layerState[0].count + 5, actionSize: 1, options: lowOptions)
        let span = Float(max(1, o.weightBits.upperBound - o.weightBits.lowerBound))
        let lowering = try sensitivity.map { try Self.SensitivityLowering(model: model, table: $0, cost: cost, widths: o.weightBits, pinned: pinned) }

        // Accuracy by (kernel widths, then activation widths; 0 for float): a repeated policy is not evaluated again.
        var cache: [[[Int]]: Double] = [:]
        var evaluated: [AutoQCheckpoint.Evaluated] = []
        var history: [Episode] = []
        var best: AutoQCheckpoint.Best? = nil
        var interrupted = false
        let search = AutoQCheckpoint.Search(key: PolicySamples.key(model: model, validation: validation, calibration: o.activationBits == nil ? nil : calibration),
                                            cost: "\(cost)", budget: budget, options: o.description + (lowering.map { ", lowering by sensitivity \($0.fingerprint)" } ?? ""))
        var start = 0
        if let path = o.checkpoint, FileManager.default.fileExists(atPath: path) {
            let c = try AutoQCheckpoint.restore(from: path, search: search, high: &high, low: &low)
            func fits(_ w: [[Int]], _ a: [Int?]) -> Bool {
                w.count == n && a.count == n && zip(w, layers).allSatisfy { $0.count == $1.weightShape[0] && $0.allSatisfy { (1...8).contains($0) } }
            }
            guard c.evaluated.allSatisfy({ fits($0.widths, $0.activations.map { $0 == 0 ? nil : $0 }) }), c.best.map({ fits($0.widths, $0.activations) }) ?? true else {
                throw MixedPrecisionError("checkpoint \(path): its policies do not fit this model's \(n) layers and their kernels")
            }
            for e in c.evaluated { cache[e.widths + [e.activations]] = e.accuracy }
            evaluated = c.evaluated
            history = c.history; best = c.best; start = c.episodes
        }
        // Ctrl-C between episodes, or inside one (evaluation and updates stop with `Interrupted`):
        // the search ends and the best policy so far is returned.
        episodes: for episode in start..<max(start, o.episodes) {
            if Interrupt.isRequested { Interrupt.clear(); interrupted = true; break }
            do {
                // High level: the layers in order, each state carrying the previous action.
                var highStates: [[Float]] = [], highActs: [[Float]] = []
                var previous = [Float](repeating: 0, count: highActions)
                for i in 0..<n {
                    let s = layerState[i] + previous
                    let a = try high.explore([s], episode: episode)[0]
                    highStates.append(s); highActs.append(a); previous = a
                }
                var goals = highActs.map { width($0[0], o.weightBits) }
                var acts: [Int?] = highActs.indices.map { i in o.activationBits.map { width(highActs[i][1], $0) } }
                for i in pinned { goals[i] = o.ends!; acts[i] = fixedActivation }
                // Tied layers (reading one input) read one activation width.
                for group in model.layersSharingInputs { let a = acts[group[0]]; for l in group { acts[l] = a } }
                // Low level: every kernel of each free layer, given the layer and its goal.
                var lowStates: [[[Float]]] = [], lowActs: [[[Float]]] = []
                var widths = lowest
                for i in 0..<n {
                    let cout = layers[i].weightShape[0]
                    let goal = Float(goals[i] - o.weightBits.lowerBound) / span
                    let states = (0..<cout).map { c in layerState[i] + [goal, Float(c) / Float(max(1, cout - 1))] + kernelState[i][c] }
                    lowStates.append(states)
                    if pinned.contains(i) { lowActs.append(states.map { _ in [Float(1)] }); continue }
                    let a = try low.explore(states, episode: episode)
                    lowActs.append(a)
                    widths[i] = a.map { width($0[0], o.weightBits) }
                }
                // Resource-constrained: the widest free kernels lowered one step at a time until the
                // budget holds — among equally wide ones, those the low-level agent preferred least
                // first, so the agent decides which kernels keep the wider width.
                var layerCosts = try costOf(widths, acts)
                if o.mode == .resourceConstrained, let lowering {
                    try lowering.lower(&widths, preference: lowActs, activations: acts, costs: &layerCosts, budget: budget)
                } else if o.mode == .resourceConstrained {
                    var order: [(layer: Int, kernel: Int)] = []
                    for i in 0..<n where !pinned.contains(i) { for k in widths[i].indices { order.append((i, k)) } }
                    order.sort { (lowActs[$0.layer][$0.kernel][0], $0.layer, $0.kernel) < (lowActs[$1.layer][$1.kernel][0], $1.layer, $1.kernel) }
                    var total = layerCosts.reduce(0, +)
                    while total > budget {
                        guard let top = order.map({ widths[$0.layer][$0.kernel] }).max(), top > o.weightBits.lowerBound else { break }
                        for c in order where total > budget && widths[c.layer][c.kernel] == top {
                            widths[c.layer][c.kernel] -= 1
                            let lowered = try cost.cost(Self.entry(layers[c.layer], widths: widths[c.layer], activation: acts[c.layer]))
                            total += lowered - layerCosts[c.layer]; layerCosts[c.layer] = lowered
                        }
                    }
                }
                let total = layerCosts.reduce(0, +)
                let policy = try Self.policy(model, widths: widths, activations: acts)
                let key = widths + [acts.map { $0 ?? 0 }]
                let accuracy: Double
                if let a = cache[key] { accuracy = a } else {
                    accuracy = try model.quantized(policy: policy, calibration: o.activationBits == nil ? nil : calibration).accuracy(on: validation)
                    cache[key] = accuracy
                    evaluated.append(.init(widths: widths, activations: acts.map { $0 ?? 0 }, accuracy: accuracy))
                }
                let reward: Double
                switch o.mode {
                case .resourceConstrained: reward = 0.1 * (accuracy - floatAccuracy)
                case .accuracyGuaranteed(let w): reward = (accuracy - floatAccuracy) - w * total / reference
                }
                guard reward.isFinite else {
                    throw MixedPrecisionError("autoq: episode \(episode) gave a non-finite reward (accuracy \(accuracy), cost \(total)); the search stops there")
                }
                // Both agents learn from the episode.
                for i in 0..<n {
                    high.remember(.init(state: highStates[i], action: highActs[i], reward: Float(reward),
                                        next: i + 1 < n ? highStates[i + 1] : highStates[i], done: i + 1 == n))
                    guard !pinned.contains(i) else { continue }
                    let meanWidth = Float(widths[i].reduce(0, +)) / Float(widths[i].count)
                    let lowReward = Float(reward) - o.goalWeight * abs(meanWidth - Float(goals[i])) / span
                    let states = lowStates[i]
                    for c in states.indices {
                        low.remember(.init(state: states[c], action: lowActs[i][c], reward: lowReward,
                                           next: c + 1 < states.count ? states[c + 1] : states[c], done: c + 1 == states.count))
                    }
                }
                if episode >= agentOptions.warmup {
                    for _ in 0..<o.updates { try high.update(); try low.update() }
                }
                if best == nil || reward > best!.reward { best = .init(widths: widths, activations: acts, accuracy: accuracy, cost: total, reward: reward) }
                let line = String(format: "episode %d/%d · reward %.4f · accuracy %.2f%% · cost %.4g (%.1f%% of the budget) · best %.2f%%",
                                  episode + 1, o.episodes, reward, 100 * accuracy, total, 100 * total / budget, 100 * best!.accuracy)
                let e = Episode(index: episode, reward: reward, accuracy: accuracy, cost: total, bestReward: best!.reward, bestAccuracy: best!.accuracy, line: line)
                history.append(e)
                if let path = o.checkpoint {
                    let h = high.checkpoint(prefix: "high"), l = low.checkpoint(prefix: "low")
                    try AutoQCheckpoint(search: search, episodes: episode + 1, high: h.snapshot, low: l.snapshot, evaluated: evaluated, history: history, best: best)
                        .write(to: path, tensors: h.tensors + l.tensors)
                }
                progress(e)
            } catch is Interrupted {
                Interrupt.clear(); interrupted = true; break episodes
            }
        }
        guard let best else { throw MixedPrecisionError("autoq: interrupted before the first episode ended") }
        return Result(policy: try Self.policy(model, widths: best.widths, activations: best.activations), accuracy: best.accuracy, cost: best.cost, reward: best.reward, history: history,
                      evaluations: cache.count, interrupted: interrupted)
    }
}
