import Foundation
import Testing
import Network
import Tensors

/// The acceptance recipe: the zoo CNN from scratch with the default options reaches ≥ 91.5%
/// test accuracy (the wall time is reported by `mpq train cnn`, not asserted here).
@Test(.timeLimit(.minutes(10)))
func cnnTrainsPastTheTarget() throws {
    let model = try Zoo.make("cnn", seed: 0)
    let train = try FashionMNIST.load(.train)
    let result = try model.train(on: train)
    let acc = try model.accuracy(on: testSet)
    #expect(result.epochsCompleted == TrainingOptions().epochs)
    #expect(acc >= 0.915, "test accuracy \(acc)")
}

/// Training is deterministic for a seed, and Adam and SGD both reduce the loss.
@Test(arguments: [Optimizer.sgd(momentum: 0.9, nesterov: false, weightDecay: 0), .adam(weightDecay: 1e-4)])
func shortTrainingIsDeterministicAndLearns(_ optimizer: Optimizer) throws {
    let data = try FashionMNIST.load(.train, limit: 1024)
    var options = TrainingOptions()
    options.epochs = 2; options.batchSize = 64; options.optimizer = optimizer
    options.schedule = optimizer == .sgd(momentum: 0.9, nesterov: false, weightDecay: 0) ? .cosine(peak: 0.05) : .constant(1e-3)
    var losses: [[Double]] = []
    var weights: [Tensor] = []
    for _ in 0..<2 {
        let model = try Zoo.make("mlp", seed: 7)
        var epochLoss: [Double] = []
        try model.train(on: data, options: options, reportEvery: 1000, progress: { if $0.endOfEpoch { epochLoss.append($0.loss) } })
        losses.append(epochLoss)
        weights.append(model.parameters["fc1.weight"]!)
    }
    #expect(losses[0] == losses[1])
    #expect(weights[0] == weights[1])
    #expect(losses[0][1] < losses[0][0])
}

@Test func fashionMNISTSplitsAndLimits() throws {
    let calib = try FashionMNIST.calibration()
    #expect(calib.count == 512 && calib.images.shape == [512, 1, 28, 28])
    let first = try FashionMNIST.load(.train, limit: 3)
    #expect(first.labels == Array(calib.labels.prefix(3)))
    #expect(throws: NetworkError.self) { try FashionMNIST.load(.train, directory: "/nonexistent") }
    do { _ = try FashionMNIST.load(.test, directory: "/nonexistent") } catch {
        #expect("\(error)".contains("dataset-fashion-mnist"))
    }
}

/// MobileNetV2 (no reference model): builds, runs, back-propagates into every parameter, and
/// one SGD step on a fixed batch lowers that batch's loss.
@Test func mobileNetV2Learns() throws {
    let model = try Zoo.make("mobilenetv2", seed: 1)
    #expect(model.layers.contains { $0.groups > 1 })
    let data = try FashionMNIST.load(.train, limit: 64)
    let (logits, trace) = try model.run(data.images, training: true, keepTrace: true)
    let (loss, dlogits) = try CrossEntropy.lossAndGradient(logits: logits, labels: data.labels)
    let grads = try model.gradients(trace!, outputGradient: dlogits)
    #expect(Set(grads.keys) == Set(model.parameterOrder))
    var state = OptimizerState(.sgd(momentum: 0, nesterov: false, weightDecay: 0))
    try state.step(model, gradients: grads, lr: 0.05)
    let after = try CrossEntropy.lossAndGradient(logits: try model.run(data.images, training: true).output, labels: data.labels).loss
    #expect(after < loss)
}

/// A stop request ends training before the next batch, reporting it. (Its own stop condition:
/// the process-wide Ctrl-C flag would stop every test running beside it.)
@Test func stopRequestEndsTraining() throws {
    let model = try Zoo.make("mlp")
    let data = try FashionMNIST.load(.train, limit: 512)
    var options = TrainingOptions(); options.epochs = 3; options.batchSize = 32
    var batches = 0
    let result = try model.train(on: data, options: options, reportEvery: 1, shouldStop: { batches >= 3 }, progress: { _ in
        batches += 1
    })
    #expect(result.interrupted)
    #expect(result.epochsCompleted == 0)
}

/// A checkpointed run stopped after its first epoch continues from the file and ends exactly
/// as the unbroken run (parameters, batch-norm statistics, the Adam group's moments all
/// restored; SGD with momentum, flips and shuffling on); a checkpoint of another run is refused.
@Test func checkpointedTrainingResumesExactly() throws {
    let data = try FashionMNIST.load(.train, limit: 384)
    var options = TrainingOptions(); options.epochs = 3; options.batchSize = 64; options.seed = 5
    options.schedule = .oneCycle(peak: 0.02)
    let fresh = try Zoo.make("cnn", seed: 1)
    options.groups = [ParameterGroup(names: [fresh.parameterOrder.last!], optimizer: .adam(), schedule: .constant(0.001))]
    let whole = fresh.copy()
    let unbroken = try whole.train(on: data, options: options)
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-checkpoint-\(getpid()).npz").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    options.checkpoint = path
    let broken = fresh.copy()
    var polls = 0
    let first = try broken.train(on: data, options: options, shouldStop: { polls += 1; return polls > 7 })  // 6 batches per epoch
    #expect(first.interrupted && first.epochsCompleted == 1)
    let resumed = fresh.copy()  // a new session: only the file carries the first epoch
    let second = try resumed.train(on: data, options: options)
    #expect(!second.interrupted && second.finalLoss == unbroken.finalLoss)
    for name in whole.parameterOrder { #expect(resumed.parameters[name]!.scalars == whole.parameters[name]!.scalars, "\(name)") }
    for name in whole.buffers.keys { #expect(resumed.buffers[name]!.scalars == whole.buffers[name]!.scalars, "\(name)") }
    options.batchSize = 32
    #expect(throws: NetworkError.self) { try fresh.copy().train(on: data, options: options) }
}
