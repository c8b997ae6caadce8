import Network
import Tensors

/// A mixed-precision policy: one entry per conv/linear layer of a model, in the model's order,
/// each holding the layer itself (the model's `Layer`, checked once when the policy is made),
/// its weight quantizer (`Policy.Weight`: scheme, slicing, bits — or one width per output
/// channel —, clipping, rounding) and the quantizer of the activation entering it
/// (`Policy.Activation`: bits, scheme, signedness). Either may be nil: that side stays in
/// float, explicitly. Rules such as "first and last layer at 8 bits" are the solver's pins,
/// made explicit in the entries here.
///
/// Costs (bytes, BitOps, energy) are the cost models' (MixedPrecision/CostModel.swift), which
/// read `Weight.channelWidths` and `activationBits`; every consumer — `Model.quantized(policy:)`,
/// `IntegerModel`, the solvers, the policy file — reads the entries.
public struct Policy: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public let layer: Layer
        /// nil: the weights stay Float32.
        public var weight: Weight?
        /// nil: the layer reads float activations.
        public var activation: Activation?
        public init(layer: Layer, weight: Weight?, activation: Activation? = nil) {
            self.layer = layer; self.weight = weight; self.activation = activation
        }
    }

    public private(set) var entries: [Entry]

    /// A policy for `model`: `entries` name its layers exactly, in order, and each quantizer
    /// fits its layer (bits in range, one width per output channel).
    public init(model: Model, entries: [Entry]) throws {
        let names = model.layers.map(\.name), given = entries.map(\.layer.name)
        guard names == given else {
            let missing = names.filter { !given.contains($0) }, extra = given.filter { !names.contains($0) }
            throw QuantizationError("policy: its layers are not model '\(model.name)''s" +
                                    (missing.isEmpty ? "" : "; missing \(missing.joined(separator: ", "))") +
                                    (extra.isEmpty ? "" : "; unknown \(extra.joined(separator: ", "))") +
                                    (missing.isEmpty && extra.isEmpty ? "; expected the order \(names.joined(separator: ", "))" : ""))
        }
        for (entry, layer) in zip(entries, model.layers) {
            guard entry.layer == layer else {
                throw QuantizationError("policy: layer '\(layer.name)' differs from model '\(model.name)''s (weight \(entry.layer.weightShape) vs \(layer.weightShape))")
            }
            do {
                try entry.weight?.validate(for: layer)
                try entry.activation?.validate()
            } catch let e as QuantizationError { throw QuantizationError("policy: layer '\(layer.name)': \(e.message)") }
        }
        self.entries = entries
    }

    /// The reference quantizers (`WeightQuantizer`, `ActivationQuantizer`) at the given widths:
    /// one per layer; a weight width of nil or 32 keeps that layer's weights in float, an
    /// activation width of nil keeps its input in float.
    public init(model: Model, weightBits: [Int?], activationBits: [Int?]? = nil, granularity: Granularity = .perChannel) throws {
        let n = model.layers.count
        guard weightBits.count == n else {
            throw QuantizationError("policy: expected \(n) weight bit widths (one per layer), found \(weightBits.count)")
        }
        let acts = activationBits ?? Array(repeating: nil, count: n)
        guard acts.count == n else {
            throw QuantizationError("policy: expected \(n) activation bit widths (one per layer), found \(acts.count)")
        }
        try self.init(model: model, entries: model.layers.indices.map { i in
            Entry(layer: model.layers[i],
                  weight: weightBits[i].flatMap { $0 == 32 ? nil : Weight.reference(bits: $0, granularity: granularity) },
                  activation: acts[i].map { Activation(bits: $0) })
        })
    }

    /// Every layer of `model` at the same widths.
    public static func uniform(_ model: Model, bits: Int, activationBits: Int? = nil, granularity: Granularity = .perChannel) throws -> Policy {
        try Policy(model: model, weightBits: Array(repeating: bits, count: model.layers.count),
                   activationBits: Array(repeating: activationBits, count: model.layers.count), granularity: granularity)
    }

    public var layers: [Layer] { entries.map(\.layer) }
    public var layerNames: [String] { entries.map(\.layer.name) }
    public var activationBits: [Int?] { entries.map { $0.activation?.bits } }

    /// Each layer's one weight width, 32 for a float layer; nil when some layer is kernel-wise
    /// (its channels differ), which a layer-wise table or solver cannot describe.
    public var layerWiseBits: [Int]? {
        var out: [Int] = []
        for e in entries {
            guard let w = e.weight else { out.append(32); continue }
            guard let b = w.uniformBits else { return nil }
            out.append(b)
        }
        return out
    }

    /// Whether any layer gives its output channels different widths.
    public var isKernelWise: Bool { entries.contains { $0.weight?.uniformBits == nil && $0.weight != nil } }

    /// Checks the policy was made for `model` (the same layers, in order).
    public func check(against model: Model) throws {
        guard layers == model.layers else {
            let names = model.layers.map(\.name), mine = layerNames
            let missing = names.filter { !mine.contains($0) }, extra = mine.filter { !names.contains($0) }
            throw QuantizationError("policy: its layers are not model '\(model.name)''s" +
                                    (missing.isEmpty ? "" : "; missing \(missing.joined(separator: ", "))") +
                                    (extra.isEmpty ? "" : "; unknown \(extra.joined(separator: ", "))"))
        }
    }

    /// The same policy with one layer's entry replaced (checked as at creation).
    public func replacing(_ name: String, weight: Weight??, activation: Activation?? = nil) throws -> Policy {
        guard let i = entries.firstIndex(where: { $0.layer.name == name }) else {
            throw QuantizationError("policy: no layer '\(name)'; layers are \(layerNames.joined(separator: ", "))")
        }
        var copy = self
        if let weight { copy.entries[i].weight = weight }
        if let activation { copy.entries[i].activation = activation }
        do {
            try copy.entries[i].weight?.validate(for: copy.entries[i].layer)
            try copy.entries[i].activation?.validate()
        } catch let e as QuantizationError { throw QuantizationError("policy: layer '\(name)': \(e.message)") }
        return copy
    }

    /// Parameter-weighted mean weight bits (float layers at 32).
    public var averageBits: Double {
        let total = layers.reduce(0) { $0 + $1.parameterCount }
        let bits = entries.reduce(0) { $0 + ($1.weight?.storedBits(for: $1.layer) ?? 32 * $1.layer.parameterCount) }
        return Double(bits) / Double(max(1, total))
    }
}

extension Model {
    /// The fake-quant simulation of `policy`: each layer's weights through its quantizer, and
    /// the input of each layer with an activation quantizer through it, calibrated on
    /// `calibration` (needed then). At once (the default, as the reference figures define it):
    /// every input measured on the weight-quantized model with float activations. `sequential`:
    /// layer by layer in graph order, each input measured with the quantizers before it in place,
    /// as the network will run — what quantizers whose steps follow the input's scale (HWGQ) at
    /// low widths need, one forward pass per quantized input. Biases stay FP32.
    public func quantized(policy: Policy, calibration: Tensor? = nil, sequential: Bool = false) throws -> Model {
        try policy.check(against: self)
        try checkFinite(for: "quantize", data: calibration)
        let q = copy()
        for entry in policy.entries {
            guard let w = entry.weight else { continue }
            do { q.parameters[entry.layer.weight] = try w.quantize(parameters[entry.layer.weight]!).dequantized }
            catch let e as QuantizationError { throw QuantizationError("quantize: layer '\(entry.layer.name)': \(e.message)") }
        }
        let quantizedInputs = policy.entries.filter { $0.activation != nil }
        if quantizedInputs.isEmpty { return q }
        guard let calibration else {
            throw QuantizationError("quantize: activation bits need calibration data (calibration: data.calibration)")
        }
        var points: [(Policy.Entry, Policy.Activation.Point)] = []
        if sequential {
            for entry in quantizedInputs.sorted(by: { $0.layer.node < $1.layer.node }) {
                let current = try q.insertingInputQuantizers(points)
                let node = q.nodes[entry.layer.node].name
                guard let index = current.nodes.firstIndex(where: { $0.name == node }) else {
                    throw QuantizationError("quantize: node '\(node)' of layer '\(entry.layer.name)' is missing from the quantized graph")
                }
                var stats = Policy.Activation.Statistics()
                _ = try current.run(calibration, observer: { i, inputs in
                    if i == index, let x = inputs.first ?? nil { stats.add(x) }
                })
                points.append((entry, entry.activation!.point(stats)))
            }
        } else {
            let statistics = try q.inputStatistics(of: quantizedInputs.map(\.layer), on: calibration)
            points = quantizedInputs.map { ($0, $0.activation!.point(statistics[$0.layer.name]!)) }
        }
        return try q.insertingInputQuantizers(points)
    }

    /// A copy with each entry's input quantizer in front of its layer, at the given point.
    func insertingInputQuantizers(_ points: [(Policy.Entry, Policy.Activation.Point)]) throws -> Model {
        let q = copy()
        var nodes = q.nodes
        // Insert a quantizer in front of each layer, last first so indices stay valid.
        for (entry, point) in points.sorted(by: { $0.0.layer.node > $1.0.layer.node }) {
            let layer = entry.layer, a = entry.activation!
            let input = nodes[layer.node].inputs[0]
            let quantizedName = "\(input)@a\(a.bits)\(a.scheme == .uniform || a.scheme == .binary ? "" : a.scheme.rawValue):\(layer.name)"
            let op: Op = point.binary ? .binarize(scale: point.scale)
                : .fakeQuantize(scale: point.scale, qmin: point.qmin, qmax: point.qmax)
            nodes.insert(Node(name: "/\(layer.name)/input/\(point.binary ? "Binarize" : "FakeQuantize")", op: op, inputs: [input],
                              outputs: [quantizedName]), at: layer.node)
            nodes[layer.node + 1].inputs[0] = quantizedName
        }
        try q.replaceGraph(nodes: nodes, parameters: q.parameterOrder.map { ($0, q.parameters[$0]!) },
                           buffers: q.buffers.map { ($0.key, $0.value) })
        return q
    }

    /// Min, max, mean |x| and mean x² of each layer's input over a batch (evaluation mode).
    public func inputStatistics(of layers: [Layer], on data: Tensor) throws -> [String: Policy.Activation.Statistics] {
        guard data.shape.first ?? 0 > 0 else { throw QuantizationError("calibration: the calibration data holds no images") }
        try checkFinite(for: "calibration", data: data)
        var stats: [String: Policy.Activation.Statistics] = [:]
        let byNode = Dictionary(uniqueKeysWithValues: layers.map { ($0.node, $0.name) })
        _ = try run(data, observer: { index, inputs in
            guard let name = byNode[index], let x = inputs.first ?? nil else { return }
            stats[name, default: Policy.Activation.Statistics()].add(x)
        })
        return stats
    }
}
