import Foundation
import Testing
import TestSupport
import Network
import Quantization
import Tensors

/// Mean of each channel (dimension 1) of a batch's tensor.
func channelMeans(_ t: Tensor) -> [Double] {
    let n = t.shape[0], c = t.shape[1], inner = t.count / max(1, n * c)
    return (0..<c).map { ch in
        var s = 0.0
        for i in 0..<n { for j in 0..<inner { s += Double(t.scalars[(i * c + ch) * inner + j]) } }
        return s / Double(n * inner)
    }
}

/// A first layer reads the image itself in both models, so after correction its output's
/// per-channel mean on the calibration images is the float model's, exactly up to rounding:
/// the CNN's conv1 (padded 3×3 conv, corrected in the batch norm after it) and the MLP's fc1
/// (a linear layer, corrected in its bias), each alone at 2 bits.
@Test(arguments: [("cnn", "conv1"), ("mlp", "fc1")])
func biasCorrectionRemovesTheFirstLayersShift(_ arch: String, _ name: String) throws {
    let model = try Zoo.make(arch)
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_\(arch).npz")
    let x = try FashionMNIST.calibration().images
    let policy = try Policy(model: model, weightBits: model.layers.map { $0.name == name ? 2 : nil })
    let plain = try model.quantized(policy: policy)
    let corrected = try model.quantized(policy: policy, calibration: x, biasCorrection: true)
    let layer = model.layer(named: name)!
    // The value after the layer's correction point: the batch norm's output, or the layer's own.
    let out = model.nodes[layer.node].outputs[0]
    let reader = model.nodes.firstIndex { $0.inputs.first == out && { if case .batchNorm = $0.op { return true }; return false }($0) }
    let probe = reader.map { model.nodes[$0].outputs[0] } ?? out
    func means(_ m: Model) throws -> [Double] {
        var captured: Tensor? = nil
        _ = try m.run(x, observer: { index, inputs in
            if m.nodes[index].inputs.first == probe, captured == nil { captured = inputs[0] }
        })
        return channelMeans(try #require(captured))
    }
    let float = try means(model), before = try means(plain), after = try means(corrected)
    let shiftBefore = zip(float, before).map { abs($0 - $1) }.max()!, shiftAfter = zip(float, after).map { abs($0 - $1) }.max()!
    print("bias correction \(arch) \(name) at 2 bits: largest channel-mean shift \(shiftBefore) → \(shiftAfter)")
    #expect(shiftBefore > 1e-3)
    #expect(shiftAfter <= 1e-4 * max(1, float.map(abs).max()!))
}

/// Bad input: NaN calibration images, empty calibration and fewer images than fc1's 256 output
/// channels are errors, not corrections.
@Test func biasCorrectionRefusesBadCalibration() throws {
    let model = try Zoo.make("mlp")
    let policy = try Policy.uniform(model, bits: 4)
    var x = try Tensor.zeros([256, 1, 28, 28])
    x.withUnsafeMutableScalars { $0[5] = .nan }
    #expect(throws: NetworkError.self) { try model.quantized(policy: policy, calibration: x, biasCorrection: true) }
    #expect(throws: QuantizationError("bias correction: expected at least 256 calibration images (layer 'fc1' has 256 output channels, each estimated from them), found 2")) {
        try model.quantized(policy: policy, calibration: try Tensor.zeros([2, 1, 28, 28]), biasCorrection: true)
    }
    #expect(throws: (any Error).self) { try model.quantized(policy: policy, calibration: try Tensor.zeros([0, 1, 28, 28]), biasCorrection: true) }
}

/// The integer engine runs a bias-corrected model (ResNet-20, W3A8, corrections in the batch
/// norms it folds): its logits stay within one step of HAWQ-V3's simulation on every image,
/// and the correction does not cost accuracy.
@Test func integerEngineRunsBiasCorrectedModels() throws {
    let model = try Zoo.make("resnet20")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_resnet20.npz")
    let calibration = try FashionMNIST.calibration().images
    let policy = try Policy(model: model, weightBits: model.layers.indices.map { $0 == 0 || $0 == model.layers.count - 1 ? 8 : 3 },
                            activationBits: Array(repeating: 8, count: model.layers.count))
    let corrected = try model.biasCorrected(for: policy, calibration: calibration)
    let engine = try IntegerModel(model: corrected, policy: try policy.moved(to: corrected), calibration: calibration)
    let plain = try IntegerModel(model: model, policy: policy, calibration: calibration)
    let test = try FashionMNIST.load(.test, limit: 2000)
    let a = try engine.run(test.images)
    let exact = agreement(a, try engine.dyadicSimulation.run(test.images).output, steps: engine.outputSteps)
    #expect(exact.withinStep == 2000)
    let (withCorrection, without) = (try engine.accuracy(on: test), try plain.accuracy(on: test))
    print("integer engine ResNet-20 W3A8 (ends 8): \(without) → \(withCorrection) with bias correction")
    #expect(withCorrection >= without)
}

/// LSQ for a mixed policy: the CNN with conv layers at 8/4/2 bits, fc2 float, 8-bit inputs to
/// two layers: steps exist exactly where the policy quantizes, and one short epoch of QAT at the
/// policy's widths improves on its rounding. Kernel-wise and pow2 layers are refused by name.
@Test func qatFineTunesMixedPolicies() throws {
    let model = try Zoo.make("cnn")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_cnn.npz")
    let policy = try Policy(model: model, weightBits: [8, 4, 2, 2, nil], activationBits: [nil, 8, nil, 8, nil])
    let q = try model.learnedQuantization(policy: policy, calibration: try FashionMNIST.calibration().images)
    let steps = q.parameterOrder.filter { $0.hasSuffix("_step") }.sorted()
    #expect(steps == ["conv1.weight_step", "conv2.input_step", "conv2.weight_step", "conv3.weight_step", "fc1.input_step", "fc1.weight_step"])
    let test = try FashionMNIST.load(.test, limit: 2000)
    let before = try q.accuracy(on: test)
    var options = TrainingOptions()
    options.epochs = 1; options.batchSize = 128; options.schedule = .oneCycle(peak: 0.01)
    _ = try q.train(on: try FashionMNIST.load(.train, limit: 8192), options: options)
    let after = try q.accuracy(on: test)
    print("QAT of a mixed CNN policy: \(before) → \(after) after one epoch on 8,192 images")
    #expect(after > before)
    let n = model.layers[0].weightShape[0]
    #expect(throws: QuantizationError.self) {
        try model.learnedQuantization(policy: try policy.replacing("conv1", weight: Policy.Weight.reference(bits: 8).perChannel((0..<n).map { $0 % 2 == 0 ? 4 : 8 })))
    }
    #expect(throws: QuantizationError.self) {
        try model.learnedQuantization(policy: try policy.replacing("conv1", weight: Policy.Weight(Quantizer(bits: 4, scheme: .powerOfTwo))))
    }
}
