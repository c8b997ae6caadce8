import Foundation
import Network
import Runtime
import Tensors

/// Training a binary network (../shared/METHODS.md §8): the zoo's binary variant of a float model
/// (`Zoo.binary`, XNOR-Net weights α_c·sign(W) and sign activations with the clipped
/// straight-through gradient; Bi-Real shortcuts for ResNet-20) starts from the float model's
/// weights and trains in two stages with Adam and cosine decay: binary weights with real
/// activations (each sign replaced by hardtanh, clamp to [−1, 1]), then both binary. The first
/// and last layer (and ResNet-20's 1×1 projections) stay real in training and take `ends` bits
/// (the reference quantizers, weights and inputs) in the final model. Optionally the float model
/// teaches: its softened logits on each batch join the loss (`distillationWeight`).
public struct BinaryTraining: Sendable {
    public var weightStageEpochs = 2
    public var binaryStageEpochs = 4
    public var learningRate: Float = 1e-3
    public var batchSize = 128
    /// The real layers' width in the final model (nil: float).
    public var ends: Int? = 8
    public var seed: UInt64 = 0
    /// Distillation from the float model (its logits on the same images, `Distillation`) in
    /// both stages: the loss is (1 − weight)·cross-entropy + weight·KL term (0: labels alone).
    public var distillationWeight = 0.0
    public var temperature = 1.0
    public init() {}

    public struct Epoch: Sendable {
        public var stage: Int, epoch: Int
        public var loss: Double, trainAccuracy: Double, validationAccuracy: Double, seconds: Double
    }

    public struct Result: Sendable {
        /// The trained binary network (real layers float).
        public var model: Model
        /// `model` with its real layers at `ends` bits: the result to evaluate.
        public var quantized: Model
        public var policy: Policy
        public var history: [Epoch]
        public var validationAccuracy: Double
        public var interrupted: Bool
        public var seconds: Double
    }

    /// The binary model with every sign replaced by hardtanh: stage one.
    static func realActivations(_ model: Model) throws -> Model {
        let m = model.copy()
        let nodes = model.nodes.map { n -> Node in
            guard case .binarize = n.op else { return n }
            var r = n; r.op = .clip(min: -1, max: 1); return r
        }
        try m.replaceGraph(nodes: nodes, parameters: model.parameterOrder.map { ($0, model.parameters[$0]!) },
                           buffers: model.buffers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        return m
    }

    /// The policy of the binary model: its binary layers at 1 bit (binary weights per channel,
    /// binary inputs — what their own sign and XNOR weights compute, so the costs count them),
    /// the real ones at `ends` bits.
    public func policy(_ binary: Model) throws -> Policy {
        try Policy(model: binary, entries: binary.layers.map { l in
            let isBinary = binary.nodes.contains { n in n.op == .binaryWeights && n.outputs.contains(binary.nodes[l.node].inputs[1]) }
            guard !isBinary else {
                return Policy.Entry(layer: l, weight: Policy.Weight(Quantizer(bits: 1, scheme: .binary, slicing: .channel)), activation: Policy.Activation(bits: 1, scheme: .binary))
            }
            return Policy.Entry(layer: l, weight: ends.map { .reference(bits: $0) }, activation: ends.map { Policy.Activation(bits: $0) })
        })
    }

    /// Trains the binary variant of `float` (a zoo cnn or resnet20, its weights the start).
    public func run(_ float: Model, architecture: String, train: Dataset, validation: Dataset, progress: (String) -> Void = { _ in }) throws -> Result {
        guard train.count > 0, validation.count > 0 else {
            throw QuantizationError("bnn: the training and validation splits must hold examples (\(train.count) and \(validation.count))")
        }
        guard weightStageEpochs >= 0, binaryStageEpochs >= 0, weightStageEpochs + binaryStageEpochs > 0, learningRate > 0, learningRate.isFinite, batchSize > 0 else {
            throw QuantizationError("bnn: expected epochs ≥ 0 (not both 0), a positive learning rate and batch size")
        }
        let start = Date()
        let binary = try Zoo.binary(architecture, input: float.inputShape, classes: float.layers.last.map { $0.weightShape[0] } ?? 10)
        try binary.loadStateDict(float.stateDict, source: "the float model '\(float.name)'")
        var history: [Epoch] = []
        var interrupted = false
        for (stage, epochs) in [(1, weightStageEpochs), (2, binaryStageEpochs)] where epochs > 0 && !interrupted {
            let model = stage == 1 ? try Self.realActivations(binary) : binary
            var options = TrainingOptions()
            options.epochs = epochs; options.batchSize = batchSize; options.seed = seed &+ UInt64(stage)
            options.optimizer = .adam(); options.schedule = .cosine(peak: learningRate)
            if distillationWeight > 0 {
                options.teacher = float; options.distillationWeight = distillationWeight; options.temperature = temperature
            }
            var epochStart = Date()
            let r = try model.train(on: train, options: options) { p in
                guard p.endOfEpoch else { return }
                let v = (try? model.accuracy(on: validation)) ?? .nan
                let e = Epoch(stage: stage, epoch: p.epoch, loss: p.loss, trainAccuracy: p.accuracy, validationAccuracy: v, seconds: Date().timeIntervalSince(epochStart))
                history.append(e)
                progress("bnn stage \(stage) (\(stage == 1 ? "binary weights" : "binary weights and activations")) " +
                         String(format: "%d/%d  loss %.4f  train %.4f  validation %.4f  %.0f s, about %.0f s left", p.epoch, p.epochs, p.loss, p.accuracy, v,
                                e.seconds, Double(p.epochs - p.epoch + (stage == 1 ? binaryStageEpochs : 0)) * e.seconds))
                epochStart = Date()
            }
            if stage == 1 { try binary.loadStateDict(model.stateDict, source: "stage 1") }
            if r.interrupted { interrupted = true; Interrupt.clear() }
        }
        let policy = try self.policy(binary)
        let quantized = try binary.quantized(policy: policy, calibration: try train.images.slice(0..<min(train.count, 256)))
        return Result(model: binary, quantized: quantized, policy: policy, history: history,
                      validationAccuracy: try quantized.accuracy(on: validation), interrupted: interrupted, seconds: Date().timeIntervalSince(start))
    }
}
