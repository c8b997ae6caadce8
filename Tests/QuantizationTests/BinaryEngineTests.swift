import Foundation
import Testing
import TestSupport
import Network
import Quantization
import Tensors

/// Binary networks as bnn() builds them (explicit sign nodes, XNOR weights through
/// `binaryWeights`) run whole in the integer engine: the CNN (XNOR-Net order: pooling between a
/// binary layer and the next sign, a sign after flattening) and ResNet-20 with Bi-Real shortcuts
/// (every sign reads a residual add's sums; the projections read the same values as 8-bit codes).
/// On every test image the engine's logits are within one output step of HAWQ-V3's dyadic
/// simulation, and its accuracy is the binary network's own (ends at 8 bits) up to the noise of the
/// predictions that differ: within 3√n images when n predictions differ (a flip as likely to
/// right a wrong prediction as to spoil a right one moves the count by about √n). Against
/// the fake-quant simulation (real values) predictions agree less than in an 8-bit network: a
/// sign flips wherever rounding moves a value across zero, and a flip carries through every
/// binary layer after it — most in Bi-Real, whose signs read residual sums (the trained networks
/// of scripts/bnn-engine.mpq: 17 of 10,000 test predictions differ on the CNN, 231 on ResNet-20;
/// these briefly trained ones differ more, and by CPU: trained on an Intel Xeon with AVX-512, the
/// ResNet-20 here differed from its simulation on 313 of 2,000, with 974 against 996 right).
@Test(arguments: ["cnn", "resnet20"])
func binaryNetworksRunWholeInTheEngine(_ name: String) throws {
    let float = try Zoo.make(name)
    try float.loadStateDict(path: "\(referenceDirectory)/fmnist_\(name).npz")
    // Trained briefly (one epoch per stage on 1,280 images): an untrained binary network's
    // pre-activations crowd around zero, where any rounding flips a sign.
    let (train, validation) = try FashionMNIST.load(.train, limit: 1600).split(0.8, seed: 1)
    var recipe = BinaryTraining(); recipe.weightStageEpochs = 1; recipe.binaryStageEpochs = 1
    let trained = try recipe.run(float, architecture: name, train: train, validation: validation)
    let (binary, policy) = (trained.model, trained.policy)
    let calibration = try FashionMNIST.calibration().images
    let engine = try IntegerModel(model: binary, policy: policy, calibration: calibration)
    let x = try engineTestSet.images.slice(0..<2000)
    let a = try engine.run(x)
    let exact = agreement(a, try engine.dyadicSimulation.run(x).output, steps: engine.outputSteps)
    let same = agreement(a, try engine.simulation.run(x).output, steps: engine.outputSteps).same
    let own = try binary.quantized(policy: policy, calibration: calibration).run(x).output
    let right = zip(try a.argmax(axis: 1).scalars, engineTestSet.labels.prefix(2000)).filter { Int($0) == Int($1) }.count
    let ownRight = zip(try own.argmax(axis: 1).scalars, engineTestSet.labels.prefix(2000)).filter { Int($0) == Int($1) }.count
    print("binary \(name) in the integer engine: \(right)/2000 right (the binary model with 8-bit ends: \(ownRight)); within one step of HAWQ-V3's logits on \(exact.withinStep), predictions as the simulation's on \(same)")
    #expect(exact.withinStep == 2000)
    #expect(Double(same) / 2000 >= (name == "cnn" ? 0.99 : 0.8))
    #expect(Double(abs(right - ownRight)) <= 3 * Double(max(2000 - same, 1)).squareRoot())
    #expect(engine.storedBytes < 60_000)
}

/// A trained binary layer keeps its XNOR weights only at 1 bit, binary per channel; an all-zero
/// channel (α = 0) gives zeros and the engine still agrees; NaN weights are an error naming the
/// layer.
@Test func binaryEngineRefusesOtherWidthsAndHandlesZeroChannels() throws {
    let binary = try Zoo.binary("cnn")
    let cnn = try Zoo.make("cnn")
    try cnn.loadStateDict(path: "\(referenceDirectory)/fmnist_cnn.npz")
    try binary.loadStateDict(cnn.stateDict, source: "cnn")
    let calibration = try FashionMNIST.calibration().images
    let wide = try Policy.uniform(binary, bits: 8, activationBits: 8)
    #expect { try IntegerModel(model: binary, policy: wide, calibration: calibration) } throws: { e in
        "\(e)".contains("conv2") && "\(e)".contains("1-bit binary per channel")
    }
    let policy = try BinaryTraining().policy(binary)
    let w = binary.layers[1].weight
    var t = binary.parameters[w]!
    let per = t.count / t.shape[0]
    t.withUnsafeMutableScalars { for i in 0..<per { $0[i] = 0 } }
    binary.parameters[w] = t
    let engine = try IntegerModel(model: binary, policy: policy, calibration: calibration)
    let x = try engineTestSet.images.slice(0..<200)
    #expect(agreement(try engine.run(x), try engine.dyadicSimulation.run(x).output, steps: engine.outputSteps).withinStep == 200)
    t.withUnsafeMutableScalars { $0[per + 3] = .nan }
    binary.parameters[w] = t
    #expect { try IntegerModel(model: binary, policy: policy, calibration: calibration) } throws: { e in "\(e)".contains("conv2") }
}

/// A layer with 8-bit weights reading binary activations (the packed signs unpacked to ±1 bytes
/// for the int8 kernel) agrees with HAWQ-V3's simulation like every other layer.
@Test func wideWeightsReadBinaryActivations() throws {
    let cnn = try Zoo.make("cnn")
    try cnn.loadStateDict(path: "\(referenceDirectory)/fmnist_cnn.npz")
    let policy = try Policy(model: cnn, weightBits: [8, 1, 8, 8, 8], activationBits: [8, 1, 1, 8, 8])
    let engine = try IntegerModel(model: cnn, policy: policy, calibration: try FashionMNIST.calibration().images)
    let x = try engineTestSet.images.slice(0..<300)
    #expect(agreement(try engine.run(x), try engine.dyadicSimulation.run(x).output, steps: engine.outputSteps).withinStep == 300)
}
