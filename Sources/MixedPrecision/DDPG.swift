import Foundation
import Network
import Tensors

/// Deep deterministic policy gradient (Lillicrap et al.) with HAQ's defaults, as AutoQ's agents
/// use it (../shared/METHODS.md §7): an actor μ(s) → [0, 1]^m (400-300 ReLU, sigmoid out) and a
/// critic Q(s, a) (400-300 ReLU on the concatenated state and action), each with a target copy
/// that follows by soft updates θ' ← τθ + (1 − τ)θ'; a replay buffer; exploration by a normal
/// around μ(s) truncated to [0, 1], σ decaying per episode after uniform warm-up episodes.
/// Rewards are taken relative to their moving average (HAQ's baseline); the critic's target is
/// r + γ·(1 − done)·Q'(s', μ'(s')). Everything random draws from one seeded generator.
public struct DDPG {
    public struct Options: Sendable {
        public var hidden = (400, 300)
        public var actorLearningRate: Float = 1e-4
        public var criticLearningRate: Float = 1e-3
        public var tau: Float = 0.01
        public var batchSize = 64
        /// Episodes of uniformly random actions before the actor acts.
        public var warmup = 20
        public var noise: Float = 0.5
        public var noiseDecay: Float = 0.99
        public var discount: Float = 1
        public var replaySize = 4000
        /// The moving average's step (HAQ: 0.5).
        public var baselineRate: Float = 0.5
        public var seed: UInt64 = 0
        public init() {}
    }

    public struct Transition: Sendable {
        public var state: [Float], action: [Float], reward: Float, next: [Float], done: Bool
        public init(state: [Float], action: [Float], reward: Float, next: [Float], done: Bool) {
            self.state = state; self.action = action; self.reward = reward; self.next = next; self.done = done
        }
    }

    public let stateSize: Int, actionSize: Int
    public let options: Options
    public let actor: Model, critic: Model
    let actorTarget: Model, criticTarget: Model
    var actorOptimizer = OptimizerState(.adam()), criticOptimizer = OptimizerState(.adam())
    var replay: [Transition] = []
    var replayNext = 0
    var rng: RandomGenerator
    public private(set) var baseline: Float = 0
    var baselineStarted = false

    public init(stateSize: Int, actionSize: Int, options: Options = Options()) throws {
        guard stateSize > 0, actionSize > 0, options.hidden.0 > 0, options.hidden.1 > 0, options.batchSize > 0, options.replaySize > 0,
              options.tau > 0, options.tau <= 1, options.noise >= 0, options.warmup >= 0 else {
            throw MixedPrecisionError("ddpg: expected positive state and action sizes, hidden widths, batch, replay size, τ in (0, 1], noise ≥ 0 and warm-up ≥ 0")
        }
        self.stateSize = stateSize; self.actionSize = actionSize; self.options = options
        rng = RandomGenerator(seed: options.seed)
        func network(inputs: Int, outputs: Int, squash: Bool, seed: UInt64, name: String) throws -> Model {
            var b = GraphBuilder(seed: seed)
            var h = b.relu(try b.linear(b.input, "fc1", in: inputs, out: options.hidden.0))
            h = b.relu(try b.linear(h, "fc2", in: options.hidden.0, out: options.hidden.1))
            h = try b.linear(h, "fc3", in: options.hidden.1, out: outputs)
            if squash { h = b.pointwise(.sigmoid, h) }
            return try b.model(name: name, output: h, inputShape: [inputs])
        }
        actor = try network(inputs: stateSize, outputs: actionSize, squash: true, seed: options.seed &+ 1, name: "actor")
        actorTarget = try network(inputs: stateSize, outputs: actionSize, squash: true, seed: options.seed &+ 1, name: "actor target")
        critic = try network(inputs: stateSize + actionSize, outputs: 1, squash: false, seed: options.seed &+ 2, name: "critic")
        criticTarget = try network(inputs: stateSize + actionSize, outputs: 1, squash: false, seed: options.seed &+ 2, name: "critic target")
    }

    func batch(_ rows: [[Float]], width: Int) throws -> Tensor {
        for r in rows where r.count != width || !r.allSatisfy(\.isFinite) {
            throw MixedPrecisionError("ddpg: expected \(width) finite values per row, found \(r.count)\(r.allSatisfy(\.isFinite) ? "" : " with a NaN or infinity")")
        }
        return Tensor(checkedShape: [rows.count, width], scalars: rows.flatMap { $0 })
    }

    func rows(_ t: Tensor) -> [[Float]] {
        let w = t.shape[1]
        return (0..<t.shape[0]).map { Array(t.scalars[($0 * w)..<(($0 + 1) * w)]) }
    }

    /// The actor's actions for many states at once (no exploration).
    public func actions(_ states: [[Float]]) throws -> [[Float]] {
        guard !states.isEmpty else { return [] }
        return rows(try actor.run(try batch(states, width: stateSize)).output)
    }

    /// The actions to take in `episode` (counted from 0): uniform during the warm-up, then the
    /// actor's plus normal noise of σ = noise·decay^(episode − warm-up), redrawn until inside
    /// [0, 1] (clamped after 20 tries).
    public mutating func explore(_ states: [[Float]], episode: Int) throws -> [[Float]] {
        if episode < options.warmup { return states.map { _ in (0..<actionSize).map { _ in rng.uniform() } } }
        let sigma = options.noise * pow(options.noiseDecay, Float(episode - options.warmup))
        return try actions(states).map { a in
            a.map { mu in
                for _ in 0..<20 {
                    let x = mu + sigma * rng.normal()
                    if (0...1).contains(x) { return x }
                }
                return min(1, max(0, mu))
            }
        }
    }

    public mutating func remember(_ t: Transition) {
        if replay.count < options.replaySize { replay.append(t) } else { replay[replayNext] = t }
        replayNext = (replayNext + 1) % options.replaySize
    }

    public var remembered: Int { replay.count }

    /// One update of critic and actor on a random batch from the replay buffer, then the soft
    /// updates of both targets. Returns the critic's mean squared error.
    @discardableResult
    public mutating func update() throws -> Float {
        guard !replay.isEmpty else { return 0 }
        let n = min(options.batchSize, replay.count)
        let picked = (0..<n).map { _ in replay[Int(rng.next() % UInt64(replay.count))] }
        let mean = picked.reduce(Float(0)) { $0 + $1.reward } / Float(n)
        if baselineStarted { baseline += options.baselineRate * (mean - baseline) } else { baseline = mean; baselineStarted = true }
        // Critic: Q(s, a) towards (r − baseline) + γ·(1 − done)·Q'(s', μ'(s')).
        let nextActions = rows(try actorTarget.run(try batch(picked.map(\.next), width: stateSize)).output)
        let nextQ = try criticTarget.run(try batch(zip(picked, nextActions).map { $0.next + $1 }, width: stateSize + actionSize)).output.scalars
        let targets = picked.indices.map { i in picked[i].reward - baseline + (picked[i].done ? 0 : options.discount * nextQ[i]) }
        let (q, trace) = try critic.run(try batch(picked.map { $0.state + $0.action }, width: stateSize + actionSize), training: true, keepTrace: true)
        let dq = Tensor(checkedShape: q.shape, scalars: q.scalars.indices.map { 2 * (q.scalars[$0] - targets[$0]) / Float(n) })
        let loss = q.scalars.indices.reduce(Float(0)) { $0 + (q.scalars[$1] - targets[$1]) * (q.scalars[$1] - targets[$1]) } / Float(n)
        try criticOptimizer.step(critic, gradients: try critic.gradients(trace!, outputGradient: dq), lr: options.criticLearningRate)
        // Actor: up the critic's gradient, −∂Q(s, μ(s))/∂a through μ.
        let states = try batch(picked.map(\.state), width: stateSize)
        let (a, actorTrace) = try actor.run(states, training: true, keepTrace: true)
        let (_, criticTrace) = try critic.run(try batch(zip(picked, rows(a)).map { $0.state + $1 }, width: stateSize + actionSize),
                                             training: true, keepTrace: true)
        let dInput = try critic.gradients(criticTrace!, outputGradient: Tensor(checkedShape: [n, 1], scalars: Array(repeating: -1 / Float(n), count: n)),
                                          inputGradient: true)[critic.input]!
        let w = stateSize + actionSize
        let da = Tensor(checkedShape: [n, actionSize], scalars: (0..<n).flatMap { Array(dInput.scalars[($0 * w + stateSize)..<(($0 + 1) * w)]) })
        try actorOptimizer.step(actor, gradients: try actor.gradients(actorTrace!, outputGradient: da), lr: options.actorLearningRate)
        Self.follow(actorTarget, actor, tau: options.tau)
        Self.follow(criticTarget, critic, tau: options.tau)
        return loss
    }

    /// What a checkpoint keeps besides tensors: the generator, the replay cursor and the baseline.
    public struct Snapshot: Codable, Equatable, Sendable {
        var random: RandomGenerator.Snapshot
        var replayNext: Int, remembered: Int
        var baseline: Float, baselineStarted: Bool
    }

    /// The agent's whole state: the snapshot, and as tensors named under `prefix` the four
    /// networks, both optimizers' moments and the replay buffer (states, actions, rewards, next
    /// states, done flags), so that a restored agent acts and learns exactly as this one would.
    public func checkpoint(prefix: String) -> (snapshot: Snapshot, tensors: [(name: String, tensor: Tensor)]) {
        var out: [(name: String, tensor: Tensor)] = []
        for (net, model) in [("actor", actor), ("actor_target", actorTarget), ("critic", critic), ("critic_target", criticTarget)] {
            out += model.stateDict.map { ("\(prefix)/\(net)/\($0.0)", $0.1) }
        }
        out += actorOptimizer.tensors(prefix: "\(prefix)/actor_optimizer") + criticOptimizer.tensors(prefix: "\(prefix)/critic_optimizer")
        let n = replay.count
        func table(_ rows: [[Float]], _ width: Int) -> Tensor { Tensor(checkedShape: [n, width], scalars: rows.flatMap { $0 }) }
        out += [("\(prefix)/replay/state", table(replay.map(\.state), stateSize)),
                ("\(prefix)/replay/action", table(replay.map(\.action), actionSize)),
                ("\(prefix)/replay/reward", Tensor(checkedShape: [n], scalars: replay.map(\.reward))),
                ("\(prefix)/replay/next", table(replay.map(\.next), stateSize)),
                ("\(prefix)/replay/done", Tensor(checkedShape: [n], scalars: replay.map { $0.done ? 1 : 0 }))]
        let snapshot = Snapshot(random: rng.snapshot, replayNext: replayNext, remembered: n, baseline: baseline, baselineStarted: baselineStarted)
        return (snapshot, out)
    }

    /// Restores the state `checkpoint(prefix:)` wrote; tensors of another shape (another agent)
    /// are refused.
    public mutating func restore(_ snapshot: Snapshot, tensors: [String: Tensor], prefix: String, source: String) throws {
        for (net, model) in [("actor", actor), ("actor_target", actorTarget), ("critic", critic), ("critic_target", criticTarget)] {
            let state = tensors.filter { $0.key.hasPrefix("\(prefix)/\(net)/") }.map { (name: String($0.key.dropFirst(prefix.count + net.count + 2)), tensor: $0.value) }
            try model.loadStateDict(state, source: source)
        }
        actorOptimizer = try OptimizerState(.adam(), tensors: tensors, prefix: "\(prefix)/actor_optimizer", model: actor)
        criticOptimizer = try OptimizerState(.adam(), tensors: tensors, prefix: "\(prefix)/critic_optimizer", model: critic)
        let n = snapshot.remembered
        guard (0...options.replaySize).contains(n), (0..<max(1, options.replaySize)).contains(snapshot.replayNext),
              let states = tensors["\(prefix)/replay/state"], states.shape == [n, stateSize],
              let actions = tensors["\(prefix)/replay/action"], actions.shape == [n, actionSize],
              let rewards = tensors["\(prefix)/replay/reward"], rewards.shape == [n],
              let next = tensors["\(prefix)/replay/next"], next.shape == [n, stateSize],
              let done = tensors["\(prefix)/replay/done"], done.shape == [n] else {
            throw MixedPrecisionError("checkpoint \(source): the agent '\(prefix)' does not match (its replay buffer or sizes differ)")
        }
        func row(_ t: Tensor, _ i: Int, _ w: Int) -> [Float] { Array(t.scalars[(i * w)..<((i + 1) * w)]) }
        replay = (0..<n).map { i in
            Transition(state: row(states, i, stateSize), action: row(actions, i, actionSize), reward: rewards.scalars[i],
                       next: row(next, i, stateSize), done: done.scalars[i] != 0)
        }
        replayNext = snapshot.replayNext
        rng = try RandomGenerator(snapshot.random)
        baseline = snapshot.baseline; baselineStarted = snapshot.baselineStarted
    }

    /// θ' ← τθ + (1 − τ)θ'.
    static func follow(_ target: Model, _ source: Model, tau: Float) {
        for (name, p) in source.parameters {
            guard let t = target.parameters[name] else { continue }
            target.parameters[name] = Tensor(checkedShape: t.shape, scalars: zip(p.scalars, t.scalars).map { tau * $0 + (1 - tau) * $1 })
        }
    }
}
