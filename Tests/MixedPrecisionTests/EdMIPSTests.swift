import Foundation
import Testing
import TestSupport
import MixedPrecision
import Network
import Quantization
import Tensors

/// With α one-hot, the search layer is the discrete quantizer the policy names: the Gaussian
/// weight quantizer per tensor (Quantizer .gaussian) and HWGQ at the layer's σ (the policy's
/// hwgq point, fake quantization).
@Test func mixedQuantizerWithOneHotLogitsIsThePolicysQuantizer() throws {
    var rng = RandomGenerator(seed: 3)
    let w = try Tensor.random([8, 4, 3, 3], .normal(mean: 0.01, std: 0.2), using: &rng)
    let x = try Tensor.random([2, 4, 5, 5], .normal(mean: 0, std: 1), using: &rng).map { max($0, 0) }
    for (i, b) in [1, 2, 3, 4].enumerated() {
        let oneHot = Tensor(checkedShape: [4], scalars: (0..<4).map { $0 == i ? 0 : -1e4 })
        let node = Node(name: "q", op: .mixedQuantize(MixedQuantization(kind: .gaussianWeights, bits: [1, 2, 3, 4])), inputs: ["w", "a"], outputs: ["y"])
        let m = try Model(name: "t", nodes: [node], input: "w", output: "y", inputShape: [4, 3, 3], parameters: [("a", oneHot)], buffers: [])
        let got = try m.run(w).output
        let want = try Quantizer(bits: b, scheme: .gaussian, slicing: .tensor).quantize(w).dequantized
        #expect(zip(got.scalars, want.scalars).allSatisfy { abs($0 - $1) <= 1e-6 }, "gaussian \(b) bits")
        var stats = Policy.Activation.Statistics(); stats.add(x)
        let sigma = Float((2 * stats.meanSquare).squareRoot())
        let point = Policy.Activation(bits: b, scheme: .hwgq).point(stats)
        let fake = x.map { min(max(($0 / point.scale).rounded(.toNearestOrEven), Float(point.qmin)), Float(point.qmax)) * point.scale }
        let act = Node(name: "h", op: .mixedQuantize(MixedQuantization(kind: .hwgqActivations, bits: [1, 2, 3, 4])), inputs: ["x", "a", "s"], outputs: ["y"])
        let ma = try Model(name: "t", nodes: [act], input: "x", output: "y", inputShape: [4, 5, 5], parameters: [("a", oneHot)], buffers: [("s", Tensor([sigma]))])
        // In training the batch's σ is used (here the same batch) and the running σ moves towards it.
        ma.buffers["s"] = Tensor([sigma * 2])
        let trained = try ma.run(x, training: true).output
        #expect(zip(trained.scalars, fake.scalars).allSatisfy { abs($0 - $1) <= 1e-5 }, "hwgq \(b) bits, training")
        #expect(abs(ma.buffers["s"]!.scalars[0] - (0.9 * sigma * 2 + 0.1 * sigma)) <= 1e-5 * sigma)
        ma.buffers["s"] = Tensor([sigma])
        #expect(zip(try ma.run(x).output.scalars, fake.scalars).allSatisfy { abs($0 - $1) <= 1e-5 }, "hwgq \(b) bits")
    }
}

/// The search layer's forward pass runs sixteen lanes at a time: its output equals the scalar
/// formula Σ_k π_k·Q_k(x) bit for bit (the same division, rounding, clamps and sums), on a tensor
/// of 16·n + 13 values with many exactly on a rounding boundary, for both kinds.
@Test func mixedQuantizerLanesEqualTheScalarFormula() throws {
    var rng = RandomGenerator(seed: 5)
    let bits = [1, 2, 3, 4], alpha: [Float] = [0.4, -0.3, 0.1, 0.9]
    let pi = MixedQuantization.probabilities(alpha)
    let noise = try Tensor.random([16 * 20 + 13], .normal(mean: 0.2, std: 0.6), using: &rng).scalars
    for kind in MixedQuantization.Kind.allCases {
        let weights = kind == .gaussianWeights
        // Every third value a multiple of half HWGQ's 2-bit step: round-half-to-even boundaries.
        let sigma: Float = 0.7
        let half = 0.5 * MixedQuantization.hwgqSteps[2]! * sigma
        let values = noise.enumerated().map { $0.offset % 3 == 0 ? Float($0.offset % 11 - 3) * half : $0.element }
        let x = Tensor(checkedShape: [1, values.count], scalars: values)
        let node = Node(name: "q", op: .mixedQuantize(MixedQuantization(kind: kind, bits: bits)), inputs: weights ? ["x", "a"] : ["x", "a", "s"], outputs: ["y"])
        let m = try Model(name: "t", nodes: [node], input: "x", output: "y", inputShape: [values.count],
                          parameters: [("a", Tensor(checkedShape: [4], scalars: alpha))], buffers: weights ? [] : [("s", Tensor([sigma]))])
        let got = try m.run(x).output.scalars
        let steps: [Float]
        if weights {
            let mean = values.reduce(0, +) / Float(values.count)
            let std = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(values.count)).squareRoot()
            steps = bits.map { MixedQuantization.gaussianSteps[$0]! * std }
        } else {
            steps = bits.map { MixedQuantization.hwgqSteps[$0]! * sigma }
        }
        let want = values.map { v -> Float in
            var s: Float = 0
            for (k, b) in bits.enumerated() {
                let (lo, hi): (Float, Float) = weights ? (-Float(1 << (b - 1)), Float((1 << (b - 1)) - 1)) : (0, Float((1 << b) - 1))
                let q = min(max((v / steps[k]).rounded(weights ? .down : .toNearestOrEven), lo), hi)
                s += pi[k] * ((weights ? q + 0.5 : q) * steps[k])
            }
            return s
        }
        #expect(zip(got, want).filter { $0.bitPattern != $1.bitPattern }.count == 0, "\(kind): \(zip(got, want).filter { $0.bitPattern != $1.bitPattern }.count) differ")
    }
}

/// ∂L/∂α of both kinds of search layer and of the cost term against central differences (L
/// smooth in α with x fixed), and the input's straight-through gradient against its rule.
@Test func edmipsGradientsMatchCentralDifferences() throws {
    var rng = RandomGenerator(seed: 4)
    for kind in MixedQuantization.Kind.allCases {
        let q = MixedQuantization(kind: kind, bits: [1, 2, 4])
        let weights = kind == .gaussianWeights
        let x = try Tensor.random([3, 2, 4, 4], .normal(mean: 0.3, std: 0.5), using: &rng)
        let r = try Tensor.random(x.shape, .normal(mean: 0, std: 1), using: &rng)
        let alpha = Tensor(checkedShape: [3], scalars: [0.3, -0.2, 0.5])
        let node = Node(name: "q", op: .mixedQuantize(q), inputs: weights ? ["x", "a"] : ["x", "a", "s"], outputs: ["y"])
        let m = try Model(name: "t", nodes: [node], input: "x", output: "y", inputShape: [2, 4, 4], parameters: [("a", alpha)],
                          buffers: weights ? [] : [("s", Tensor([0.7]))])
        func loss(_ a: [Float]) throws -> Double {
            m.parameters["a"] = Tensor(checkedShape: [3], scalars: a)
            return zip(try m.run(x).output.scalars, r.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let (_, trace) = try m.run(x, keepTrace: true)
        let grads = try m.gradients(trace!, outputGradient: r, inputGradient: true)
        for k in 0..<3 {
            var (up, down) = (alpha.scalars, alpha.scalars)
            up[k] += 1e-2; down[k] -= 1e-2
            let fd = (try loss(up) - loss(down)) / 2e-2
            #expect(abs(Double(grads["a"]!.scalars[k]) - fd) <= 1e-3 * max(1, abs(fd)), "\(kind) α[\(k)]: \(grads["a"]!.scalars[k]) vs \(fd)")
        }
        m.parameters["a"] = alpha
        if kind == .gaussianWeights { #expect(grads[m.input]!.scalars == r.scalars) }
    }
    // The cost term's gradient.
    let model = try Zoo.make("cnn")
    var e = EdMIPS(); e.lambda = 0.5
    let (search, layers) = try e.searchModel(model, calibration: try FashionMNIST.load(.train, limit: 32).images)
    #expect(layers.map(\.layer) == ["conv2", "conv3", "fc1"])
    for l in layers { search.parameters[l.weightLogits] = try Tensor.random([4], .normal(mean: 0, std: 1), using: &rng) }
    let (_, g) = e.penalty(search, layers)
    let largest = g.values.flatMap(\.scalars).map { abs(Double($0)) }.max()!
    for l in layers {
        for name in [l.weightLogits, l.activationLogits] {
            for k in 0..<4 {
                let a = search.parameters[name]!
                var up = a.scalars, down = a.scalars
                up[k] += 1e-2; down[k] -= 1e-2
                search.parameters[name] = Tensor(checkedShape: [4], scalars: up); let hi = e.penalty(search, layers).value
                search.parameters[name] = Tensor(checkedShape: [4], scalars: down); let lo = e.penalty(search, layers).value
                search.parameters[name] = a
                // Softmax in Float32: differences are good to ~1e-6 of the value, hence the floor.
                let fd = (hi - lo) / 2e-2
                #expect(abs(Double(g[name]!.scalars[k]) - fd) <= 2e-3 * max(abs(fd), 0.01 * largest), "\(name)[\(k)]: \(g[name]!.scalars[k]) vs \(fd)")
            }
        }
    }
    // Uniform W2A2 costs 2.0 under the normalisation (λ = 1).
    e.lambda = 1
    for l in layers {
        search.parameters[l.weightLogits] = Tensor(checkedShape: [4], scalars: [-1e4, 0, -1e4, -1e4])
        search.parameters[l.activationLogits] = Tensor(checkedShape: [4], scalars: [-1e4, 0, -1e4, -1e4])
    }
    #expect(abs(e.penalty(search, layers).value - 2) <= 1e-9)
}

/// The cost term steers: on the CNN (one search epoch on 2,048 images), a larger λ gives lower
/// expected BitOps, and the discrete policies' BitOps follow; a BitOps target moves the argmax
/// towards it; the same seed gives the same policy; the result is a policy of Gaussian
/// weights and HWGQ inputs whose simulation is what the run returns.
@Test func edmipsLambdaSteersTheBits() throws {
    let model = try Zoo.make("cnn")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_cnn.npz")
    let (train, validation) = try FashionMNIST.load(.train, limit: 2560).split(0.8, seed: 1)
    var expected: [Double] = [], discrete: [Double] = []
    for lambda in [0.0, 0.05, 0.5] {
        var e = EdMIPS()
        e.lambda = lambda; e.searchEpochs = 1; e.fineTuneEpochs = 0; e.alphaRate = 0.05
        let r = try e.run(model.copy(), train: train, validation: validation)
        expected.append(r.history.last!.expectedBitOps)
        discrete.append(try CostModel.bitOps(activationBits: nil).cost(r.policy))
        #expect(r.policy.entries.first!.weight == nil && r.policy.entries.last!.weight == nil)
        #expect(r.policy.entries[1...3].allSatisfy { $0.weight?.quantizer.scheme == .gaussian && $0.activation?.scheme == .hwgq })
        #expect(r.validationAccuracy == (try r.model.quantized(policy: r.policy, calibration: try train.images.slice(0..<256), sequential: true).accuracy(on: validation)))
        print("EdMIPS CNN λ \(lambda): expected BitOps \(expected.last!), policy BitOps \(discrete.last!), bits \(r.policy.entries.map { $0.weight?.quantizer.bits ?? 32 }) activations \(r.policy.activationBits), validation \(r.validationAccuracy)")
    }
    #expect(expected[0] > expected[1] && expected[1] > expected[2], "expected BitOps \(expected)")
    #expect(discrete[0] >= discrete[1] && discrete[1] >= discrete[2] && discrete[0] > discrete[2], "policy BitOps \(discrete)")
    // A BitOps target: the argmax moves along softmax(α) towards it (here λ = 0.5 over-shoots below
    // W3A3's BitOps; the policy comes back up). The CNN's six decisions are coarse: no policy lies
    // within 2%, so the nearest is kept (ResNet-20's 34 land inside, see compare-learned.mpq).
    let ends = Set([model.layers.first!.name, model.layers.last!.name])
    let w3a3 = try Policy(model: model, entries: model.layers.map { l in
        ends.contains(l.name) ? Policy.Entry(layer: l, weight: .reference(bits: 8), activation: Policy.Activation(bits: 8))
            : Policy.Entry(layer: l, weight: Policy.Weight(Quantizer(bits: 3, scheme: .gaussian, slicing: .tensor)), activation: Policy.Activation(bits: 3, scheme: .hwgq))
    })
    let target = try CostModel.bitOps(activationBits: nil).cost(w3a3)
    var e = EdMIPS()
    e.lambda = 0.5; e.searchEpochs = 1; e.fineTuneEpochs = 0; e.alphaRate = 0.05; e.ends = 8; e.bitOps = target
    let r = try e.run(model.copy(), train: train, validation: validation)
    let (got, argmax) = (try CostModel.bitOps(activationBits: nil).cost(r.policy), try CostModel.bitOps(activationBits: nil).cost(r.argmaxPolicy!))
    print("EdMIPS CNN at W3A3's BitOps \(target): argmax \(argmax), policy \(got) (\(r.policy.entries.map { $0.weight!.quantizer.bits }) / \(r.policy.activationBits))")
    #expect(abs(got - target) < abs(argmax - target) && abs(got - target) / target <= 0.1, "BitOps \(got), argmax \(argmax), target \(target)")
    // The same seed, the same search.
    let again = try e.run(model.copy(), train: train, validation: validation)
    #expect(again.policy == r.policy && again.argmaxPolicy == r.argmaxPolicy && again.validationAccuracy == r.validationAccuracy)
    var bad = EdMIPS(); bad.weightBits = [2, 8]
    #expect(throws: NetworkError.self) { try bad.searchModel(model, calibration: try train.images.slice(0..<8)) }
    bad = EdMIPS(); bad.lambda = .nan
    #expect(throws: MixedPrecisionError.self) { try bad.run(model, train: train, validation: validation) }
    bad = EdMIPS(); bad.bitOps = -1
    #expect(throws: MixedPrecisionError.self) { try bad.run(model, train: train, validation: validation) }
}

/// Sequential calibration measures each quantized input with the quantizers before it in
/// place: the first quantized input's point is the at-once one; a later input behind 2-bit HWGQ
/// inputs gets another σ, and the simulation is the one whose inputs were measured as it runs.
@Test func sequentialCalibrationMeasuresInputsAsTheyRun() throws {
    let model = try Zoo.make("cnn")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_cnn.npz")
    let calibration = try FashionMNIST.load(.train, limit: 128).images
    let policy = try Policy(model: model, entries: model.layers.enumerated().map { i, l in
        Policy.Entry(layer: l, weight: .reference(bits: 4), activation: i == 0 ? nil : Policy.Activation(bits: 2, scheme: .hwgq))
    })
    let atOnce = try model.quantized(policy: policy, calibration: calibration)
    let sequential = try model.quantized(policy: policy, calibration: calibration, sequential: true)
    func scales(_ m: Model) -> [Float] { m.nodes.compactMap { if case .fakeQuantize(let s, _, _) = $0.op { return s }; return nil } }
    let (a, b) = (scales(atOnce), scales(sequential))
    #expect(a.count == 4 && b.count == 4)
    #expect(a[0] == b[0])
    #expect(zip(a.dropFirst(), b.dropFirst()).contains { $0 != $1 }, "\(a) vs \(b)")
    // Each sequential point is the hwgq point of its input on the model with the earlier ones in place.
    var stats = Policy.Activation.Statistics()
    let probe = try model.quantized(policy: try Policy(model: model, entries: policy.entries.enumerated().map { i, e in
        Policy.Entry(layer: e.layer, weight: e.weight, activation: i <= 1 ? e.activation : nil) }), calibration: calibration, sequential: true)
    let target = probe.nodes.firstIndex { $0.name == model.nodes[model.layers[2].node].name }!
    _ = try probe.run(calibration, observer: { i, inputs in if i == target, let x = inputs.first ?? nil { stats.add(x) } })
    #expect(b[1] == Policy.Activation(bits: 2, scheme: .hwgq).point(stats).scale)
}
