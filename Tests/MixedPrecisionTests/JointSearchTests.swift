import Foundation
import Testing
import TestSupport
import MixedPrecision
import Network
import Quantization
import Tensors

/// APQ's joint space on ResNet-20's structure: a point's cost (widths and the block conv1s' keep
/// ratios) equals the cost of its policy on the model pruned to it, for size, BitOps and BitFusion
/// energy; a latency table is refused; a layer that cannot be pruned alone is refused naming the
/// prunable ones; random points meet the budget.
@Test func jointSpaceCostsCountTheKeptChannels() throws {
    let model = try Zoo.make("resnet20")
    let prune = model.prunableLayers
    #expect(prune.count == 9)
    let ratios = [0.25, 0.5, 0.75, 1.0]
    for cost in [CostModel.size, .bitOps(activationBits: 8), .bitFusionEnergy(activationBits: nil, rows: 16, columns: 32, constants: .horowitz45nm)] {
        let budget = try cost.cost(try Policy(model: model, weightBits: Array(repeating: 4, count: model.layers.count),
                                              activationBits: Array(repeating: 8, count: model.layers.count))) * 0.7
        let space = try Evolution.Space(model: model, choices: [2, 4, 8], cost: cost, budget: budget, ends: 8, prune: prune, ratios: ratios)
        for point in try space.randomPoints(count: 5, seed: 3) {
            let pruned = try model.pruned(keep: Dictionary(uniqueKeysWithValues: zip(prune, point.keep)))
            let activations: [Int]? = cost.name == "bitops" ? Array(repeating: 8, count: point.bits.count) : nil
            let exact = try cost.cost(try Policy(model: pruned, weightBits: point.bits, activationBits: activations))
            let searched = try space.cost(bits: point.bits, keep: point.keep)
            #expect(abs(searched - exact) <= 1e-9 * exact && searched <= budget, "\(cost.name): \(searched) vs \(exact), budget \(budget)")
        }
    }
    let table = CostModel.table(name: "latency", values: [:])
    #expect(throws: MixedPrecisionError.self) { try Evolution.Space(model: model, choices: [2, 4], cost: table, budget: 1, prune: prune, ratios: ratios) }
    #expect(throws: MixedPrecisionError.self) { try Evolution.Space(model: model, choices: [2, 4], cost: .size, budget: 1e9, prune: ["layer1.0.conv2"], ratios: ratios) }
    #expect(throws: MixedPrecisionError.self) { try Evolution.Space(model: model, choices: [2, 4], cost: .size, budget: 1e9, prune: prune, ratios: [0, 1]) }
}

/// The search over widths × keep ratios on a surface where pruning costs accuracy in proportion
/// to what it removes: every candidate within the budget (which bits alone cannot meet), the keep
/// genes searched (the result prunes, and prunes the cheap-to-prune layer most), same seed same result.
@Test func evolutionSearchesWidthAndBits() throws {
    let choices = [2, 4, 8], ratios = [0.5, 1.0]
    // The CNN's conv2 and conv3 prunable; all-2-bit weights cost 1.25× the budget.
    let model = try Zoo.make("cnn")
    let budget = try CostModel.size.cost(try Policy(model: model, weightBits: Array(repeating: 2, count: model.layers.count))) * 0.8
    let joint = try Evolution.Space(model: model, choices: choices, cost: .size, budget: budget, prune: ["conv2", "conv3"], ratios: ratios)
    #expect(throws: MixedPrecisionError.self) {
        try Evolution.Space(model: model, choices: choices, cost: .size, budget: budget).checkFeasible()
    }
    func accuracy(_ p: Evolution.Point) -> Double {
        0.9 - p.bits.reduce(0) { $0 + 0.01 * Double(8 - $1) } - (1 - p.keep[0]) * 0.3 - (1 - p.keep[1]) * 0.02
    }
    var o = Evolution.Options(); o.iterations = 20; o.population = 30; o.parents = 8; o.seed = 4
    var seen: [Evolution.Point] = []
    let r = try Evolution(options: o).run(joint, predictPoints: { seen += $0; return $0.map(accuracy) }, measurePoints: { $0.map(accuracy) })
    #expect(seen.allSatisfy { (try? joint.cost(bits: $0.bits, keep: $0.keep)) ?? .infinity <= budget })
    #expect(Set(seen.map(\.keep)).count > 1)
    #expect(r.best.cost <= budget && r.best.keep.count == 2 && r.best.keep == [1.0, 0.5], "\(r.best.keep)")
    let again = try Evolution(options: o).run(joint, predictPoints: { $0.map(accuracy) }, measurePoints: { $0.map(accuracy) })
    #expect(again.best.bits == r.best.bits && again.best.keep == r.best.keep)
}

/// Joint samples: measured on the pruned model, cached with their keep ratios under their own key
/// (a bits-only cache of the same model and split is another file's business), read back without
/// measuring again; the MLP's joint encoding (architecture part, then bits) trains on them, saves
/// and loads with its keep ratios, and refuses points of another shape.
@Test func jointSamplesAndTheirPredictor() throws {
    let model = try Zoo.make("mlp")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_mlp.npz")
    let validation = try FashionMNIST.load(.train, limit: 300)
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-joint-\(getpid()).json").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    #expect(model.prunableLayers == ["fc1", "fc2"])
    let sampler = PolicySamples(cache: path, prune: ["fc1", "fc2"])
    let points = try PolicySamples.random(model, count: 12, bits: [2, 4, 8], seed: 2, keep: (2, [0.25, 0.5, 1]))
    let first = try sampler.measure(model, validation: validation, points: points)
    #expect(first.measured == Set(points).count)
    let pruned = try model.pruned(keep: ["fc1": points[0].keep[0], "fc2": points[0].keep[1]])
    let direct = try pruned.quantized(policy: try Policy(model: pruned, weightBits: points[0].bits)).accuracy(on: validation)
    #expect(first.samples[0].accuracy == direct && first.samples[0].keep == points[0].keep)
    let again = try sampler.measure(model, validation: validation, points: points)
    #expect(again.measured == 0 && again.samples.map(\.accuracy) == first.samples.map(\.accuracy))
    #expect(throws: MixedPrecisionError.self) { try PolicySamples(cache: path).measure(model, validation: validation, policies: [[8, 8, 8]]) }
    var o = AccuracyMLP.Options(); o.epochs = 20; o.hidden = 16
    let p = try AccuracyMLP.train(first.samples, choices: [2, 4, 8], options: o)
    #expect(p.prunedLayers == 2 && p.keepChoices == Array(Set(points.flatMap(\.keep))).sorted())
    let file = path + ".npz"
    defer { try? FileManager.default.removeItem(atPath: file) }
    try p.save(to: file)
    let q = try AccuracyMLP.load(file)
    #expect(q.prunedLayers == 2 && q.keepChoices == p.keepChoices)
    #expect(zip(try q.predict(points: points), try p.predict(points: points)).allSatisfy { abs($0 - $1) < 1e-9 })
    #expect(throws: MixedPrecisionError.self) { try p.predict([[8, 8, 8]]) }
}

/// Batch norm recalibration: on the reference ResNet-20 the recalibrated copy's statistics are
/// its batch norms' input statistics on the images (checked on the first: the stem's, whose input
/// pruning does not change), the original is untouched, and on a pruned network it recovers much
/// of what pruning without fine-tuning lost.
@Test func batchNormRecalibrationRecoversPrunedAccuracy() throws {
    let model = try Zoo.make("resnet20")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_resnet20.npz")
    let (validation, calibration) = try FashionMNIST.load(.train, limit: 1256).split(1000.0 / 1256, seed: 4)
    let before = model.buffers
    let same = try model.recalibratingBatchNorm(on: calibration.images)
    #expect(model.buffers.keys.allSatisfy { model.buffers[$0]!.scalars == before[$0]!.scalars })
    // The stem's batch norm: its input is conv1's output on these images.
    let stem = try #require(model.layers.first)
    let bnIndex = try #require(model.nodes.indices.first { if case .batchNorm = model.nodes[$0].op { return true }; return false })
    let x = try model.inputs(of: bnIndex, on: calibration.images)[0]!
    let c = stem.weightShape[0], pixels = x.count / (x.shape[0] * c)
    var sum = 0.0
    for i in 0..<x.shape[0] { for p in 0..<pixels { sum += Double(x.scalars[i * c * pixels + p]) } }
    let mean0 = sum / Double(x.shape[0] * pixels)
    #expect(abs(Double(same.buffers[model.nodes[bnIndex].inputs[3]]!.scalars[0]) - mean0) < 1e-4 * max(1, abs(mean0)))
    let pruned = try model.pruned(keep: Dictionary(uniqueKeysWithValues: model.prunableLayers.map { ($0, 0.5) }))
    let plain = try pruned.accuracy(on: validation), recalibrated = try pruned.recalibratingBatchNorm(on: calibration.images).accuracy(on: validation)
    print("ResNet-20, every block conv1 at half its channels, no fine-tuning: \(plain) → \(recalibrated) with batch norms recalibrated on 256 images")
    #expect(recalibrated > plain + 0.1, "\(plain) → \(recalibrated)")
    #expect(throws: NetworkError.self) { try model.recalibratingBatchNorm(on: try calibration.images.slice(0..<1)) }
}
