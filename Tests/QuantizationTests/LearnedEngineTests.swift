import Foundation
import Testing
import TestSupport
import Network
import Quantization
import Tensors

/// A QAT model (LSQ, mixed weight widths, 8-bit activations, one short epoch) becomes an integer
/// engine whose scales are its learned steps: each weight keeps the codes training saw (the
/// engine's dequantized weights equal LSQ's times the batch norm's fold factor), the engine
/// agrees with its HAWQ-V3 simulation exactly, and its accuracy is the QAT model's within half
/// a point on 2,000 test images (10 images: the float twin rounds activations and biases
/// differently, and how many borderline images flip depends on the weights one short epoch
/// leaves — at most 5 of 2,000 before batch norm's sums went into lanes, 7 after); its QDQ export runs in
/// ONNX Runtime within 0.1 point.
@Test func qatModelRunsInTheIntegerEngine() throws {
    let model = try Zoo.make("resnet20")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_resnet20.npz")
    let widths = model.layers.indices.map { [8, 4, 3, 4][$0 % 4] }
    let policy = try Policy(model: model, weightBits: widths.indices.map { $0 == 0 || $0 == widths.count - 1 ? 8 : widths[$0] },
                            activationBits: Array(repeating: 8, count: widths.count))
    let qat = try model.learnedQuantization(policy: policy, calibration: try FashionMNIST.calibration().images)
    var options = TrainingOptions()
    options.epochs = 1; options.batchSize = 128; options.schedule = .oneCycle(peak: 0.01)
    _ = try qat.train(on: try FashionMNIST.load(.train, limit: 512), options: options)

    let engine = try IntegerModel(learned: qat)
    let learned = try qat.learnedSteps()
    #expect(engine.policy == learned.policy)
    #expect(engine.policy.layerWiseBits == policy.layerWiseBits)
    #expect(engine.policy.activationBits == policy.activationBits)
    // The codes training saw: LSQ's weight times the fold factor, layer by layer.
    let factors = try learned.model.batchNormFoldFactors()
    for layer in learned.model.layers {
        let w = learned.model.parameters[layer.weight]!, steps = learned.weightSteps[layer.name]!
        let top = Float((1 << (policy.entries.first { $0.layer.name == layer.name }!.weight!.quantizer.bits - 1)) - 1)
        let per = w.count / w.shape[0]
        let got = engine.simulation.parameters[layer.weight]!.scalars
        var worst: Float = 0
        for i in 0..<w.count {
            let c = i / per, s = steps[c]
            let lsq = min(max((w.scalars[i] / s).rounded(.toNearestOrEven), -top), top) * s * factors[layer.name]![c]
            worst = max(worst, abs(got[i] - lsq) / max(abs(lsq), 1e-6))
        }
        #expect(worst <= 1e-5, "layer \(layer.name): dequantized weights differ from LSQ's by \(worst) relative")
    }
    let test = try FashionMNIST.load(.test, limit: 2000)
    let a = try engine.run(test.images), d = try engine.dyadicSimulation.run(test.images).output
    #expect(a.scalars == d.scalars)
    let (ours, trained) = (try engine.accuracy(on: test), try qat.accuracy(on: test))
    // Exported as QDQ, ONNX Runtime runs the same codes at the same scales.
    let ort = try onnxRuntimeAccuracy(of: engine, on: test, name: "learned-engine")
    print("QAT → integer engine, ResNet-20 mixed W8/4/3 A8: QAT model \(trained), integer engine \(ours), its QDQ export in ONNX Runtime \(ort), on 2,000 test images")
    #expect(abs(ours - trained) <= 0.005)
    #expect(abs(ort - ours) <= 0.001)
}

/// What the learned path refuses, each with its reason: a model without learned quantizers, a
/// QAT model without activation steps (the engine needs codes everywhere), a step that is not
/// positive.
@Test func learnedEngineRefusesWhatItCannotRun() throws {
    let model = try Zoo.make("cnn")
    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "" } catch let e as QuantizationError { return e.message } catch { return "\(error)" }
    }
    #expect(message { _ = try IntegerModel(learned: model) }.contains("no learned quantizers"))
    let weightsOnly = try model.learnedQuantization(weightBits: 4)
    #expect(message { _ = try IntegerModel(learned: weightsOnly) }.contains("learned no input step for layer 'conv1'"))
    let qat = try model.learnedQuantization(weightBits: 4, activationBits: 8, calibration: try Tensor(repeating: 1, shape: [2] + model.inputShape))
    qat.parameters["conv2.weight_step"] = qat.parameters["conv2.weight_step"]!.map { _ in 0 }
    #expect(message { _ = try IntegerModel(learned: qat) }.contains("steps must be finite and positive"))
}
