import Foundation
import Network
import Quantization
import Runtime
import Tensors

/// EdMIPS (Cai and Vasconcelos, CVPR 2020; ../shared/METHODS.md §6): the bits are learned by
/// gradient descent. Each searched layer reads its weight through a `MixedQuantization` of the
/// Gaussian weight quantizers at the candidate widths and its input through one of HWGQ's, each
/// mixed by π = softmax(α) (one conv, by bilinearity); the loss adds λ·Σ_l MACs_l·E[b_w,l]·E[b_a,l]
/// normalised by 2·Σ_l MACs_l (so uniform W2A2 costs 2.0); weights (SGD) and α (Adam) step on the
/// same batch. The discrete policy takes each α's argmax; the discretized network is then
/// fine-tuned with α fixed one-hot — the method's own quantizers — and the result is the
/// policy's simulation (`Model.quantized(policy:sequential: true)`: HWGQ's σ measured layer by layer
/// with the quantizers before it in place) with the fine-tuned weights.
public struct EdMIPS: Sendable {
    public var weightBits: [Int] = [1, 2, 3, 4]
    public var activationBits: [Int] = [1, 2, 3, 4]
    /// Weight of the cost term.
    public var lambda: Double = 0.01
    /// The first and last layer: nil keeps them float (EdMIPS), a width puts them there with the
    /// reference quantizers (weights and inputs; HAWQ's 8).
    public var ends: Int? = nil
    public var searchEpochs = 3
    public var fineTuneEpochs = 2
    public var batchSize = 128
    /// The weights' peak learning rate (SGD Nesterov, one-cycle); α takes Adam at `alphaRate`.
    public var learningRate: Float = 0.01
    public var alphaRate: Float = 0.01
    /// A BitOps target for the discrete policy (Σ MACs·b_w·b_a over every layer, float ones at
    /// 32): the argmax widths then move along softmax(α) until the policy's BitOps are within
    /// `tolerance` of it (`MarginalRounding`; our addition — the paper steers by λ alone).
    public var bitOps: Double? = nil
    public var tolerance = 0.02
    /// A .npz the search's state is written to after every epoch (the fine-tuning's beside it,
    /// `-finetune.npz`); an existing one is continued (`TrainingOptions.checkpoint`). Epochs run
    /// before a resume are not in the history.
    public var checkpoint: String? = nil
    public var seed: UInt64 = 0
    public init() {}

    /// One searched layer.
    public struct Searched: Sendable, Equatable {
        public var layer: String
        public var macs: Int
        public var weightLogits: String
        public var activationLogits: String
    }

    /// The search model: `model` with mixed quantizers on the weight and input of every layer but
    /// the ends, α at 0 (uniform π), each HWGQ's running σ (buffer `<layer>.hwgq_sigma`) starting
    /// at √(2·E[x²]) of its input on `calibration`. Inputs that go below 0 are refused (HWGQ
    /// quantizes half-waves).
    public func searchModel(_ model: Model, calibration: Tensor) throws -> (model: Model, layers: [Searched]) {
        try MixedQuantization(kind: .gaussianWeights, bits: weightBits).validate()
        try MixedQuantization(kind: .hwgqActivations, bits: activationBits).validate()
        let searched = try SearchTraining.innerLayers(model, method: "edmips")
        let stats = try model.inputStatistics(of: searched, on: calibration)
        var nodes = model.nodes
        var params = model.parameterOrder.map { ($0, model.parameters[$0]!) }
        var buffers = model.buffers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        var out: [Searched] = []
        for layer in searched.sorted(by: { $0.node > $1.node }) {
            let s = stats[layer.name]!
            guard s.low >= 0 else {
                throw MixedPrecisionError("edmips: layer '\(layer.name)' reads values below 0 (min \(s.low)); HWGQ quantizes non-negative activations (after a ReLU)")
            }
            let sigma = Float((2 * s.meanSquare).squareRoot())
            guard sigma > 0 else { throw MixedPrecisionError("edmips: layer '\(layer.name)' reads only zeros on the calibration data") }
            let (wa, aa, sn) = ("\(layer.name).alpha_w", "\(layer.name).alpha_a", "\(layer.name).hwgq_sigma")
            params.append((wa, try Tensor.zeros([weightBits.count])))
            params.append((aa, try Tensor.zeros([activationBits.count])))
            buffers.append((sn, Tensor([sigma])))
            let input = nodes[layer.node].inputs[0]
            let weightOut = "\(layer.weight)@edmips", inputOut = "\(input)@edmips:\(layer.name)"
            let inserted = [
                Node(name: "/\(layer.name)/weight/MixedQuantize", op: .mixedQuantize(MixedQuantization(kind: .gaussianWeights, bits: weightBits)),
                     inputs: [layer.weight, wa], outputs: [weightOut]),
                Node(name: "/\(layer.name)/input/MixedQuantize", op: .mixedQuantize(MixedQuantization(kind: .hwgqActivations, bits: activationBits)),
                     inputs: [input, aa, sn], outputs: [inputOut]),
            ]
            nodes[layer.node].inputs[0] = inputOut
            nodes[layer.node].inputs[1] = weightOut
            nodes.insert(contentsOf: inserted, at: layer.node)
            out.insert(Searched(layer: layer.name, macs: layer.macs, weightLogits: wa, activationLogits: aa), at: 0)
        }
        let search = model.copy()
        try search.replaceGraph(nodes: nodes, parameters: params, buffers: buffers)
        search.name = "\(model.name) (EdMIPS search)"
        return (search, out)
    }

    /// Expected widths E[b] = Σ π_i·b_i of each searched layer's weight and input.
    public func expectedBits(_ search: Model, _ layers: [Searched]) -> [(weight: Double, activation: Double)] {
        layers.map { l in
            (Self.expectation(search.parameters[l.weightLogits]!.scalars, weightBits),
             Self.expectation(search.parameters[l.activationLogits]!.scalars, activationBits))
        }
    }

    static func expectation(_ alpha: [Float], _ bits: [Int]) -> Double {
        zip(MixedQuantization.probabilities(alpha), bits).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }

    /// Expected BitOps, Σ_l MACs_l·E[b_w,l]·E[b_a,l], over the searched layers.
    public func expectedBitOps(_ search: Model, _ layers: [Searched]) -> Double {
        zip(layers, expectedBits(search, layers)).reduce(0.0) { $0 + Double($1.0.macs) * $1.1.weight * $1.1.activation }
    }

    /// The cost term λ·expected BitOps/(2·Σ MACs) and its gradients in α:
    /// ∂/∂α_w,k = λ/N·MACs·E[b_a]·π_k·(b_k − E[b_w]), and likewise for α_a.
    public func penalty(_ search: Model, _ layers: [Searched]) -> (value: Double, gradients: [String: Tensor]) {
        let norm = 2 * Double(layers.reduce(0) { $0 + $1.macs })
        var grads: [String: Tensor] = [:]
        var value = 0.0
        for l in layers {
            let (aw, aa) = (search.parameters[l.weightLogits]!.scalars, search.parameters[l.activationLogits]!.scalars)
            let (pw, pa) = (MixedQuantization.probabilities(aw), MixedQuantization.probabilities(aa))
            let (ew, ea) = (Self.expectation(aw, weightBits), Self.expectation(aa, activationBits))
            let f = lambda * Double(l.macs) / norm
            value += f * ew * ea
            grads[l.weightLogits] = Tensor(checkedShape: [aw.count], scalars: zip(pw, weightBits).map { Float(f * ea * Double($0) * (Double($1) - ew)) })
            grads[l.activationLogits] = Tensor(checkedShape: [aa.count], scalars: zip(pa, activationBits).map { Float(f * ew * Double($0) * (Double($1) - ea)) })
        }
        return (value, grads)
    }

    /// The discrete policy for `model` (the one searched): each layer's argmax widths, Gaussian
    /// weights (per tensor) and HWGQ inputs; the ends float or at `ends` bits.
    public func policy(_ search: Model, _ layers: [Searched], for model: Model) throws -> Policy {
        let byName = Dictionary(uniqueKeysWithValues: layers.map { ($0.layer, $0) })
        func argmax(_ a: [Float]) -> Int { a.indices.max { a[$0] < a[$1] || (a[$0] == a[$1] && $0 > $1) }! }
        return try Policy(model: model, entries: model.layers.map { layer in
            guard let s = byName[layer.name] else {
                return Policy.Entry(layer: layer, weight: ends.map { .reference(bits: $0) }, activation: ends.map { Policy.Activation(bits: $0) })
            }
            let b = weightBits[argmax(search.parameters[s.weightLogits]!.scalars)]
            let a = activationBits[argmax(search.parameters[s.activationLogits]!.scalars)]
            return Policy.Entry(layer: layer, weight: Policy.Weight(Quantizer(bits: b, scheme: .gaussian, slicing: .tensor)),
                                activation: Policy.Activation(bits: a, scheme: .hwgq))
        })
    }

    /// One epoch's record of the search.
    public struct Epoch: Sendable {
        public var epoch: Int
        public var loss: Double, trainAccuracy: Double, validationAccuracy: Double
        /// Expected widths per searched layer, and the expected BitOps.
        public var expected: [(weight: Double, activation: Double)]
        public var expectedBitOps: Double
        public var seconds: Double
    }

    public struct Result: Sendable {
        public var policy: Policy
        /// The α argmax before its widths were moved to meet a BitOps target (nil after fine-tuning alone).
        public var argmaxPolicy: Policy? = nil
        /// The model with the fine-tuned float weights (batch norm as trained); quantize it with
        /// `policy` to run the result.
        public var model: Model
        /// `model` under `policy` (fake quantization calibrated on the training data).
        public var quantized: Model
        public var searched: [Searched]
        /// The search model as it ended: α (one-hot after fine-tuning), the running σ's.
        public var searchModel: Model
        public var history: [Epoch]
        public var validationAccuracy: Double
        /// The fine-tuned search model's (α one-hot, HWGQ at its running σ, ends float) on the
        /// validation split: what training saw, beside the policy's simulation.
        public var searchModelValidationAccuracy: Double
        public var interrupted: Bool
        public var seconds: Double
    }

    /// Search on `train` (validation accuracy reported per epoch on `validation`), discretize,
    /// fine-tune with α fixed, and quantize. `progress` gets one line per epoch. Ctrl-C
    /// (`Interrupt`) ends the search or the fine-tuning early; the result is then what was
    /// learned so far, with `interrupted` set (no fine-tuning after an interrupted search).
    public func run(_ model: Model, train: Dataset, validation: Dataset, progress: (String) -> Void = { _ in }) throws -> Result {
        let calibration = try SearchTraining.calibration(train, validation, method: "edmips")
        guard lambda.isFinite, lambda >= 0 else { throw MixedPrecisionError("edmips: lambda must be finite and ≥ 0, found \(lambda)") }
        if let b = bitOps, !(b.isFinite && b > 0) { throw MixedPrecisionError("edmips: a BitOps target must be positive and finite, found \(b)") }
        let start = Date()
        let (search, layers) = try searchModel(model, calibration: calibration)
        let alphas = Set(layers.flatMap { [$0.weightLogits, $0.activationLogits] })
        var history: [Epoch] = []
        var options = TrainingOptions()
        options.epochs = searchEpochs; options.batchSize = batchSize; options.seed = seed
        options.schedule = .oneCycle(peak: learningRate)
        options.checkpoint = checkpoint
        options.groups = [ParameterGroup(names: alphas, optimizer: .adam(), schedule: .constant(alphaRate))]
        let me = self
        options.penalty = { m in me.penalty(m, layers) }
        var epochStart = Date()
        let searchRun = try search.train(on: train, options: options) { p in
            guard p.endOfEpoch else { return }
            let v = (try? search.accuracy(on: validation)) ?? .nan
            let e = Epoch(epoch: p.epoch, loss: p.loss, trainAccuracy: p.accuracy, validationAccuracy: v,
                          expected: me.expectedBits(search, layers), expectedBitOps: me.expectedBitOps(search, layers),
                          seconds: Date().timeIntervalSince(epochStart))
            history.append(e)
            let mean = e.expected.reduce((0.0, 0.0)) { ($0.0 + $1.weight, $0.1 + $1.activation) }
            let left = Double(p.epochs - p.epoch) * e.seconds + Double(me.fineTuneEpochs) * e.seconds
            progress(String(format: "edmips search %d/%d  loss %.4f  train %.4f  validation %.4f  E[b_w] %.2f  E[b_a] %.2f  BitOps %.4g  %.0f s, about %.0f s left",
                            p.epoch, p.epochs, p.loss, p.accuracy, v, mean.0 / Double(layers.count), mean.1 / Double(layers.count),
                            e.expectedBitOps, e.seconds, left))
            epochStart = Date()
        }
        // Ctrl-C ends the search and keeps what was learned: the result is still assembled (a
        // second Ctrl-C stops that too).
        if searchRun.interrupted { Interrupt.clear() }
        let argmax = try self.policy(search, layers, for: model)
        var policy = argmax
        if let target = bitOps {
            policy = try meeting(target, from: argmax, search: search, layers: layers, model: model)
            if policy != argmax {
                progress(String(format: "edmips: the argmax widths cost %.4g BitOps; moved along softmax(α) to %.4g (target %.4g)",
                                try CostModel.bitOps(activationBits: nil).cost(argmax), try CostModel.bitOps(activationBits: nil).cost(policy), target))
            }
        }
        var result = try finish(model, search: search, layers: layers, policy: policy, train: train, validation: validation, calibration: calibration,
                                history: history, interrupted: searchRun.interrupted, start: start, progress: progress)
        result.argmaxPolicy = argmax
        return result
    }

    /// `argmax` with its searched widths (weights and inputs, two decisions per layer) moved along
    /// softmax(α) until its BitOps are within `tolerance` of `target`.
    func meeting(_ target: Double, from argmax: Policy, search: Model, layers: [Searched], model: Model) throws -> Policy {
        let cost = CostModel.bitOps(activationBits: nil)
        let byName = Dictionary(uniqueKeysWithValues: argmax.entries.map { ($0.layer.name, $0) })
        var chosen: [Int] = [], widths: [[Int]] = [], marginals: [[Float]] = [], macs: [Double] = []
        for l in layers {
            chosen += [byName[l.layer]!.weight!.quantizer.bits, byName[l.layer]!.activation!.bits]
            widths += [weightBits, activationBits]
            marginals += [MixedQuantization.probabilities(search.parameters[l.weightLogits]!.scalars),
                          MixedQuantization.probabilities(search.parameters[l.activationLogits]!.scalars)]
            macs.append(Double(l.macs))
        }
        func searched(_ c: [Int]) -> Double { macs.indices.reduce(0.0) { $0 + macs[$1] * Double(c[2 * $1] * c[2 * $1 + 1]) } }
        let fixed = try cost.cost(argmax) - searched(chosen)
        let widthsFound = MarginalRounding.meet(chosen, widths: widths, marginals: marginals, tolerance: tolerance) { (fixed + searched($0) - target) / target }
        var entries = argmax.entries
        for (i, l) in layers.enumerated() {
            let e = entries.firstIndex { $0.layer.name == l.layer }!
            entries[e].weight = Policy.Weight(Quantizer(bits: widthsFound[2 * i], scheme: .gaussian, slicing: .tensor))
            entries[e].activation = Policy.Activation(bits: widthsFound[2 * i + 1], scheme: .hwgq)
        }
        return try Policy(model: model, entries: entries)
    }

    /// The fine-tuning alone, for any policy the search could return (Gaussian weights and HWGQ
    /// inputs at candidate widths between the ends, the ends at `ends` bits — any quantizer of
    /// that width, float in the fine-tuning as in the search — or float): the same recipe
    /// as after a search, so that hand-made policies (uniform W2A2, say) compare at equal budget.
    public func fineTune(_ model: Model, policy: Policy, train: Dataset, validation: Dataset, progress: (String) -> Void = { _ in }) throws -> Result {
        let calibration = try SearchTraining.calibration(train, validation, method: "edmips")
        try policy.check(against: model)
        let start = Date()
        let (search, layers) = try searchModel(model, calibration: calibration)
        let searched = Set(layers.map(\.layer))
        try SearchTraining.check(policy, searched: searched, ends: ends, method: "edmips") { e in
            guard let w = e.weight, w.quantizer.scheme == .gaussian, w.quantizer.slicing == .tensor, w.channelBits == nil, weightBits.contains(w.quantizer.bits),
                  let a = e.activation, a.scheme == .hwgq, activationBits.contains(a.bits) else {
                return "Gaussian per-tensor weights at one of \(weightBits) bits and HWGQ inputs at one of \(activationBits)"
            }
            return nil
        }
        return try finish(model, search: search, layers: layers, policy: policy, train: train, validation: validation, calibration: calibration,
                          history: [], interrupted: false, start: start, progress: progress)
    }

    /// Fine-tunes the discretized network with the method's quantizers (α one-hot and fixed),
    /// then quantizes the fine-tuned weights with `policy` (sequential calibration).
    func finish(_ model: Model, search: Model, layers: [Searched], policy: Policy, train: Dataset, validation: Dataset, calibration: Tensor,
                history: [Epoch], interrupted searchInterrupted: Bool, start: Date, progress: (String) -> Void) throws -> Result {
        var interrupted = searchInterrupted
        let byName = Dictionary(uniqueKeysWithValues: policy.entries.map { ($0.layer.name, $0) })
        for l in layers {
            let b = byName[l.layer]!.weight!.quantizer.bits, a = byName[l.layer]!.activation!.bits
            search.parameters[l.weightLogits] = Tensor(checkedShape: [weightBits.count], scalars: weightBits.map { $0 == b ? 0 : -1e4 })
            search.parameters[l.activationLogits] = Tensor(checkedShape: [activationBits.count], scalars: activationBits.map { $0 == a ? 0 : -1e4 })
        }
        if !interrupted {
            interrupted = try SearchTraining.fineTune(search, frozen: Set(layers.flatMap { [$0.weightLogits, $0.activationLogits] }), epochs: fineTuneEpochs,
                                                      batchSize: batchSize, learningRate: learningRate, seed: seed &+ 1, train: train, validation: validation,
                                                      method: "edmips", checkpoint: checkpoint, progress: progress)
        }
        // The fine-tuned weights and batch norms back in the original graph.
        let tuned = SearchTraining.weights(of: search, into: model)
        let quantized = try tuned.quantized(policy: policy, calibration: calibration, sequential: true)
        return Result(policy: policy, model: tuned, quantized: quantized, searched: layers, searchModel: search, history: history,
                      validationAccuracy: try quantized.accuracy(on: validation),
                      searchModelValidationAccuracy: try search.accuracy(on: validation), interrupted: interrupted,
                      seconds: Date().timeIntervalSince(start))
    }
}
