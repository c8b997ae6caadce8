import Foundation
import Testing
import TestSupport
import Network
import Quantization
import Tensors

/// XNOR-Net's weight binarization: α_c·sign(W) per output channel (the binary quantizer's
/// values); its gradient is the clipped straight-through term α_c·g·[|W| ≤ 1] plus the α term,
/// which central differences check (sign is flat between its jumps); a zero channel gives 0, a
/// NaN an error naming the channel.
@Test func binaryWeightsAreXNORNets() throws {
    var rng = RandomGenerator(seed: 11)
    var w = try Tensor.random([4, 3, 3, 3], .normal(mean: 0, std: 0.8), using: &rng)
    w.withUnsafeMutableScalars { v in for i in 27..<54 { v[i] = 0 } }  // channel 1 all zeros
    let node = Node(name: "b", op: .binaryWeights, inputs: ["w"], outputs: ["y"])
    let m = try Model(name: "t", nodes: [node], input: "w", output: "y", inputShape: [3, 3, 3], parameters: [], buffers: [])
    let (y, trace) = try m.run(w, keepTrace: true)
    #expect(y.scalars == (try Quantizer(bits: 1, scheme: .binary, slicing: .channel).quantize(w)).dequantized.scalars.enumerated().map { $0.offset / 27 == 1 ? 0 : $0.element })
    let g = try Tensor.random(w.shape, .normal(mean: 0, std: 1), using: &rng)
    let dw = try m.gradients(trace!, outputGradient: g, inputGradient: true)[m.input]!
    for i in stride(from: 0, to: w.count, by: 7) where i / 27 != 1 {
        var up = w.scalars, down = w.scalars
        up[i] += 1e-3; down[i] -= 1e-3
        let hi = zip(try m.run(Tensor(checkedShape: w.shape, scalars: up)).output.scalars, g.scalars).reduce(0.0) { $0 + Double($1.0 * $1.1) }
        let lo = zip(try m.run(Tensor(checkedShape: w.shape, scalars: down)).output.scalars, g.scalars).reduce(0.0) { $0 + Double($1.0 * $1.1) }
        let c = i / 27, alpha = w.scalars[(c * 27)..<((c + 1) * 27)].reduce(0) { $0 + abs($1) } / 27
        let straight = abs(w.scalars[i]) <= 1 ? Double(alpha * g.scalars[i]) : 0
        #expect(abs(Double(dw.scalars[i]) - straight - (hi - lo) / 2e-3) <= 1e-3, "weight \(i)")
    }
    var bad = w
    bad.withUnsafeMutableScalars { $0[60] = .nan }
    #expect(throws: NetworkError.self) { try m.run(bad) }
}

/// The binary variants take the float models' weights by name, put the first and last layer
/// (and ResNet-20's projections) in real arithmetic, and their policy counts the binary layers
/// at 1 bit; stage one (hardtanh for sign) and a short binary stage train the CNN past chance,
/// and its export runs in ONNX Runtime with the same accuracy.
@Test func binaryVariantsStartFromTheFloatWeights() throws {
    let cnn = try Zoo.make("cnn")
    try cnn.loadStateDict(path: "\(referenceDirectory)/fmnist_cnn.npz")
    let resnet = try Zoo.make("resnet20")
    try resnet.loadStateDict(path: "\(referenceDirectory)/fmnist_resnet20.npz")
    let b = try Zoo.binary("resnet20")
    try b.loadStateDict(resnet.stateDict, source: "resnet20")
    let x = try FashionMNIST.load(.test, limit: 4).images
    #expect(try b.run(x).output.shape == [4, 10])
    let policy = try BinaryTraining().policy(b)
    #expect(policy.entries.map { $0.weight?.uniformBits ?? 32 }.filter { $0 == 8 }.count == 4)  // conv1, two projections, fc
    #expect(policy.entries.filter { $0.weight?.uniformBits == 1 }.count == 18)
    #expect(throws: NetworkError.self) { try Zoo.binary("mlp") }
    let (train, validation) = try FashionMNIST.load(.train, limit: 1280).split(0.8, seed: 1)
    var t = BinaryTraining(); t.weightStageEpochs = 1; t.binaryStageEpochs = 1
    let r = try t.run(cnn, architecture: "cnn", train: train, validation: validation)
    #expect(r.history.map(\.stage) == [1, 2] && r.policy.entries.map { $0.weight!.uniformBits! } == [8, 1, 1, 1, 8])
    #expect(r.validationAccuracy > 0.5, "\(r.validationAccuracy)")
    #expect(r.validationAccuracy == (try r.quantized.accuracy(on: validation)))
    // The trained binary network (ends at 8 bits) exports to ONNX and ONNX Runtime agrees.
    let test = try FashionMNIST.load(.test, limit: 2000)
    let ours = try r.quantized.accuracy(on: test), ort = try onnxRuntimeAccuracy(of: r.quantized, on: test, name: "bnn-export")
    #expect(abs(ours - ort) <= 0.001, "mpq \(ours), ONNX Runtime \(ort)")
}

/// With distillation the float model teaches: the same short run with `distillationWeight` 1
/// (ReActNet's distribution loss alone) still learns, and takes a different path from the
/// labels-only run (its losses are the teacher's KL term, not cross-entropy).
@Test func binaryTrainingDistillsFromTheFloatModel() throws {
    let cnn = try Zoo.make("cnn")
    try cnn.loadStateDict(path: "\(referenceDirectory)/fmnist_cnn.npz")
    let (train, validation) = try FashionMNIST.load(.train, limit: 1280).split(0.8, seed: 1)
    var plain = BinaryTraining(); plain.weightStageEpochs = 1; plain.binaryStageEpochs = 1
    var taught = plain; taught.distillationWeight = 1
    let (a, b) = (try plain.run(cnn, architecture: "cnn", train: train, validation: validation),
                  try taught.run(cnn, architecture: "cnn", train: train, validation: validation))
    print("bnn on 1,024 images, 1 + 1 epochs: validation \(a.validationAccuracy) on the labels, \(b.validationAccuracy) taught by the float model")
    #expect(b.validationAccuracy > 0.5, "\(b.validationAccuracy)")
    #expect(a.history[0].loss != b.history[0].loss)
    var bad = plain; bad.distillationWeight = 2
    #expect(throws: (any Error).self) { try bad.run(cnn, architecture: "cnn", train: train, validation: validation) }
}
