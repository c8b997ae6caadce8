import Foundation
import Testing
import TestSupport
import MixedPrecision
import Network
import Quantization
import Tensors

/// The acceptance on fmnist_resnet20 (weight-only, per-channel, no fine-tuning):
/// HAWQ-V3 — exact Hessian traces on the first 256 training images, Ω = Tr/P·‖ΔW‖², the exact
/// solver, candidates {2, 3, 4, 5, 6, 8}, first and last layer at 8 bits, shortcuts tied — at an
/// average of 4 bits reaches ≥ 93.7% (uniform 4-bit: 93.47%) and at 3 bits ≥ 93.0% (88.51%).
@Test func hawqV3PolicyOnResNet20BeatsUniform() throws {
    let model = try Zoo.make("resnet20")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_resnet20.npz")
    let analysis = try HessianAnalysis(model: model, data: try FashionMNIST.load(.train, limit: 256))
    #expect(analysis.usesGaussNewton)
    let traces = try analysis.exactDiagonals().mapValues { $0.scalars.reduce(0.0) { $0 + Double($1) } }
    let table = try SensitivityTable.hawq(model: model, traces: traces, bits: [2, 3, 4, 5, 6, 8])
    let test = try FashionMNIST.load(.test)
    #expect(model.layersSharingInputs == [[7, 9], [14, 16]])
    for (average, target) in [(4.0, 0.937), (3.0, 0.930)] {
        let limit = try CostModel.size.uniformCost(model, bits: 1) * average
        let problem = try BitAllocation(model: model, table: table, budgets: [(.size, limit)], pinned: ["conv1": 8, "fc": 8])
        let solution = try problem.solveExactly()
        #expect(solution.costs[0] <= limit)
        #expect(solution.bits[7] == solution.bits[9] && solution.bits[14] == solution.bits[16])
        let policy = try table.policy(bits: solution.bits, model: model)
        let accuracy = try model.quantized(policy: policy).accuracy(on: test)
        print("HAWQ-V3 ResNet-20 at \(average) bits average: \(accuracy) (\(try CostModel.size.cost(policy)) bytes), bits \(solution.bits)")
        #expect(accuracy >= target, "average \(average) bits: \(accuracy) < \(target)")
        // Bias correction on the first 512 training images (issue 21): measured 93.87% at 4 bits
        // and 93.64% at 3 bits (Sony MCT: 93.93% and 93.55% at the same bytes).
        let corrected = try model.quantized(policy: policy, calibration: try FashionMNIST.calibration().images, biasCorrection: true).accuracy(on: test)
        print("HAWQ-V3 ResNet-20 at \(average) bits average with bias correction: \(corrected)")
        #expect(corrected >= (average == 4 ? 0.938 : 0.935), "bias-corrected at \(average) bits: \(corrected)")
        // The frontier's point under the same budget has the same objective.
        let frontier = try problem.paretoFrontier()
        let point = try #require(frontier.last { $0.costs[0] <= limit })
        #expect(abs(point.objective - solution.objective) <= 1e-9 * solution.objective)
    }
}

/// Cost models on a layer whose figures can be worked by hand (the MLP's fc1: 784→256).
@Test func costModels() throws {
    let mlp = try Zoo.make("mlp")
    let fc1 = mlp.layers[0]
    #expect(try CostModel.size.cost(fc1, bits: 4) == 200704 / 2)
    #expect(try CostModel.bitOps(activationBits: nil).cost(fc1, bits: 4) == 200704 * 16)
    #expect(try CostModel.bitOps(activationBits: 8).cost(fc1, bits: 2) == 200704 * 16)
    // BitFusion 16×32: 8 column tiles × ⌈784/16⌉ = 392 cycles at 8×8; 2×2 runs 16× faster in depth.
    #expect(try CostModel.bitFusion(activationBits: nil, rows: 16, columns: 32).cost(fc1, bits: 8) == 8 * 49)
    #expect(try CostModel.bitFusion(activationBits: nil, rows: 16, columns: 32).cost(fc1, bits: 2) == 8 * 4)
    #expect(try CostModel.bitFusion(activationBits: nil, rows: 16, columns: 32).cost(fc1, bits: 6) == 8 * 49)
    // Energy at 8 bits, worked by hand: 392 cycles × 512 units × 0.3 pJ; SRAM: 200,704 MACs / 256
    // outputs × 8 tiles × 8 bits + 256 outputs × 32 bits, × 5/32 pJ; DRAM: 200,704 × 8 bits × 20 pJ.
    let e = CostModel.EnergyConstants.horowitz45nm
    let energy8 = (392.0 * 512 * 0.3 + (784.0 * 8 * 8 + 256 * 32) * 5 / 32 + 200704.0 * 8 * 20) * 1e-6
    #expect(abs(try CostModel.bitFusionEnergy(activationBits: nil, rows: 16, columns: 32, constants: e).cost(fc1, bits: 8) - energy8) < 1e-9)
    #expect(try CostModel.bitFusionEnergy(activationBits: nil, rows: 16, columns: 32, constants: e).cost(fc1, bits: 2)
            < energy8 / 3.9)
    #expect(throws: MixedPrecisionError.self) { try CostModel.table(name: "latency", values: [:]).cost(fc1, bits: 4) }
}

/// ZeroQ's distilled data: the statistics loss falls (here by more than 10× in 60 Adam steps on
/// the CNN), the gradient of the loss matches central differences, and the same seed gives the
/// same images.
@Test func distilledDataMatchesBatchNormStatistics() throws {
    let model = try Zoo.make("cnn")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_cnn.npz")
    var options = Distillation.Options()
    options.count = 8; options.iterations = 60
    let r = try Distillation.distill(model, options: options)
    #expect(r.loss < r.initialLoss / 10, "loss \(r.initialLoss) → \(r.loss)")
    #expect(try Distillation.distill(model, options: options).images == r.images)
    // Gradient check of the input-statistics term alone, on a tiny tensor.
    var rng = RandomGenerator(seed: 4)
    let x = try Tensor.random([3, 2, 2, 2], .normal(mean: 0.3, std: 1.2), using: &rng)
    let (_, g) = try Distillation.statisticsLoss(x, mean: [0.1, -0.2], std: [1, 0.5])
    for i in [0, 5, 13, 23] {
        var plus = x, minus = x
        plus.withUnsafeMutableScalars { $0[i] += 1e-2 }; minus.withUnsafeMutableScalars { $0[i] -= 1e-2 }
        let fd = (try Distillation.statisticsLoss(plus, mean: [0.1, -0.2], std: [1, 0.5]).0
                  - Distillation.statisticsLoss(minus, mean: [0.1, -0.2], std: [1, 0.5]).0) / 2e-2
        #expect(abs(fd - Double(g.scalars[i])) <= 1e-3 + 1e-2 * abs(fd), "element \(i): \(g.scalars[i]) vs \(fd)")
    }
}

/// The measured latency table: every layer timed as the engine runs it, bigger layers slower,
/// and the cache returns the same table without measuring again. Convolutions cost the same at
/// every width from 2 to 8 bits (the engine multiplies them as int8); linear layers (one output
/// pixel, a matrix–vector product on weights stored at 8, 4 or 2 bits) are timed at each storage
/// width, 3 bits sharing the 4-bit entry.
@Test func latencyTableIsMeasuredAndCached() throws {
    var rngForLatency = RandomGenerator(seed: 3)
    let mlp = try Zoo.make("mlp")
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-latency-\(getpid())").path
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let (first, measured) = try LatencyTable.cached(mlp, bits: [4, 8], directory: dir)
    #expect(measured)
    for layer in mlp.layers { #expect(first.milliseconds[layer.name]!.values.allSatisfy { $0 > 0 }) }
    #expect(first.milliseconds["fc1"]![8]! > first.milliseconds["fc3"]![8]!)
    let cnnModel = try Zoo.make("cnn")
    let cnn = try LatencyTable.measure(cnnModel, bits: [2, 3, 4, 5, 8])
    for conv in ["conv1", "conv2", "conv3"] { #expect(Set(cnn.milliseconds[conv]!.values).count == 1, "\(conv)") }
    for fc in ["fc1", "fc2"] {
        let t = cnn.milliseconds[fc]!
        #expect(t[3] == t[4] && t[5] == t[8] && t.values.allSatisfy { $0 > 0 }, "\(fc): \(t)")
    }
    // The linear layers' own timings at each storage width; the convolutions have none.
    let engine = try IntegerModel(model: cnnModel, policy: try Policy.uniform(cnnModel, bits: 8, activationBits: 8),
                                  calibration: try Tensor.random([4] + cnnModel.inputShape, .normal(mean: 0, std: 1), using: &rngForLatency))
    let vector = try engine.vectorLayerMilliseconds()
    #expect(Set(vector.keys) == ["fc1", "fc2"] && vector.values.allSatisfy { Set($0.keys) == [2, 4, 8] })
    let (again, measuredAgain) = try LatencyTable.cached(mlp, bits: [4, 8], directory: dir)
    #expect(!measuredAgain)
    #expect(again == first)
    #expect(throws: MixedPrecisionError.self) { try LatencyTable.measure(mlp, bits: [0]) }
    // At 1 bit the entry is the layer as W1A1 (XNOR-popcount): measured, its own figure; a binary
    // network is timed on its real-valued skeleton.
    let binary = try LatencyTable.measure(try Zoo.binary("cnn"), bits: [1, 8])
    #expect(binary.milliseconds.values.allSatisfy { $0[1]! > 0 && $0[8]! > 0 && $0[1] != $0[8] })
}

/// The accuracy predictor recovers a logistic curve it was calibrated on, and refuses
/// calibrations it cannot use.
@Test func accuracyPredictorFitsALogisticCurve() throws {
    func truth(_ x: Double) -> Double { 0.1 + (0.95 - 0.1) / (1 + exp((x - 2) / 0.5)) }
    let xs = [0.0, 1, 1.8, 3, 4]
    let p = try AccuracyPredictor(objectives: xs.map { exp($0) }, accuracies: xs.map(truth), floor: 0.1, ceiling: 0.95)
    #expect(p.residual < 2e-3)
    for x in [0.5, 2.5, 3.5] { #expect(abs(p.predict(exp(x)) - truth(x)) < 5e-3, "at log Σ Ω = \(x)") }
    #expect(p.predict(exp(-5)) <= 0.95 && p.predict(exp(9)) >= 0.1)
    #expect(throws: MixedPrecisionError.self) { try AccuracyPredictor(objectives: [1], accuracies: [0.9]) }
    #expect(throws: MixedPrecisionError.self) { try AccuracyPredictor(objectives: [1, .nan], accuracies: [0.9, 0.8]) }
    #expect(throws: MixedPrecisionError.self) { try AccuracyPredictor(objectives: [1, 2], accuracies: [0.9, 0.8], floor: 0.9, ceiling: 0.5) }
    let table = SensitivityTable(metric: .mse, layers: ["a", "b"], bits: [2, 4], values: [[3, 1], [5, 2]])
    #expect(table.objective(bits: [2, 4]) == 5)
    #expect(table.objective(bits: [3, 4]) == nil)
}

/// One size formula: a search's size budget, the cost the solver reports for its solution and
/// the policy's own size (what `size(m, p)`, `cost(m, p)` and `p.size` print) agree exactly;
/// a kernel-wise layer costs the sum of its channels' costs.
@Test func sizeBudgetReportAndPolicyAgree() throws {
    let model = try Zoo.make("cnn")
    let table = try SensitivityTable.hawq(model: model, traces: Dictionary(uniqueKeysWithValues: model.layers.enumerated().map { ($1.name, Double($0 + 1)) }),
                                         bits: [2, 3, 4, 8])
    let result = try Search(budgets: [.averageBits(3.5)]).run(table, model: model)
    let size = try CostModel.size.cost(result.policy)
    #expect(size == result.solution.costs[0])
    #expect(try size <= CostModel.size.uniformCost(model, bits: 1) * 3.5)
    #expect(abs(result.policy.averageBits - size * 8 / Double(model.layers.reduce(0) { $0 + $1.parameterCount })) < 1e-12)
    // Kernel-wise: channel by channel.
    let layer = model.layers[1], n = layer.weightShape[0]
    let widths = (0..<n).map { [2, 8][$0 % 2] }
    let entry = Policy.Entry(layer: layer, weight: Policy.Weight.reference(bits: 8).perChannel(widths), activation: Policy.Activation(bits: 8))
    let half = Double(layer.parameterCount / 2)
    #expect(try CostModel.size.cost(entry) == half * 2 / 8 + half * 8 / 8)
    #expect(try CostModel.bitOps(activationBits: nil).cost(entry) == Double(layer.macs / 2) * 2 * 8 + Double(layer.macs / 2) * 8 * 8)
    // Float weights count 32 bits; BitFusion refuses them.
    let float = Policy.Entry(layer: layer, weight: nil)
    #expect(try CostModel.size.cost(float) == Double(layer.parameterCount * 4))
    #expect(throws: MixedPrecisionError.self) { try CostModel.bitFusion(activationBits: nil, rows: 16, columns: 32).cost(float) }
}

/// A sensitivity table measured under a template policy's quantizers gives a search result with
/// those quantizers: pow2 stays pow2, the binary layer stays at 1 bit, activations are kept.
@Test func searchKeepsTheTemplatesQuantizers() throws {
    let model = try Zoo.make("cnn")
    let l = model.layers
    var entries = l.map { Policy.Entry(layer: $0, weight: Policy.Weight(Quantizer(bits: 8, scheme: .powerOfTwo)), activation: Policy.Activation(bits: 4, scheme: .hwgq)) }
    entries[2].weight = Policy.Weight(Quantizer(bits: 1, scheme: .binary))
    let template = try Policy(model: model, entries: entries)
    let traces = Dictionary(uniqueKeysWithValues: l.map { ($0.name, 1.0) })
    let table = try SensitivityTable.hawq(model: model, traces: traces, bits: [1, 2, 4, 8], template: template)
    // The pow2 perturbation at 4 bits is the pow2 quantizer's.
    let w = model.parameters[l[0].weight]!
    let pow2 = try Quantizer(bits: 4, scheme: .powerOfTwo).quantize(w).dequantized
    let expected = zip(w.scalars, pow2.scalars).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) } / Double(l[0].parameterCount)
    #expect(abs(table.values[0][2] - expected) <= 1e-9 * expected)
    let result = try Search(budgets: [.averageBits(4)]).run(table, model: model)
    #expect(result.solution.bits[2] == 1)
    #expect(result.policy.entries[2].weight?.quantizer.scheme == .binary)
    for (i, e) in result.policy.entries.enumerated() where i != 2 && e.weight!.quantizer.bits > 1 {
        #expect(e.weight?.quantizer.scheme == .powerOfTwo)
    }
    #expect(result.policy.entries.allSatisfy { $0.activation == Policy.Activation(bits: 4, scheme: .hwgq) })
}

/// Kernel-wise HAWQ-V3 (issue 12's acceptance): the exact solver over every channel of ResNet-20
/// with candidates {2, 3, 4, 5, 6, 8}, first and last layer at 8 bits, at an average of 3 bits,
/// on the same 256 training images as the layer-wise test (93.08% there). Three channel
/// objectives: HAWQ-V3's trace, Tr(H_{l,c})/P_{l,c}·‖ΔW_{l,c}‖² (92.77% measured), the diagonal
/// Σ H_ii·ΔW_i² (92.90%), and the channel's exact Gauss–Newton block ΔW_cᵀ·G_cc·ΔW_c
/// (93.35%). The last must reach issue 12's 93.3%; the others are guarded far
/// above uniform 3-bit (88.51%). Like for like, a layer-wise allocation with each layer's exact
/// Gauss–Newton form ΔW_lᵀ·G_ll·ΔW_l (printed) measured 93.27%.
@Test func kernelWiseHAWQBeatsLayerWiseAtThreeBits() throws {
    let model = try Zoo.make("resnet20")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_resnet20.npz")
    let diagonals = try KernelWiseTable.diagonals(model: model, data: try FashionMNIST.load(.train, limit: 256))
    // Each layer's channel traces sum to its layer trace.
    let analysis = try HessianAnalysis(model: model, data: try FashionMNIST.load(.train, limit: 256))
    let layerTrace = try analysis.exactTrace(model.layers[3])
    #expect(abs(KernelWiseTable.channelTraces(diagonals[model.layers[3].name]!).reduce(0, +) - layerTrace) <= 1e-5 * abs(layerTrace))
    let limit = try CostModel.size.uniformCost(model, bits: 1) * 3
    let test = try FashionMNIST.load(.test)
    var accuracies: [KernelWiseTable.Objective: Double] = [:]
    for objective in KernelWiseTable.Objective.allCases {
        let started = Date()
        let table = objective == .gaussNewton
            ? try KernelWiseTable(model: model, data: try FashionMNIST.load(.train, limit: 256), bits: [2, 3, 4, 5, 6, 8])
            : try KernelWiseTable(model: model, diagonals: diagonals, bits: [2, 3, 4, 5, 6, 8], objective: objective)
        print("kernel-wise table (\(objective.rawValue)): \(Date().timeIntervalSince(started)) s")
        let (policy, solution) = try table.search(model: model, size: limit, pinned: ["conv1": 8, "fc": 8])
        #expect(try CostModel.size.cost(policy) == solution.costs[0])
        #expect(solution.costs[0] <= limit)
        #expect(policy.isKernelWise)
        accuracies[objective] = try model.quantized(policy: policy).accuracy(on: test)
        print("kernel-wise HAWQ-V3 (\(objective.rawValue)) ResNet-20 at 3 bits average: \(accuracies[objective]!) (\(solution.costs[0]) bytes, \(solution.bits.count) channels)")
    }
    for (objective, accuracy) in accuracies {
        #expect(accuracy >= (objective == .gaussNewton ? 0.933 : 0.92), "kernel-wise (\(objective.rawValue)) at 3 bits: \(accuracy)")
    }
    #expect(throws: MixedPrecisionError.self) { try KernelWiseTable(model: model, diagonals: diagonals, bits: [2, 4], objective: .gaussNewton) }
    // Like for like: a layer-wise allocation with each layer's exact Gauss–Newton form ΔW_lᵀ·G_ll·ΔW_l.
    let bits = [2, 3, 4, 5, 6, 8]
    let values = try model.layers.map { layer in
        try bits.map { b in
            let w = model.parameters[layer.weight]!
            return try analysis.quadraticForm(layer, try Policy.Weight.reference(bits: b).quantize(w).dequantized - w)
        }
    }
    let layerWise = SensitivityTable(metric: .hawq, layers: model.layers.map(\.name), bits: bits, values: values)
    let problem = try BitAllocation(model: model, table: layerWise, budgets: [(.size, limit)], pinned: ["conv1": 8, "fc": 8])
    let layerWiseAccuracy = try model.quantized(policy: try layerWise.policy(bits: try problem.solveExactly().bits, model: model)).accuracy(on: test)
    print("layer-wise allocation with exact Gauss–Newton forms, ResNet-20 at 3 bits average: \(layerWiseAccuracy)")
    #expect(layerWiseAccuracy >= 0.92)
}
