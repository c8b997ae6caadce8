import Foundation
import Testing
import MixedPrecision
import Tensors

/// DDPG solves a one-step contextual bandit whose best action is known: the reward is
/// −(a − a*(s))² with a*(s) = 0.2 + 0.6·s₀. After warm-up and 300 episodes of 8 contexts, the
/// actor's action is within 0.05 of a* on average over fresh states; the same seed learns the
/// same actor; NaN states are refused.
@Test func ddpgSolvesAQuadraticBandit() throws {
    var o = DDPG.Options()
    o.hidden = (64, 64); o.actorLearningRate = 1e-3; o.warmup = 10; o.noise = 0.3; o.noiseDecay = 0.99; o.seed = 4
    func best(_ s: [Float]) -> Float { 0.2 + 0.6 * s[0] }
    func train() throws -> DDPG {
        var agent = try DDPG(stateSize: 2, actionSize: 1, options: o)
        var rng = RandomGenerator(seed: 9)
        for episode in 0..<300 {
            let states = (0..<8).map { _ in [rng.uniform(), rng.uniform()] }
            let actions = try agent.explore(states, episode: episode)
            for (s, a) in zip(states, actions) {
                let r = -(a[0] - best(s)) * (a[0] - best(s))
                agent.remember(.init(state: s, action: a, reward: r, next: s, done: true))
            }
            if episode >= o.warmup { for _ in 0..<4 { try agent.update() } }
        }
        return agent
    }
    let agent = try train()
    var rng = RandomGenerator(seed: 11)
    let test = (0..<50).map { _ in [rng.uniform(), rng.uniform()] }
    let error = zip(try agent.actions(test), test).reduce(Float(0)) { $0 + abs($1.0[0] - best($1.1)) } / 50
    print("DDPG bandit: mean |μ(s) − a*(s)| = \(error)")
    #expect(error < 0.05, "mean error \(error)")
    #expect(try train().actions(test) == (try agent.actions(test)))
    #expect(throws: MixedPrecisionError.self) { try agent.actions([[.nan, 0]]) }
    #expect(throws: MixedPrecisionError.self) { try DDPG(stateSize: 0, actionSize: 1) }
}
