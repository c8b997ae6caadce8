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

/// With a reference (the float model's outputs on the split), each sample carries its output
/// divergence: zero for the float model's own logits, larger at 2 bits than at 8; cached samples
/// measured without one are measured again (the same accuracy) and their entries replaced, so a
/// third call measures nothing; a reference of another image count is refused.
@Test func samplesCarryTheirOutputDivergence() throws {
    let model = try Zoo.make("mlp")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_mlp.npz")
    let validation = try FashionMNIST.load(.train, limit: 200)
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-samples-kl-\(getpid()).json").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    let reference = try OutputReference(model: model, images: validation.images)
    #expect(abs(try reference.divergence(try model.predict(validation.images))) < 1e-9)
    let policies = [[8, 8, 8], [2, 2, 2], [4, 2, 8]]
    let sampler = PolicySamples(cache: path)
    let plain = try sampler.measure(model, validation: validation, policies: policies)
    #expect(plain.samples.allSatisfy { $0.divergence == nil })
    let withKL = try sampler.measure(model, validation: validation, policies: policies, reference: reference)
    #expect(withKL.measured == 3 && withKL.samples.map(\.accuracy) == plain.samples.map(\.accuracy))
    let kl = withKL.samples.map { $0.divergence ?? -1 }
    #expect(kl.allSatisfy { $0 >= 0 } && kl[0] < kl[1], "divergences \(kl)")
    let cached = try sampler.cached(key: PolicySamples.key(model: model, validation: validation), layers: 3)
    #expect(cached.count == 3 && cached.map(\.divergence) == kl)
    let third = try sampler.measure(model, validation: validation, policies: policies, reference: reference)
    #expect(third.measured == 0 && third.samples == withKL.samples)
    let other = try OutputReference(model: model, images: try FashionMNIST.load(.train, limit: 20).images)
    #expect(throws: MixedPrecisionError.self) { try sampler.measure(model, validation: validation, policies: policies, reference: other) }
}

/// Bias-corrected samples are the bias-corrected model's accuracy, and their cache is not the
/// plain samples' (the calibration images are part of the key).
@Test func biasCorrectedSamplesHaveTheirOwnCache() throws {
    let model = try Zoo.make("mlp")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_mlp.npz")
    let validation = try FashionMNIST.load(.train, limit: 200)
    let calibration = try FashionMNIST.load(.train, limit: 300).images
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-samples-bc-\(getpid()).json").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    let bits = [2, 4, 8]
    let corrected = try PolicySamples(cache: path, calibration: calibration).measure(model, validation: validation, policies: [bits])
    let policy = try Policy(model: model, weightBits: bits)
    #expect(corrected.samples[0].accuracy == (try model.quantized(policy: policy, calibration: calibration, biasCorrection: true).accuracy(on: validation)))
    #expect(throws: MixedPrecisionError.self) { try PolicySamples(cache: path).measure(model, validation: validation, policies: [bits]) }
    // In the integer engine (8-bit activations): the engine's own accuracy, under its own key.
    let inEngine = try PolicySamples(calibration: calibration, engine: true).measure(model, validation: validation, policies: [bits])
    let a8 = try Policy(model: model, weightBits: bits, activationBits: [8, 8, 8])
    let c = try model.corrected(for: a8, calibration: calibration, biasCorrection: true)
    #expect(inEngine.samples[0].accuracy == (try IntegerModel(model: c.model, policy: c.policy, calibration: calibration).accuracy(on: validation)))
    #expect(PolicySamples.key(model: model, validation: validation, calibration: calibration, engine: true)
            != PolicySamples.key(model: model, validation: validation, calibration: calibration))
    #expect(throws: MixedPrecisionError.self) { try PolicySamples(engine: true).measure(model, validation: validation, policies: [bits]) }
}

/// The transfer recipe: on a surface whose summed sensitivity ranks policies roughly right (the
/// proxy misses an interaction and a per-layer scale), pre-training on the proxies lets 40
/// measured samples rank the held-out policies better than 40 samples alone.
@Test func transferHelpsWithFewSamples() throws {
    let widths = [2, 3, 4, 6, 8], layers = 8
    var rng = RandomGenerator(seed: 4)
    let weight = (0..<layers).map { _ in Double(rng.uniform()) * 0.05 + 0.01 }
    func loss(_ l: Int, _ w: Int) -> Double { weight[l] * pow(2, Double(8 - w)) / 16 }
    func accuracy(_ b: [Int]) -> Double {
        var a = 0.95
        for (l, w) in b.enumerated() { a -= loss(l, w) * (l.isMultiple(of: 2) ? 1.3 : 0.8) }
        if b[0] == 2 && b[1] == 2 { a -= 0.03 }
        return a
    }
    let table = SensitivityTable(metric: .hawq, layers: (0..<layers).map { "l\($0)" }, bits: widths,
                                 values: (0..<layers).map { l in widths.map { loss(l, $0) } })
    let samples = (0..<140).map { _ in (0..<layers).map { _ in widths[Int(rng.next() % 5)] } }.map { PolicySamples.Sample(bits: $0, accuracy: accuracy($0)) }
    let train = Array(samples.prefix(40)), held = Array(samples.suffix(100))
    var o = AccuracyMLP.Options(); o.epochs = 100; o.hidden = 64; o.seed = 1
    var transfer = AccuracyMLP.Transfer(table: table); transfer.count = 2000; transfer.epochs = 10
    let alone = try AccuracyMLP.train(train, choices: widths, options: o)
    let pretrained = try AccuracyMLP.train(train, choices: widths, options: o, transfer: transfer)
    let a = AccuracyMLP.agreement(predicted: try alone.predict(held.map(\.bits)), measured: held.map(\.accuracy))
    let b = AccuracyMLP.agreement(predicted: try pretrained.predict(held.map(\.bits)), measured: held.map(\.accuracy))
    print("40 samples: τ", a.tau, "alone,", b.tau, "with transfer")
    #expect(b.tau > a.tau + 0.05 && b.tau >= 0.8, "τ \(a.tau) alone, \(b.tau) with transfer")
    var narrow = table; narrow.bits = [2, 4, 8]; narrow.values = (0..<layers).map { _ in [1, 1, 1] }
    let wrong = AccuracyMLP.Transfer(table: narrow)
    #expect(throws: MixedPrecisionError.self) { try AccuracyMLP.train(train, choices: widths, options: o, transfer: wrong) }
}

/// A cache entry that is not a sample (wrong width count, a width out of range, a fractional
/// width, an accuracy outside 0…1 or missing, not an object, a divergence below 0 or not a
/// number; null is none) is skipped with a warning naming it; the good entries are used; a file that is not a samples cache is an error.
@Test func corruptCacheEntriesAreSkippedWithAWarning() throws {
    let model = try Zoo.make("mlp")
    let validation = try FashionMNIST.load(.train, limit: 50)
    let key = PolicySamples.key(model: model, validation: validation)
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-samples-bad-\(getpid()).json").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    let text = """
        {"key": "\(key)", "samples": [{"bits": [2, 4, 8], "accuracy": 0.5}, {"bits": [2, 4], "accuracy": 0.5},
         {"bits": [2, 9, 8], "accuracy": 0.5}, {"bits": [2, 4.5, 8], "accuracy": 0.5}, {"bits": [4, 4, 4], "accuracy": 7},
         {"bits": [4, 4, 8]}, 12, {"bits": [8, 8, 8], "accuracy": 0.75}, {"bits": [8, 8, 2], "accuracy": 0.5, "divergence": -1},
         {"bits": [8, 2, 2], "accuracy": 0.5, "divergence": "small"}, {"bits": [2, 2, 2], "accuracy": 0.25, "divergence": null},
         {"bits": [2, 2, 8], "accuracy": 0.25, "divergence": 0.125}]}
        """
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    var warnings: [String] = []
    let s = try PolicySamples(cache: path).cached(key: key, layers: 3) { warnings.append($0) }
    #expect(s == [.init(bits: [2, 4, 8], accuracy: 0.5), .init(bits: [8, 8, 8], accuracy: 0.75), .init(bits: [2, 2, 2], accuracy: 0.25),
                  .init(bits: [2, 2, 8], accuracy: 0.25, divergence: 0.125)])
    #expect(warnings.count == 8 && warnings.allSatisfy { $0.contains("skipped") } && warnings[3].contains("found 7.0"))
    #expect(warnings[6].contains("divergence ≥ 0, found -1.0") && warnings[7].contains("divergence"), "\(warnings)")
    try "[1, 2".write(toFile: path, atomically: true, encoding: .utf8)
    #expect(throws: MixedPrecisionError.self) { try PolicySamples(cache: path).cached(key: key, layers: 3) }
}

/// A saved predictor loads back predicting the same accuracies; a file that is not one is refused.
@Test func predictorSavesAndLoads() throws {
    let samples = (0..<20).map { i in PolicySamples.Sample(bits: [[2, 4, 8][i % 3], [4, 8][i % 2]], accuracy: 0.5 + 0.02 * Double(i)) }
    var o = AccuracyMLP.Options(); o.epochs = 5; o.hidden = 16
    let p = try AccuracyMLP.train(samples, choices: [2, 4, 8], options: o)
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-predictor-\(getpid()).npz").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    try p.save(to: path)
    let q = try AccuracyMLP.load(path)
    let policies = [[2, 4], [8, 8], [4, 2]]
    let (a, b) = (try p.predict(policies), try q.predict(policies))
    #expect(q.choices == [2, 4, 8] && q.layers == 2 && zip(a, b).allSatisfy { abs($0 - $1) < 1e-9 })
    try NPZ.write([("x", try Tensor.zeros([2]))], to: path)
    #expect(throws: MixedPrecisionError.self) { try AccuracyMLP.load(path) }
}

/// A predictor taught the output divergence (target .divergence) learns −log divergence — here
/// a divergence whose order is the reverse of the accuracy's, so the two predictors disagree —,
/// keeps its target through a file, and refuses samples without a measured divergence.
@Test func predictorLearnsTheDivergenceWhenAsked() throws {
    let choices = [2, 4, 8]
    // Accuracy rises with layer 0's width, the divergence with layer 1's narrowness only.
    let samples = (0..<27).map { i -> PolicySamples.Sample in
        let b = [choices[i % 3], choices[(i / 3) % 3], choices[i / 9]]
        return PolicySamples.Sample(bits: b, accuracy: 0.5 + 0.05 * log2(Double(b[0])), divergence: 0.001 * pow(2, Double(8 - b[1])))
    }
    var o = AccuracyMLP.Options(); o.epochs = 200; o.hidden = 16; o.seed = 2
    let byAccuracy = try AccuracyMLP.train(samples, choices: choices, options: o)
    o.target = .divergence
    let byDivergence = try AccuracyMLP.train(samples, choices: choices, options: o)
    #expect(byAccuracy.target == .accuracy && byDivergence.target == .divergence)
    let probe = [[8, 2, 4], [2, 8, 4]]
    let a = try byAccuracy.predict(probe), d = try byDivergence.predict(probe)
    // Scores: higher is better. The accuracy predictor prefers the first, the divergence one the second.
    #expect(a[0] > a[1] && d[1] > d[0], "\(a) \(d)")
    // −log(0.001 · 2⁶) for [8, 2, 4]: within a tenth of the score's range of 4.2.
    #expect(abs(d[0] - -log(0.064)) < 0.42 && abs(PredictionTarget.divergence.figure(score: d[0]) - 0.064) < 0.03, "\(d)")
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-divergence-target-\(getpid()).npz").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    try byDivergence.save(to: path)
    let back = try AccuracyMLP.load(path)
    let again = try back.predict(probe)
    #expect(back.target == .divergence && zip(again, d).allSatisfy { abs($0 - $1) < 1e-6 })
    let unmeasured = samples.map { PolicySamples.Sample(bits: $0.bits, accuracy: $0.accuracy) }
    #expect(throws: MixedPrecisionError.self) { try AccuracyMLP.train(unmeasured, choices: choices, options: o) }
    #expect(throws: MixedPrecisionError.self) { try byDivergence.refined(with: Array(unmeasured.prefix(2))) }
}

/// The divergence predictor on the reference MLP: each policy's whole-model KL on 300
/// calibration images (bias-corrected, as the samples are) is 0 for the float widths' neighbour
/// (all 8 bits: tiny) and grows as a layer narrows; the curve fitted on 20 measured policies ranks
/// 20 held-out ones (τ and MAE below) and never predicts more accuracy for more divergence; too
/// few samples, or accuracies that rise with the divergence, are refused.
@Test func divergencePredictorFollowsTheMeasuredAccuracy() throws {
    let model = try Zoo.make("mlp")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_mlp.npz")
    let (validation, rest) = try FashionMNIST.load(.train, limit: 1500).split(0.8, seed: 1)
    let calibration = rest.images
    let divergence = try PolicyDivergence(model: model, calibration: calibration)
    let d8 = try divergence.divergence(bits: [8, 8, 8]), d4 = try divergence.divergence(bits: [8, 4, 8])
    let d2 = try divergence.divergence(bits: [8, 2, 8]), d1 = try divergence.divergence(bits: [8, 1, 8])
    #expect(d8 >= 0 && d8 < d4 && d4 < d2 && d2 < d1, "KL at 8/4/2/1 bits in fc2: \(d8) \(d4) \(d2) \(d1)")
    var seen = Set<[Int]>()
    let policies = try PolicySamples.random(model, count: 80, bits: [1, 2, 3, 4, 8], seed: 3).filter { seen.insert($0).inserted }.prefix(40)
    let samples = try PolicySamples(calibration: calibration).measure(model, validation: validation, policies: Array(policies)).samples
    let p = try DivergencePredictor(divergence: divergence, samples: Array(samples.prefix(20)))
    #expect(p.choices == [1, 2, 3, 4, 8] && p.layers == 3)
    let held = Array(samples.suffix(20))
    let a = AccuracyMLP.agreement(predicted: try p.predict(held.map(\.bits)), measured: held.map(\.accuracy))
    print("divergence predictor on the reference MLP: τ \(a.tau), ρ \(a.rho), MAE \(a.mae) (accuracies \(held.map(\.accuracy).min()!)…\(held.map(\.accuracy).max()!))")
    #expect(a.tau >= 0.7 && a.mae <= 0.03, "τ \(a.tau), MAE \(a.mae)")
    // As the MLP's pre-training source its proxies are its own predictions.
    var transfer = AccuracyMLP.Transfer(predictor: p); transfer.count = 30
    let proxies = try transfer.samples(choices: p.choices, layers: 3)
    #expect(proxies.map(\.accuracy) == (try p.predict(proxies.map(\.bits))))
    let sweep = stride(from: -12.0, through: 4, by: 0.25).map { p.accuracy(divergence: exp($0)) }
    #expect(zip(sweep, sweep.dropFirst()).allSatisfy { $0 >= $1 })
    #expect(throws: MixedPrecisionError.self) { try DivergencePredictor(divergence: divergence, samples: Array(samples.prefix(2))) }
    let rising = samples.prefix(10).map { PolicySamples.Sample(bits: $0.bits, accuracy: min(1, 0.5 + 10 * (try! divergence.divergence(bits: $0.bits)))) }
    #expect(throws: MixedPrecisionError.self) { try DivergencePredictor(divergence: divergence, samples: rising) }
}
