import Foundation
import Network
import Quantization
import Runtime
import Tensors

/// HMQ (Habi et al., ECCV 2020; ../shared/METHODS.md §5): each searched layer's weight goes
/// through a `GumbelQuantization` — a Gumbel-softmax over (width × power-of-two threshold), the
/// forward quantizer at the expected step and threshold — and the loss adds the target-compression
/// term γ·relu((R_t − R̂)/R_t)², R̂ = 32·Σ n_l / Σ n_l·E[b_l] the weight compression over every
/// layer (the ends at their width, float layers at 32), E[b] from softmax(π) (without noise),
/// R_t ramping linearly from 1 to the target over the first `ramp` of the search. The
/// temperature falls from 1 to ½ geometrically over each `restartEpochs` epochs, then restarts.
/// Weights (SGD Nesterov, one-cycle) and π (Adam) step on the same batch. The discrete policy:
/// each layer's marginal argmax width with the pow2 quantizer (per tensor, the threshold of least
/// squared error — HMQ's inference rule), widths then moved along the marginals until the
/// compression is within `tolerance` of the target (our addition: short searches end with broad
/// marginals whose argmax misses it; `tolerance` 0 keeps the argmax); the network is then fine-tuned with π fixed one-hot
/// at that cell, and the result is the policy's simulation of the fine-tuned weights.
///
/// Activations are not searched here: the searched layers' inputs stay float in the search and
/// fine-tuning and take `activationBits` (the reference uniform quantizer, calibrated) in the
/// policy — the setting of the weight-compression experiments (8-bit activations).
public struct HMQ: Sendable {
    public var bits: [Int] = [2, 3, 4, 5, 6, 7, 8]
    /// The target weight compression against float32 (8: 4 bits on average; 10.67: 3 bits).
    public var compression: Double = 8
    public var gamma: Double = 32
    /// The first and last layer's width (weights and input, the reference quantizers), nil: float.
    public var ends: Int? = 8
    /// The searched layers' input width in the policy (nil: float).
    public var activationBits: Int? = 8
    public var searchEpochs = 3
    public var fineTuneEpochs = 2
    public var batchSize = 128
    public var learningRate: Float = 0.01
    /// π's Adam rate.
    public var logitRate: Float = 0.05
    /// The fraction of the search over which R_t ramps from 1 to `compression`.
    public var ramp = 0.5
    public var restartEpochs = 5
    /// After the argmax, widths move along the marginals until the policy's compression is within
    /// this fraction of the target (0: the argmax alone, as the paper infers).
    public var tolerance = 0.02
    /// A .npz the search's state is written to after every epoch (the fine-tuning's beside it,
    /// `-finetune.npz`); an existing one is continued (`TrainingOptions.checkpoint`). Epochs run
    /// before a resume are not in the history.
    public var checkpoint: String? = nil
    public var seed: UInt64 = 0
    public init() {}

    public static let temperatureBuffer = "hmq.temperature"
    public static let targetBuffer = "hmq.target"

    /// One searched layer.
    public struct Searched: Sendable, Equatable {
        public var layer: String
        public var parameters: Int
        public var logits: String
        public var noise: String
    }

    var quantization: GumbelQuantization { GumbelQuantization(bits: bits) }

    /// The search model: `model` with a Gumbel quantizer on the weight of every layer but the
    /// ends. π starts, for each width, at −|j − j*| with j* that width's least-error threshold on
    /// the trained weight (uniform over widths, thresholds near the right one favoured); the
    /// noise at 0, the temperature at 1, the target at 1.
    public func searchModel(_ model: Model) throws -> (model: Model, layers: [Searched]) {
        try quantization.validate()
        let searched = try SearchTraining.innerLayers(model, method: "hmq")
        var nodes = model.nodes
        var params = model.parameterOrder.map { ($0, model.parameters[$0]!) }
        var buffers = model.buffers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        buffers.append((Self.temperatureBuffer, Tensor([1])))
        buffers.append((Self.targetBuffer, Tensor([1])))
        let cells = [bits.count, GumbelQuantization.thresholdCount]
        var out: [Searched] = []
        for layer in searched.sorted(by: { $0.node > $1.node }) {
            let w = model.parameters[layer.weight]!.scalars
            let ts = GumbelQuantization.thresholds(w)
            guard !ts.isEmpty else { throw MixedPrecisionError("hmq: layer '\(layer.name)' has an all-zero (or non-finite) weight; it has no threshold to search") }
            var logits: [Float] = []
            for b in bits {
                let best = ts.firstIndex(of: GumbelQuantization.bestThreshold(w, bits: b)!)!
                logits += ts.indices.map { -Float(abs($0 - best)) }
            }
            let (pn, nn) = ("\(layer.name).hmq_logits", "\(layer.name).hmq_noise")
            params.append((pn, Tensor(checkedShape: cells, scalars: logits)))
            buffers.append((nn, try Tensor.zeros(cells)))
            let weightOut = "\(layer.weight)@hmq"
            nodes[layer.node].inputs[1] = weightOut
            nodes.insert(Node(name: "/\(layer.name)/weight/GumbelQuantize", op: .gumbelQuantize(quantization),
                              inputs: [layer.weight, pn, nn, Self.temperatureBuffer], outputs: [weightOut]), at: layer.node)
            out.insert(Searched(layer: layer.name, parameters: layer.parameterCount, logits: pn, noise: nn), at: 0)
        }
        let search = model.copy()
        try search.replaceGraph(nodes: nodes, parameters: params, buffers: buffers)
        search.name = "\(model.name) (HMQ search)"
        return (search, out)
    }

    /// The weight bits of the layers not searched: the ends' width, or 32 (float).
    func fixedBits(_ model: Model, _ layers: [Searched]) -> (bits: Int, parameters: Int) {
        let searched = Set(layers.map(\.layer))
        return (ends ?? 32, model.layers.filter { !searched.contains($0.name) }.reduce(0) { $0 + $1.parameterCount })
    }

    /// softmax(π) in Double (the cost term's differences are taken at small steps).
    static func probabilities(_ logits: [Float]) -> [Double] {
        let top = Double(logits.max() ?? 0)
        let e = logits.map { exp(Double($0) - top) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    /// E[b] = Σ softmax(π)_{b,j}·b of each searched layer.
    public func expectedBits(_ search: Model, _ layers: [Searched]) -> [Double] {
        let j = GumbelQuantization.thresholdCount
        return layers.map { l in Self.probabilities(search.parameters[l.logits]!.scalars).enumerated().reduce(0.0) { $0 + $1.1 * Double(bits[$1.0 / j]) } }
    }

    /// The expected weight compression R̂ = 32·N/(Σ n·E[b] + fixed bits).
    public func expectedCompression(_ search: Model, _ layers: [Searched]) -> Double {
        let (fb, fn) = fixedBits(search, layers)
        let stored = zip(layers, expectedBits(search, layers)).reduce(Double(fb * fn)) { $0 + Double($1.0.parameters) * $1.1 }
        return 32 * Double(fn + layers.reduce(0) { $0 + $1.parameters }) / stored
    }

    /// γ·relu((R_t − R̂)/R_t)² at the target in the search model's buffer, with its gradients in π:
    /// ∂/∂π_{b,j} = (2γu/R_t)·(32N·n_l/D²)·softmax(π)_{b,j}·(b − E[b_l]), u = (R_t − R̂)/R_t, D = the stored bits.
    public func penalty(_ search: Model, _ layers: [Searched]) -> (value: Double, gradients: [String: Tensor]) {
        let target = Double(search.buffers[Self.targetBuffer]?.scalars.first ?? 1)
        let (fb, fn) = fixedBits(search, layers)
        let expected = expectedBits(search, layers)
        let total = Double(fn + layers.reduce(0) { $0 + $1.parameters })
        let stored = zip(layers, expected).reduce(Double(fb * fn)) { $0 + Double($1.0.parameters) * $1.1 }
        let u = (target - 32 * total / stored) / target
        guard u > 0 else { return (0, [:]) }
        var grads: [String: Tensor] = [:]
        let j = GumbelQuantization.thresholdCount
        for (l, e) in zip(layers, expected) {
            let logits = search.parameters[l.logits]!
            let p = Self.probabilities(logits.scalars)
            let f = 2 * gamma * u / target * 32 * total * Double(l.parameters) / (stored * stored)
            grads[l.logits] = Tensor(checkedShape: logits.shape, scalars: p.indices.map { Float(f * p[$0] * (Double(bits[$0 / j]) - e)) })
        }
        return (gamma * u * u, grads)
    }

    /// τ at `step` of a search with `stepsPerEpoch`: 2^(−f), f the fraction of the current
    /// `restartEpochs`-epoch cycle done.
    public func temperature(step: Int, stepsPerEpoch: Int) -> Float {
        let cycle = max(1, restartEpochs * stepsPerEpoch)
        return Float(pow(2, -Double(step % cycle) / Double(cycle)))
    }

    /// R_t at `step` of `total`.
    public func target(step: Int, total: Int) -> Double {
        1 + (compression - 1) * min(1, Double(step) / max(1, ramp * Double(total)))
    }

    /// The discrete policy for `model`: each searched layer's marginal argmax width (pow2, per
    /// tensor, least-error threshold), its input at `activationBits`; the ends at `ends`. With
    /// `meetTarget` (and `tolerance` > 0), widths then move while the policy's compression is more
    /// than `tolerance` (relative) off the target — see `meetingTheTarget`.
    public func policy(_ search: Model, _ layers: [Searched], for model: Model, meetTarget: Bool = false) throws -> Policy {
        var chosen = layers.map { quantization.chosenBits(search.parameters[$0.logits]!.scalars) }
        if meetTarget {
            chosen = meetingTheTarget(chosen, marginals: layers.map { quantization.marginal(search.parameters[$0.logits]!.scalars) },
                                      parameters: layers.map(\.parameters), fixed: fixedBits(model, layers))
        }
        let byName = Dictionary(uniqueKeysWithValues: zip(layers.map(\.layer), chosen).map { ($0, $1) })
        return try Policy(model: model, entries: model.layers.map { layer in
            guard let b = byName[layer.name] else {
                return Policy.Entry(layer: layer, weight: ends.map { .reference(bits: $0) }, activation: ends.map { Policy.Activation(bits: $0) })
            }
            return Policy.Entry(layer: layer, weight: Policy.Weight(Self.quantizer(bits: b)), activation: activationBits.map { Policy.Activation(bits: $0) })
        })
    }

    /// Widths whose compression is within `tolerance` of the target, moved from `chosen` along
    /// the learned marginals (`MarginalRounding`; the miss is (R_t − R)/R_t).
    func meetingTheTarget(_ chosen: [Int], marginals: [[Float]], parameters: [Int], fixed: (bits: Int, parameters: Int)) -> [Int] {
        let total = Double(fixed.parameters + parameters.reduce(0, +))
        func ratio(_ b: [Int]) -> Double {
            32 * total / zip(b, parameters).reduce(Double(fixed.bits * fixed.parameters)) { $0 + Double($1.0 * $1.1) }
        }
        return MarginalRounding.meet(chosen, widths: Array(repeating: bits, count: chosen.count), marginals: marginals, tolerance: tolerance) {
            (compression - ratio($0)) / compression
        }
    }

    /// HMQ's inference quantizer at `bits`.
    public static func quantizer(bits: Int) -> Quantizer {
        Quantizer(bits: bits, scheme: .powerOfTwo, slicing: .tensor, clipping: .mse)
    }

    public struct Epoch: Sendable {
        public var epoch: Int
        public var loss: Double, trainAccuracy: Double, validationAccuracy: Double
        public var expectedBits: [Double]
        /// R̂ and the target R_t at the epoch's end, the temperature of its last batch.
        public var expectedCompression: Double, target: Double, temperature: Float
        public var seconds: Double
    }

    public struct Result: Sendable {
        public var policy: Policy
        /// The marginals' argmax before the widths were moved to meet the target (nil after fine-tuning alone).
        public var argmaxPolicy: Policy?
        /// The model with the fine-tuned weights; `quantized` is it under `policy`.
        public var model: Model
        public var quantized: Model
        public var searched: [Searched]
        public var searchModel: Model
        public var history: [Epoch]
        /// The policy's weight compression, 32/average bits.
        public var compression: Double
        public var validationAccuracy: Double
        public var interrupted: Bool
        public var seconds: Double
    }

    /// Search on `train`, discretize, fine-tune, quantize (see the type). One progress line per
    /// epoch; Ctrl-C ends the search (no fine-tuning then) or the fine-tuning and keeps what was learned.
    public func run(_ model: Model, train: Dataset, validation: Dataset, progress: (String) -> Void = { _ in }) throws -> Result {
        let calibration = try SearchTraining.calibration(train, validation, method: "hmq")
        guard compression.isFinite, compression >= 1, gamma.isFinite, gamma >= 0, ramp > 0, ramp <= 1, restartEpochs >= 1 else {
            throw MixedPrecisionError("hmq: expected a finite compression ≥ 1, gamma ≥ 0, ramp in (0, 1] and restart epochs ≥ 1; found \(compression), \(gamma), \(ramp), \(restartEpochs)")
        }
        let reachable = 32 / Double(bits.min() ?? 8)
        guard compression <= reachable else {
            throw MixedPrecisionError(String(format: "hmq: a weight compression of ×%.2f (%.2f bits on average) is out of reach: ", compression, 32 / compression) + "the candidate widths \(bits) reach at most ×\(reachable) (less with the ends)")
        }
        let start = Date()
        let (search, layers) = try searchModel(model)
        var history: [Epoch] = []
        var options = TrainingOptions()
        options.epochs = searchEpochs; options.batchSize = batchSize; options.seed = seed
        options.schedule = .oneCycle(peak: learningRate)
        options.checkpoint = checkpoint
        options.groups = [ParameterGroup(names: Set(layers.map(\.logits)), optimizer: .adam(), schedule: .constant(logitRate))]
        let me = self
        let stepsPerEpoch = (train.count + batchSize - 1) / batchSize
        options.penalty = { m in me.penalty(m, layers) }
        options.beforeBatch = { m, step, total in
            m.buffers[Self.temperatureBuffer] = Tensor([me.temperature(step: step, stepsPerEpoch: stepsPerEpoch)])
            m.buffers[Self.targetBuffer] = Tensor([Float(me.target(step: step, total: total))])
            var rng = RandomGenerator(seed: me.seed &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(step + 1))
            for l in layers {
                let shape = m.buffers[l.noise]!.shape
                m.buffers[l.noise] = Tensor(checkedShape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in
                    let u = (Float(rng.next() >> 40) + 0.5) * 0x1p-24
                    return -log(-log(u))
                })
            }
        }
        var epochStart = Date()
        let run = try search.train(on: train, options: options) { p in
            guard p.endOfEpoch else { return }
            let v = (try? search.accuracy(on: validation)) ?? .nan
            let e = Epoch(epoch: p.epoch, loss: p.loss, trainAccuracy: p.accuracy, validationAccuracy: v, expectedBits: me.expectedBits(search, layers),
                          expectedCompression: me.expectedCompression(search, layers),
                          target: Double(search.buffers[Self.targetBuffer]!.scalars[0]), temperature: search.buffers[Self.temperatureBuffer]!.scalars[0],
                          seconds: Date().timeIntervalSince(epochStart))
            history.append(e)
            let left = Double(p.epochs - p.epoch + me.fineTuneEpochs) * e.seconds
            progress(String(format: "hmq search %d/%d  loss %.4f  train %.4f  validation %.4f  E[b] %.2f  compression %.2f (target %.2f)  τ %.3f  %.0f s, about %.0f s left",
                            p.epoch, p.epochs, p.loss, p.accuracy, v, 32 / e.expectedCompression, e.expectedCompression, e.target, e.temperature, e.seconds, left))
            epochStart = Date()
        }
        if run.interrupted { Interrupt.clear() }
        let argmax = try self.policy(search, layers, for: model)
        let policy = tolerance > 0 ? try self.policy(search, layers, for: model, meetTarget: true) : argmax
        if policy != argmax {
            progress(String(format: "hmq: the argmax widths compress ×%.2f; moved along the marginals to ×%.2f (target ×%.2f)",
                            32 / argmax.averageBits, 32 / policy.averageBits, compression))
        }
        var result = try finish(model, search: search, layers: layers, policy: policy, train: train, validation: validation, calibration: calibration,
                                history: history, interrupted: run.interrupted, start: start, progress: progress)
        result.argmaxPolicy = argmax
        return result
    }

    /// The fine-tuning alone, for a policy of the form the search returns (pow2 per-tensor weights
    /// at candidate widths between the ends, inputs at `activationBits`; the ends at `ends`): the
    /// same recipe for hand-made and other methods' allocations.
    public func fineTune(_ model: Model, policy: Policy, train: Dataset, validation: Dataset, progress: (String) -> Void = { _ in }) throws -> Result {
        let calibration = try SearchTraining.calibration(train, validation, method: "hmq")
        try policy.check(against: model)
        let start = Date()
        let (search, layers) = try searchModel(model)
        let searched = Set(layers.map(\.layer))
        try SearchTraining.check(policy, searched: searched, ends: ends, method: "hmq") { e in
            guard let w = e.weight, w.channelBits == nil, w.quantizer == Self.quantizer(bits: w.quantizer.bits), bits.contains(w.quantizer.bits),
                  e.activation?.bits == activationBits else {
                return "pow2 per-tensor weights with mse clipping at one of \(bits) bits and inputs at \(activationBits.map { "\($0) bits" } ?? "float")"
            }
            return nil
        }
        return try finish(model, search: search, layers: layers, policy: policy, train: train, validation: validation, calibration: calibration,
                          history: [], interrupted: false, start: start, progress: progress)
    }

    /// π one-hot at each layer's chosen width and its least-error threshold, fine-tuning with π
    /// fixed, then the policy's simulation of the fine-tuned weights.
    func finish(_ model: Model, search: Model, layers: [Searched], policy: Policy, train: Dataset, validation: Dataset, calibration: Tensor,
                history: [Epoch], interrupted searchInterrupted: Bool, start: Date, progress: (String) -> Void) throws -> Result {
        var interrupted = searchInterrupted
        let byName = Dictionary(uniqueKeysWithValues: policy.entries.map { ($0.layer.name, $0) })
        let j = GumbelQuantization.thresholdCount
        for l in layers {
            let b = byName[l.layer]!.weight!.quantizer.bits
            let w = search.parameters[model.layer(named: l.layer)!.weight]!.scalars
            let ts = GumbelQuantization.thresholds(w)
            let cell = bits.firstIndex(of: b)! * j + ts.firstIndex(of: GumbelQuantization.bestThreshold(w, bits: b)!)!
            search.parameters[l.logits] = Tensor(checkedShape: [bits.count, j], scalars: (0..<(bits.count * j)).map { $0 == cell ? 0 : -1e4 })
            search.buffers[l.noise] = try Tensor.zeros([bits.count, j])
        }
        search.buffers[Self.temperatureBuffer] = Tensor([1])
        if !interrupted {
            interrupted = try SearchTraining.fineTune(search, frozen: Set(layers.map(\.logits)), epochs: fineTuneEpochs, batchSize: batchSize,
                                                      learningRate: learningRate, seed: seed &+ 1, train: train, validation: validation,
                                                      method: "hmq", checkpoint: checkpoint, progress: progress)
        }
        let tuned = SearchTraining.weights(of: search, into: model)
        let quantized = try tuned.quantized(policy: policy, calibration: calibration)
        return Result(policy: policy, argmaxPolicy: nil, model: tuned, quantized: quantized, searched: layers, searchModel: search, history: history,
                      compression: 32 / policy.averageBits, validationAccuracy: try quantized.accuracy(on: validation),
                      interrupted: interrupted, seconds: Date().timeIntervalSince(start))
    }
}
