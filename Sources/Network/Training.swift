import Foundation
import Kernels
import Tensors
import Runtime

/// How to train: the defaults are the recipe that takes the zoo CNN past 91.5% on Fashion-MNIST.
public struct TrainingOptions: Sendable {
    public var epochs = 10
    public var batchSize = 128
    public var optimizer = Optimizer.sgd(momentum: 0.9, nesterov: true, weightDecay: 5e-4)
    public var schedule = Schedule.oneCycle(peak: 0.1)
    /// Random horizontal flips of the training images.
    public var flip = true
    public var seed: UInt64 = 0
    /// Parameters trained with their own optimizer and learning-rate schedule (a differentiable
    /// search's architecture logits); the main optimizer leaves them alone.
    public var groups: [ParameterGroup] = []
    /// Parameters left as they are.
    public var frozen: Set<String> = []
    /// A term added to each batch's loss, with its gradients by parameter name (a search's cost
    /// penalty); it sees the model as it stands before the batch's update.
    public var penalty: (@Sendable (Model) throws -> (value: Double, gradients: [String: Tensor]))? = nil
    /// Called before each batch's passes with the step (0-based, counted over all epochs) and the
    /// steps in all: a search's schedules (a temperature, noise, a ramping target) set buffers here.
    public var beforeBatch: (@Sendable (Model, _ step: Int, _ total: Int) throws -> Void)? = nil
    /// A file the run's state is written to (atomically) after every epoch; when it exists at
    /// the start, training continues from it — the epochs it holds are not run again, and the
    /// run ends as an unbroken one would. A checkpoint of another run is refused.
    public var checkpoint: String? = nil
    /// Knowledge distillation: each batch's loss becomes (1 − weight)·cross-entropy + weight·the
    /// distillation term toward this model's logits on the same (flipped) images (`Distillation`).
    public var teacher: Model? = nil
    public var distillationWeight = 0.5
    public var temperature = 1.0
    public init() {}
}

/// A set of parameters with its own update rule.
public struct ParameterGroup: Sendable {
    public var names: Set<String>
    public var optimizer: Optimizer
    public var schedule: Schedule
    public init(names: Set<String>, optimizer: Optimizer, schedule: Schedule) {
        self.names = names; self.optimizer = optimizer; self.schedule = schedule
    }
}

/// One progress report: sent after every `reportEvery` batches and at the end of each epoch.
public struct TrainingProgress: Sendable {
    public var epoch: Int, epochs: Int
    public var batch: Int, batches: Int
    public var loss: Double
    public var accuracy: Double
    public var imagesPerSecond: Double
    public var learningRate: Float
    public var endOfEpoch: Bool

    public var line: String {
        String(format: "epoch %d/%d  batch %4d/%d  loss %.4f  acc %.4f  %6.0f img/s  lr %.4g",
               epoch, epochs, batch, batches, loss, accuracy, imagesPerSecond, learningRate)
    }
}

public struct TrainingResult: Sendable {
    public var epochsCompleted: Int
    public var finalLoss: Double
    public var trainAccuracy: Double
    public var seconds: Double
    public var interrupted: Bool
}

extension Model {
    /// Mini-batch training with cross-entropy. `shouldStop` (by default: Ctrl-C, through
    /// `Interrupt`) is polled before each batch, and a stop inside a batch's passes ends the same
    /// way; stopping leaves the model as trained so far and returns with `interrupted` set.
    @discardableResult
    public func train(on data: Dataset, options: TrainingOptions = TrainingOptions(), reportEvery: Int = 50,
                      shouldStop: () -> Bool = { Interrupt.isRequested },
                      progress: (TrainingProgress) -> Void = { _ in }) throws -> TrainingResult {
        guard data.count > 0 else { throw NetworkError("train: the dataset is empty") }
        guard options.batchSize > 0, options.epochs >= 0 else {
            throw NetworkError("train: expected batch size > 0 and epochs ≥ 0, found \(options.batchSize) and \(options.epochs)")
        }
        if let teacher = options.teacher {
            guard (0...1).contains(options.distillationWeight), options.temperature > 0, options.temperature.isFinite else {
                throw NetworkError("train: distillation needs a weight in 0…1 and a positive temperature, found \(options.distillationWeight) and \(options.temperature)")
            }
            guard teacher.inputShape == inputShape else {
                throw NetworkError("train: the teacher '\(teacher.name)' reads inputs \(teacher.inputShape), the model \(inputShape)")
            }
        }
        var rng = RandomGenerator(seed: options.seed)
        var state = OptimizerState(options.optimizer)
        var groupStates = options.groups.map { OptimizerState($0.optimizer) }
        let main = Set(parameterOrder).subtracting(options.frozen).subtracting(options.groups.flatMap(\.names))
        let batches = (data.count + options.batchSize - 1) / options.batchSize
        let total = batches * options.epochs
        let start = Date()
        var step = 0, lastLoss = 0.0, lastAccuracy = 0.0
        var order = Array(0..<data.count)
        var firstEpoch = 1
        let thisRun = TrainingCheckpoint.Run(examples: data.count, batchSize: options.batchSize, epochs: options.epochs, seed: options.seed,
                                         parameters: parameterOrder, groups: options.groups.count)
        if let path = options.checkpoint, FileManager.default.fileExists(atPath: path) {
            let (c, states) = try TrainingCheckpoint.restore(from: path, run: thisRun, model: self, optimizers: [options.optimizer] + options.groups.map(\.optimizer))
            state = states[0]; groupStates = Array(states.dropFirst())
            rng = try RandomGenerator(c.random)
            (order, step, firstEpoch, lastLoss, lastAccuracy) = (c.order, c.step, c.epoch + 1, c.loss, c.accuracy)
        }
        for epoch in firstEpoch...max(options.epochs, firstEpoch) where options.epochs > 0 && epoch <= options.epochs {
            // Fisher–Yates with our own generator, so the order depends on the seed alone.
            for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            var seen = 0, correct = 0, lossSum = 0.0
            let epochStart = Date()
            for b in 0..<batches {
                if shouldStop() {
                    return TrainingResult(epochsCompleted: epoch - 1, finalLoss: lastLoss, trainAccuracy: lastAccuracy,
                                          seconds: Date().timeIntervalSince(start), interrupted: true)
                }
                let idx = order[(b * options.batchSize)..<min(data.count, (b + 1) * options.batchSize)]
                var (x, y) = try data.gather(idx)
                if options.flip { x = Model.flipSomeHorizontally(x, using: &rng) }
                // A stop requested inside the batch's passes ends training as one between batches
                // does: this batch makes no update, the ones before it stay.
                let logits: Tensor, trace: Trace?, dlogits: Tensor, batchLoss: Double
                var grads: [String: Tensor]
                try options.beforeBatch?(self, step, total)
                do {
                    (logits, trace) = try run(x, training: true, keepTrace: true)
                    if let teacher = options.teacher {
                        let (ce, dce) = try CrossEntropy.lossAndGradient(logits: logits, labels: y)
                        let (kd, dkd) = try Distillation.lossAndGradient(student: logits, teacher: try teacher.run(x).output, temperature: options.temperature)
                        let w = options.distillationWeight
                        batchLoss = (1 - w) * ce + w * kd
                        let (a, b) = (Float(1 - w), Float(w))
                        dlogits = try Tensor.zip(dce, dkd, operation: "+") { a * $0 + b * $1 }
                    } else {
                        (batchLoss, dlogits) = try CrossEntropy.lossAndGradient(logits: logits, labels: y)
                    }
                    grads = try gradients(trace!, outputGradient: dlogits)
                } catch is Interrupted {
                    return TrainingResult(epochsCompleted: epoch - 1, finalLoss: lastLoss, trainAccuracy: lastAccuracy,
                                          seconds: Date().timeIntervalSince(start), interrupted: true)
                }
                var loss = batchLoss
                if let penalty = options.penalty {
                    let p = try penalty(self)
                    loss += p.value
                    for (name, g) in p.gradients { grads[name] = try grads[name].map { try $0 + g } ?? g }
                }
                guard loss.isFinite else { throw NetworkError("training diverged at epoch \(epoch), batch \(b + 1): the loss is \(loss)") }
                let lr = options.schedule.rate(step: step, total: total)
                try state.step(self, gradients: grads, lr: lr, only: main)
                for (g, group) in options.groups.enumerated() {
                    try groupStates[g].step(self, gradients: grads, lr: group.schedule.rate(step: step, total: total), only: group.names.subtracting(options.frozen))
                }
                step += 1
                seen += y.count
                lossSum += loss * Double(y.count)
                let predicted = try logits.argmax(axis: 1).scalars
                correct += zip(predicted, y).filter { Int($0) == $1 }.count
                lastLoss = lossSum / Double(seen); lastAccuracy = Double(correct) / Double(seen)
                let last = b == batches - 1
                if last, let path = options.checkpoint {
                    try TrainingCheckpoint(run: thisRun, epoch: epoch, step: step, order: order, random: rng.snapshot, loss: lastLoss, accuracy: lastAccuracy)
                        .write(to: path, model: self, optimizers: [state] + groupStates)
                }
                if last || (b + 1) % max(reportEvery, 1) == 0 {
                    progress(TrainingProgress(epoch: epoch, epochs: options.epochs, batch: b + 1, batches: batches,
                                              loss: lastLoss, accuracy: lastAccuracy,
                                              imagesPerSecond: Double(seen) / Date().timeIntervalSince(epochStart),
                                              learningRate: lr, endOfEpoch: last))
                }
            }
        }
        return TrainingResult(epochsCompleted: options.epochs, finalLoss: lastLoss, trainAccuracy: lastAccuracy,
                              seconds: Date().timeIntervalSince(start), interrupted: false)
    }

    /// Mirrors each image left–right with probability ½.
    static func flipSomeHorizontally(_ x: Tensor, using rng: inout RandomGenerator) -> Tensor {
        guard x.rank == 4 else { return x }
        var out = x
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var flips = [Bool](repeating: false, count: n)
        for i in 0..<n { flips[i] = rng.next() & 1 == 1 }
        out.withUnsafeMutableScalars { p in
            for i in 0..<n where flips[i] {
                for row in 0..<(c * h) {
                    let base = (i * c * h + row) * w
                    for j in 0..<(w / 2) { p.swapAt(base + j, base + w - 1 - j) }
                }
            }
        }
        return out
    }

    /// Logits for every example, in batches (evaluation mode).
    /// `progress` sees (examples done, total) after each batch.
    public func predict(_ images: Tensor, batchSize: Int = 256, progress: ((Int, Int) -> Void)? = nil) throws -> Tensor {
        guard images.rank >= 1 else { throw NetworkError("predict: expected a batch of examples, found a scalar") }
        var parts: [Tensor] = []
        var i = 0
        while i < images.shape[0] {
            try Interrupt.check()
            let end = min(images.shape[0], i + max(batchSize, 1))
            parts.append(try run(try images.slice(i..<end)).output)
            i = end
            progress?(i, images.shape[0])
        }
        if parts.isEmpty { return try Tensor.zeros([0, 0]) }
        return try Tensor.stack(parts)
    }

    /// Fraction of examples whose largest logit is the label (ties: the first index, as argmax).
    public func accuracy(on data: Dataset, batchSize: Int = 256, progress: ((Int, Int) -> Void)? = nil) throws -> Double {
        let predicted = try predictedClasses(on: data, batchSize: batchSize, progress: progress)
        return Double(zip(predicted, data.labels).filter { $0 == $1 }.count) / Double(data.count)
    }

    /// Each example's class: the index of its largest logit (ties: the first).
    public func predictedClasses(on data: Dataset, batchSize: Int = 256, progress: ((Int, Int) -> Void)? = nil) throws -> [Int] {
        guard data.count > 0 else { throw NetworkError("the dataset holds no examples to classify") }
        return try predict(data.images, batchSize: batchSize, progress: progress).argmax(axis: 1).scalars.map { Int($0) }
    }
}
