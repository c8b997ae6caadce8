import Foundation
import Testing
import TestSupport
import MixedPrecision
import Network
import Quantization
import Tensors

/// Kendall's τ-b, Spearman's ρ and the MAE against hand-computed values (with ties).
@Test func agreementStatistics() {
    let a = AccuracyMLP.agreement(predicted: [1, 2, 3, 4], measured: [1, 3, 2, 4])
    #expect(abs(a.tau - 4.0 / 6.0) < 1e-12 && abs(a.rho - 0.8) < 1e-12 && abs(a.mae - 0.5) < 1e-12)
    let tied = AccuracyMLP.agreement(predicted: [1, 1, 2], measured: [1, 2, 3])
    #expect(abs(tied.tau - 2 / 6.0.squareRoot()) < 1e-12)  // 2 concordant, one tie in the predictions
    #expect(AccuracyMLP.agreement(predicted: [3, 2, 1], measured: [1, 2, 3]).tau == -1)
}

/// The MLP learns an accuracy that is a sum of per-layer losses with one interaction (the
/// kind of surface a summed sensitivity misses): trained on 300 policies, on 100 held-out ones
/// its Kendall τ is ≥ 0.8; the same seed trains the same predictor; a width it never saw is
/// refused with the widths it knows.
@Test func mlpPredictorRanksHeldOutPolicies() throws {
    let widths = [2, 3, 4, 6, 8], layers = 8
    var rng = RandomGenerator(seed: 3)
    let cost = (0..<layers).map { _ in Double(rng.uniform()) * 0.05 + 0.01 }
    func accuracy(_ b: [Int]) -> Double {
        var a = 0.95
        for (l, w) in b.enumerated() { a -= cost[l] * pow(2, Double(8 - w)) / 16 }
        if b[0] == 2 && b[1] == 2 { a -= 0.05 }
        return a
    }
    let policies = (0..<400).map { _ in (0..<layers).map { _ in widths[Int(rng.next() % 5)] } }
    let samples = policies.map { PolicySamples.Sample(bits: $0, accuracy: accuracy($0)) }
    var o = AccuracyMLP.Options(); o.epochs = 150; o.hidden = 64; o.seed = 1
    let p = try AccuracyMLP.train(Array(samples.prefix(300)), choices: widths, options: o)
    let held = Array(samples.suffix(100))
    let a = AccuracyMLP.agreement(predicted: try p.predict(held.map(\.bits)), measured: held.map(\.accuracy))
    print("MLP predictor on a synthetic surface: τ \(a.tau), ρ \(a.rho), MAE \(a.mae)")
    #expect(a.tau >= 0.8, "τ \(a.tau)")
    let q = try AccuracyMLP.train(Array(samples.prefix(300)), choices: widths, options: o)
    #expect(try q.predict(held.map(\.bits)) == (try p.predict(held.map(\.bits))))
    #expect(throws: MixedPrecisionError.self) { try p.predict([[5, 2, 2, 2, 2, 2, 2, 2]]) }
    #expect(throws: MixedPrecisionError.self) { try AccuracyMLP.train(Array(samples.prefix(1)), choices: widths) }
}

/// Measured samples go to the cache keyed by model and split, come back from it without being
/// measured again, and a cache of another model is refused.
@Test func policySamplesAreCached() throws {
    let model = try Zoo.make("mlp")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_mlp.npz")
    let validation = try FashionMNIST.load(.train, limit: 200)
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-samples-\(getpid()).json").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    let policies = try PolicySamples.random(model, count: 4, bits: [2, 4, 8], seed: 2)
    let first = try PolicySamples(cache: path).measure(model, validation: validation, policies: policies)
    #expect(first.measured == Set(policies).count && first.samples.count == 4)
    let again = try PolicySamples(cache: path).measure(model, validation: validation, policies: policies + [[8, 8, 8]])
    #expect(again.measured == (policies.contains([8, 8, 8]) ? 0 : 1) && Array(again.samples.prefix(4)) == first.samples)
    #expect(again.samples[4].accuracy == (try model.quantized(policy: try Policy(model: model, weightBits: [8, 8, 8])).accuracy(on: validation)))
    #expect(throws: MixedPrecisionError.self) { try PolicySamples(cache: path).measure(try Zoo.make("mlp", seed: 9), validation: validation, policies: policies) }
    #expect(throws: MixedPrecisionError.self) { try PolicySamples().measure(model, validation: validation, policies: [[2, 4]]) }
}
