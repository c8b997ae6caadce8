import Foundation
import Network
import Runtime
import Tensors

/// APQ's accuracy predictor (../shared/METHODS.md §4): an MLP input → 400 → 400 → 400 → 1 with
/// ReLU over the policy's encoding — one one-hot vector over the candidate widths per layer,
/// concatenated — trained on measured samples with our autograd and Adam to the accuracy
/// (standardised: the mean and spread of the training samples' accuracies are kept beside it) —
/// or, with `Options.target` `.divergence` (our addition), to −log of each sample's measured output
/// divergence, which ranks near-equal policies with less noise; its predictions are then those
/// scores (`PredictionTarget`). Ctrl-C stops training between epochs and keeps the predictor as it is.
///
/// The transfer recipe (`Transfer`): pre-train on many cheap samples — random policies scored by
/// a sensitivity table, −log Σ Ω, which needs no evaluation, or by the divergence predictor —
/// then fine-tune every weight on the few measured ones. Not yet: the pruning part of the encoding.
public struct AccuracyMLP {
    public let choices: [Int]
    public let layers: Int
    /// The joint space's architecture part: candidate keep ratios, and how many pruned layers
    /// each policy carries one of (0: bits only).
    public let keepChoices: [Double]
    public let prunedLayers: Int
    public let network: Model
    public let mean: Double, spread: Double
    /// What it predicts: accuracy, or −log output divergence.
    public let target: PredictionTarget
    /// The measured samples it was trained on and how (empty and nil for a predictor read from a
    /// file): what `refined(with:)` trains on again.
    public let samples: [PolicySamples.Sample]
    public let options: Options?
    var features: Int { prunedLayers * keepChoices.count + layers * choices.count }

    init(choices: [Int], layers: Int, keepChoices: [Double] = [], prunedLayers: Int = 0, network: Model, mean: Double, spread: Double,
         target: PredictionTarget = .accuracy, samples: [PolicySamples.Sample] = [], options: Options? = nil) {
        self.choices = choices; self.layers = layers; self.keepChoices = keepChoices; self.prunedLayers = prunedLayers
        self.network = network; self.mean = mean; self.spread = spread; self.target = target; self.samples = samples; self.options = options
    }

    public struct Options: Sendable {
        public var hidden = 400
        public var epochs = 300
        public var batchSize = 64
        public var learningRate: Float = 1e-3
        public var seed: UInt64 = 0
        /// The figure learnt from each measured sample: its accuracy, or −log its divergence
        /// (every sample must then carry one).
        public var target = PredictionTarget.accuracy
        public init() {}
    }

    /// Pre-training on cheap proxies before the measured samples: random policies scored by a
    /// sensitivity table (−log Σ Ω, no evaluation at all) or by a slower predictor (its predicted
    /// accuracy: a `DivergencePredictor`, one forward pass of its calibration images per proxy,
    /// which knows how low widths compound — the MLP then learns that from thousands of proxies
    /// instead of a few hundred measurements).
    public struct Transfer {
        public enum Source {
            case table(SensitivityTable)
            case predictor(any PolicyPredictor)
        }
        public var source: Source
        /// Random policies (each layer's width uniform over the predictor's) scored by `source`.
        public var count = 5000
        public var epochs = 30
        public var seed: UInt64 = 0
        public init(table: SensitivityTable) { source = .table(table) }
        public init(predictor: any PolicyPredictor) { source = .predictor(predictor) }

        /// The proxy samples: `count` random policies and their scores. `progress` sees (done,
        /// total) while a predictor scores them.
        public func samples(choices: [Int], layers: Int, progress: (Int, Int) -> Void = { _, _ in }) throws -> [PolicySamples.Sample] {
            guard (2...1_000_000).contains(count), epochs >= 0 else {
                throw MixedPrecisionError("predictor: expected 2…1000000 proxy samples and epochs ≥ 0, found \(count) and \(epochs)")
            }
            var rng = RandomGenerator(seed: seed)
            let policies = (0..<count).map { _ in (0..<layers).map { _ in choices[Int(rng.next() % UInt64(choices.count))] } }
            switch source {
            case .predictor(let p):
                guard p.layers == layers else { throw MixedPrecisionError("predictor: the pre-training predictor covers \(p.layers) layers, the samples \(layers)") }
                var out: [PolicySamples.Sample] = []
                // Ctrl-C here ends the call (`Interrupted`): a predictor pre-trained on part of its
                // proxies would pass for a whole one.
                for (i, bits) in policies.enumerated() {
                    try Interrupt.check()
                    out.append(PolicySamples.Sample(bits: bits, accuracy: try p.predict([bits])[0]))
                    progress(i + 1, count)
                }
                return out
            case .table(let table):
                guard table.layers.count == layers else {
                    throw MixedPrecisionError("predictor: the sensitivity table has \(table.layers.count) layers, the samples \(layers)")
                }
                guard choices.allSatisfy(table.bits.contains) else {
                    throw MixedPrecisionError("predictor: the sensitivity table lacks some of the widths \(choices) (it has \(table.bits))")
                }
                return try policies.map { bits in
                    guard let o = table.objective(bits: bits), o.isFinite, o >= 0 else {
                        throw MixedPrecisionError("predictor: the sensitivity table gives no finite objective for \(bits)")
                    }
                    return PolicySamples.Sample(bits: bits, accuracy: -log(max(o, 1e-30)))
                }
            }
        }
    }

    /// The one-hot encoding of one policy.
    public func encode(_ bits: [Int]) throws -> [Float] { try encode(Evolution.Point(bits: bits)) }

    /// The encoding of a point of the joint space: APQ's architecture part (one one-hot vector
    /// over the keep ratios per pruned layer), then the bits part (one per layer over the widths).
    public func encode(_ point: Evolution.Point) throws -> [Float] {
        try Self.encode(point, choices: choices, layers: layers, keepChoices: keepChoices, prunedLayers: prunedLayers)
    }

    static func encode(_ point: Evolution.Point, choices: [Int], layers: Int, keepChoices: [Double], prunedLayers: Int) throws -> [Float] {
        let bits = point.bits
        guard bits.count == layers else { throw MixedPrecisionError("predictor: expected \(layers) widths (one per layer), found \(bits.count)") }
        guard point.keep.count == prunedLayers else {
            throw MixedPrecisionError("predictor: expected \(prunedLayers) keep ratios (one per pruned layer), found \(point.keep.count)")
        }
        var v = [Float](repeating: 0, count: prunedLayers * keepChoices.count + layers * choices.count)
        for (l, k) in point.keep.enumerated() {
            guard let i = keepChoices.firstIndex(of: k) else {
                throw MixedPrecisionError("predictor: pruned layer \(l) keeps \(k), which the predictor was not trained on (ratios \(keepChoices))")
            }
            v[l * keepChoices.count + i] = 1
        }
        let offset = prunedLayers * keepChoices.count
        for (l, b) in bits.enumerated() {
            guard let i = choices.firstIndex(of: b) else {
                throw MixedPrecisionError("predictor: layer \(l) has \(b) bits, which the predictor was not trained on (widths \(choices))")
            }
            v[offset + l * choices.count + i] = 1
        }
        return v
    }

    /// Trains on `samples` (every policy over `choices`); with `transfer`, after pre-training on
    /// its proxy samples (the same network, Adam restarted, the targets standardised anew).
    public static func train(_ samples: [PolicySamples.Sample], choices: [Int], options: Options = Options(),
                             transfer: Transfer? = nil, progress: (Int, Int) -> Void = { _, _ in }) throws -> AccuracyMLP {
        guard let transfer else { return try train(samples, choices: choices, options: options, from: nil) }
        guard let layers = samples.first?.bits.count else { throw MixedPrecisionError("predictor: needs at least two measured policies, found 0") }
        guard samples.allSatisfy({ ($0.keep ?? []).isEmpty }) else {
            throw MixedPrecisionError("predictor: the pre-training proxies cover bits only, not pruned samples; train without pretrain")
        }
        var pre = options
        pre.epochs = transfer.epochs
        // The proxies carry their score (−log Σ Ω, or a predicted accuracy) as their accuracy; the
        // targets are standardised anew for the measured samples, so either target follows them.
        pre.target = .accuracy
        let proxy = try train(try transfer.samples(choices: choices, layers: layers, progress: progress), choices: choices, options: pre, from: nil)
        return try train(samples, choices: choices, options: options, from: proxy.network)
    }

    static func train(_ samples: [PolicySamples.Sample], choices: [Int], options: Options, from start: Model?) throws -> AccuracyMLP {
        guard samples.count >= 2, let layers = samples.first?.bits.count, layers > 0 else {
            throw MixedPrecisionError("predictor: needs at least two measured policies, found \(samples.count)")
        }
        let scores = try samples.map(options.target.score)
        guard scores.allSatisfy(\.isFinite), (1...4096).contains(options.hidden), (0...100_000).contains(options.epochs),
              options.batchSize > 0, options.learningRate > 0, options.learningRate.isFinite else {
            throw MixedPrecisionError("predictor: expected finite accuracies (or divergences), a hidden width of 1…4096, epochs 0…100000, batch > 0 and a positive finite learning rate; found hidden \(options.hidden), epochs \(options.epochs), batch \(options.batchSize), lr \(options.learningRate)")
        }
        let prunedLayers = samples[0].keep?.count ?? 0
        guard samples.allSatisfy({ ($0.keep?.count ?? 0) == prunedLayers }) else {
            throw MixedPrecisionError("predictor: every sample must carry the same number of keep ratios (the first has \(prunedLayers))")
        }
        let keepChoices = Array(Set(samples.flatMap { $0.keep ?? [] })).sorted()
        let features = prunedLayers * keepChoices.count + layers * choices.count
        let x = try samples.flatMap { try encode($0.point, choices: choices, layers: layers, keepChoices: keepChoices, prunedLayers: prunedLayers) }
        let mean = scores.reduce(0, +) / Double(samples.count)
        let spread = max((scores.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(samples.count)).squareRoot(), 1e-6)
        let targets = scores.map { Float(($0 - mean) / spread) }
        let network = try Self.network(features: features, hidden: options.hidden, seed: options.seed)
        if let start { try network.loadStateDict(start.stateDict, source: "the pre-trained predictor") }
        var state = OptimizerState(.adam())
        var rng = RandomGenerator(seed: options.seed &+ 1)
        var order = Array(0..<samples.count)
        let steps = options.epochs * ((samples.count + options.batchSize - 1) / options.batchSize)
        var step = 0
        // Ctrl-C ends training between epochs with the predictor as trained so far.
        for _ in 0..<options.epochs where !Interrupt.isRequested {
            for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            for start in stride(from: 0, to: order.count, by: options.batchSize) {
                let idx = order[start..<min(order.count, start + options.batchSize)]
                let batch = Tensor(checkedShape: [idx.count, features], scalars: idx.flatMap { x[($0 * features)..<(($0 + 1) * features)] })
                let (y, trace) = try network.run(batch, training: true, keepTrace: true)
                // Mean squared error: ∂/∂y = 2(y − t)/n.
                let dy = Tensor(checkedShape: y.shape, scalars: zip(y.scalars, idx).map { 2 * ($0 - targets[$1]) / Float(idx.count) })
                let grads = try network.gradients(trace!, outputGradient: dy)
                try state.step(network, gradients: grads, lr: Schedule.cosine(peak: options.learningRate).rate(step: step, total: steps))
                step += 1
            }
        }
        return AccuracyMLP(choices: choices, layers: layers, keepChoices: keepChoices, prunedLayers: prunedLayers, network: network, mean: mean, spread: spread,
                           target: options.target, samples: samples, options: options)
    }

    /// This predictor fine-tuned on its samples and `measured` (policies the search measured):
    /// its network the start, Adam restarted, the targets standardised anew, the options it was
    /// trained with. Our addition to APQ for search rounds (`Evolution.Options.rounds`): the
    /// search drifts to where the predictor is optimistic, and the measured finalists say by how
    /// much. A predictor read from a file has no samples and is refused.
    public func refined(with measured: [PolicySamples.Sample]) throws -> any PolicyPredictor {
        guard let options, !samples.isEmpty else {
            throw MixedPrecisionError("predictor: a predictor read from a file has no training samples to refine with; train it with predictor(samples) for search rounds")
        }
        guard measured.allSatisfy({ ($0.keep?.count ?? 0) == prunedLayers && $0.bits.count == layers }) else {
            throw MixedPrecisionError("predictor: the measured policies to refine with must have \(layers) widths and \(prunedLayers) keep ratios")
        }
        return try Self.train(samples + measured, choices: choices, options: options, from: network)
    }

    /// The MLP: features → hidden → hidden → hidden → 1, ReLU.
    static func network(features: Int, hidden: Int, seed: UInt64) throws -> Model {
        var b = GraphBuilder(seed: seed)
        var h = b.input
        var width = features
        for i in 0..<3 {
            h = b.relu(try b.linear(h, "hidden\(i + 1)", in: width, out: hidden))
            width = hidden
        }
        let out = try b.linear(h, "output", in: width, out: 1)
        return try b.model(name: "APQ accuracy predictor", output: out, inputShape: [features])
    }

    /// Writes the predictor as an .npz (atomically): the network's weights beside `apq.choices`,
    /// `apq.layers` and `apq.standardisation` (mean and spread, each split into two float32 so the
    /// doubles come back to 48 bits); `apq.target` [1] when it predicts −log divergence.
    public func save(to path: String) throws {
        func split(_ x: Double) -> [Float] { let hi = Float(x); return [hi, Float(x - Double(hi))] }
        try NPZ.write(network.stateDict + [
            ("apq.choices", Tensor(checkedShape: [choices.count], scalars: choices.map(Float.init))),
            ("apq.layers", Tensor(checkedShape: [1], scalars: [Float(layers)])),
            ("apq.standardisation", Tensor(checkedShape: [4], scalars: split(mean) + split(spread))),
        ] + (target == .accuracy ? [] : [("apq.target", Tensor(checkedShape: [1], scalars: [1]))]) + (prunedLayers == 0 ? [] : [
            ("apq.keeps", Tensor(checkedShape: [keepChoices.count], scalars: keepChoices.map(Float.init))),
            ("apq.pruned_layers", Tensor(checkedShape: [1], scalars: [Float(prunedLayers)])),
        ]), to: path)
    }

    /// Whether an .npz's arrays are a saved predictor's.
    public static func isPredictor(_ arrays: [(name: String, tensor: Tensor)]) -> Bool { arrays.contains { $0.name == "apq.choices" } }

    /// A predictor saved by `save(to:)`; anything else is refused naming what is missing.
    public static func load(_ path: String) throws -> AccuracyMLP {
        let arrays = try NPZ.read(path)
        let byName = Dictionary(arrays.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
        guard let c = byName["apq.choices"], let l = byName["apq.layers"], let st = byName["apq.standardisation"], st.count == 4, l.count == 1,
              let first = byName["hidden1.weight"], first.rank == 2 else {
            throw MixedPrecisionError("predictor: \(path) is not a saved predictor (expected apq.choices, apq.layers, apq.standardisation and the network's weights)")
        }
        let choices = c.scalars.map { Int($0) }, layers = Int(l.scalars[0])
        let keeps = byName["apq.keeps"]?.scalars.map(Double.init) ?? [], pruned = Int(byName["apq.pruned_layers"]?.scalars.first ?? 0)
        let target: PredictionTarget
        switch byName["apq.target"]?.scalars {
        case nil: target = .accuracy
        case [1]?: target = .divergence
        case let other?: throw MixedPrecisionError("predictor: \(path) names an unknown target \(other) in apq.target (expected [1]: divergence)")
        }
        guard !choices.isEmpty, choices.allSatisfy({ (1...8).contains($0) }), layers > 0, pruned >= 0, keeps.allSatisfy({ $0 > 0 && $0 <= 1 }),
              first.shape[1] == pruned * keeps.count + layers * choices.count else {
            throw MixedPrecisionError("predictor: \(path) holds inconsistent sizes (\(pruned) pruned layers × \(keeps.count) ratios + \(layers) layers × \(choices.count) widths for \(first.shape[1]) inputs)")
        }
        let network = try Self.network(features: first.shape[1], hidden: first.shape[0], seed: 0)
        do { try network.loadStateDict(arrays.filter { !$0.name.hasPrefix("apq.") }, source: path) } catch let e as NetworkError {
            throw MixedPrecisionError("predictor: \(e.message)")
        }
        let v = st.scalars.map(Double.init)
        return AccuracyMLP(choices: choices, layers: layers, keepChoices: keeps, prunedLayers: pruned, network: network, mean: v[0] + v[1], spread: v[2] + v[3], target: target)
    }

    /// Predicted scores of `policies`: accuracies, or −log divergences (`target`).
    public func predict(_ policies: [[Int]]) throws -> [Double] { try predict(points: policies.map { Evolution.Point(bits: $0) }) }

    /// Predicted scores of points of the joint space (widths and keep ratios).
    public func predict(points: [Evolution.Point]) throws -> [Double] {
        guard !points.isEmpty else { return [] }
        let x = Tensor(checkedShape: [points.count, features], scalars: try points.flatMap { try encode($0) })
        return try network.run(x).output.scalars.map { mean + spread * Double($0) }
    }

    /// Kendall's τ (τ-b: ties in either list counted as neither concordant nor discordant),
    /// Spearman's ρ (on average ranks) and the mean absolute error of `predicted` against `measured`.
    public static func agreement(predicted: [Double], measured: [Double]) -> (tau: Double, rho: Double, mae: Double) {
        let n = min(predicted.count, measured.count)
        guard n >= 2 else { return (.nan, .nan, .nan) }
        var concordant = 0.0, discordant = 0.0, tiesP = 0.0, tiesM = 0.0
        for i in 0..<n {
            for j in (i + 1)..<n {
                let a = predicted[i] - predicted[j], b = measured[i] - measured[j]
                if a == 0 && b == 0 { continue }
                if a == 0 { tiesP += 1; continue }
                if b == 0 { tiesM += 1; continue }
                if (a > 0) == (b > 0) { concordant += 1 } else { discordant += 1 }
            }
        }
        let tau = (concordant - discordant) / ((concordant + discordant + tiesP) * (concordant + discordant + tiesM)).squareRoot()
        func ranks(_ v: [Double]) -> [Double] {
            let order = v.indices.sorted { v[$0] < v[$1] }
            var r = [Double](repeating: 0, count: v.count), i = 0
            while i < order.count {
                var j = i
                while j + 1 < order.count && v[order[j + 1]] == v[order[i]] { j += 1 }
                for k in i...j { r[order[k]] = Double(i + j) / 2 + 1 }
                i = j + 1
            }
            return r
        }
        let (rp, rm) = (ranks(Array(predicted.prefix(n))), ranks(Array(measured.prefix(n))))
        let mp = rp.reduce(0, +) / Double(n), mm = rm.reduce(0, +) / Double(n)
        let cov = zip(rp, rm).reduce(0.0) { $0 + ($1.0 - mp) * ($1.1 - mm) }
        let vp = rp.reduce(0.0) { $0 + ($1 - mp) * ($1 - mp) }, vm = rm.reduce(0.0) { $0 + ($1 - mm) * ($1 - mm) }
        let mae = zip(predicted, measured).prefix(n).reduce(0.0) { $0 + abs($1.0 - $1.1) } / Double(n)
        return (tau, cov / (vp * vm).squareRoot(), mae)
    }
}
