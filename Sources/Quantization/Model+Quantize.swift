import Network
import Tensors

/// Bits for one layer: weights, and the activation entering it (nil: float).
public struct LayerBits: Sendable, Equatable {
    public var weight: Int
    public var activation: Int?
    public init(weight: Int, activation: Int? = nil) { self.weight = weight; self.activation = activation }
}

extension Model {
    /// The same network with every conv/linear weight replaced by its quantized value
    /// (simulated quantization: weights stay Float32 but take only 2^b values per channel).
    /// With `activationBits`, the input of every conv/linear layer (including the image fed to
    /// the first) is quantized per tensor, calibrated by min/max over `calibration` on the
    /// weight-quantized model, as the reference figures define. Biases stay FP32.
    public func quantized(weightBits: Int, granularity: Granularity = .perChannel, activationBits: Int? = nil,
                          calibration: Tensor? = nil) throws -> Model {
        try quantized(bits: Dictionary(uniqueKeysWithValues: layers.map { ($0.name, LayerBits(weight: weightBits, activation: activationBits)) }),
                      granularity: granularity, calibration: calibration)
    }

    /// Per-layer bits; layers missing from `bits` stay in float.
    public func quantized(bits: [String: LayerBits], granularity: Granularity = .perChannel,
                          calibration: Tensor? = nil) throws -> Model {
        let unknown = bits.keys.filter { name in !layers.contains { $0.name == name } }
        guard unknown.isEmpty else {
            throw NetworkError("quantize: no layer named \(unknown.sorted().map { "'\($0)'" }.joined(separator: ", ")) in model '\(name)'; layers are \(layers.map(\.name).joined(separator: ", "))")
        }
        try checkFinite(for: "quantize", data: calibration)
        let q = copy()
        for layer in layers {
            guard let b = bits[layer.name] else { continue }
            do {
                q.parameters[layer.weight] = try WeightQuantizer.quantize(parameters[layer.weight]!, bits: b.weight, granularity: granularity)
            } catch { throw NetworkError("quantize: layer '\(layer.name)': \(error)") }
        }
        let quantizedInputs = layers.filter { bits[$0.name]?.activation != nil }
        if quantizedInputs.isEmpty { return q }
        guard let calibration else {
            throw NetworkError("quantize: activation bits need calibration data (calibration: data.calibration)")
        }
        let ranges = try q.inputRanges(of: quantizedInputs, on: calibration)
        var nodes = q.nodes
        // Insert a quantizer in front of each layer, last first so indices stay valid.
        for layer in quantizedInputs.sorted(by: { $0.node > $1.node }) {
            let a = bits[layer.name]!.activation!
            guard (1...16).contains(a) else { throw NetworkError("quantize: activation bits must be in 1…16, got \(a) for '\(layer.name)'") }
            let r = ranges[layer.name]!
            let input = nodes[layer.node].inputs[0]
            if a == 1 {
                // Binary activations (XNOR-Net): β·sign(x), β the mean |x| on the calibration data.
                let binarized = "\(input)@a1:\(layer.name)"
                nodes.insert(Node(name: "/\(layer.name)/input/Binarize", op: .binarize(scale: r.meanAbs), inputs: [input], outputs: [binarized]),
                             at: layer.node)
                nodes[layer.node + 1].inputs[0] = binarized
                continue
            }
            let aq = ActivationQuantizer(low: r.low, high: r.high, bits: a)
            let (qmin, qmax) = aq.codeRange
            let quantizedName = "\(input)@a\(a):\(layer.name)"
            nodes.insert(Node(name: "/\(layer.name)/input/FakeQuantize", op: .fakeQuantize(scale: aq.scale, qmin: qmin, qmax: qmax),
                              inputs: [input], outputs: [quantizedName]), at: layer.node)
            nodes[layer.node + 1].inputs[0] = quantizedName
        }
        try q.replaceGraph(nodes: nodes, parameters: q.parameterOrder.map { ($0, q.parameters[$0]!) },
                           buffers: q.buffers.map { ($0.key, $0.value) })
        return q
    }

    /// Min, max and mean |x| of each layer's input over a batch (evaluation mode).
    public func inputRanges(of layers: [Layer], on data: Tensor) throws -> [String: (low: Float, high: Float, meanAbs: Float)] {
        guard data.shape.first ?? 0 > 0 else { throw NetworkError("calibration: the calibration data holds no images") }
        try checkFinite(for: "calibration", data: data)
        var ranges: [String: (low: Float, high: Float, sumAbs: Double, count: Int)] = [:]
        let byNode = Dictionary(uniqueKeysWithValues: layers.map { ($0.node, $0.name) })
        _ = try run(data, observer: { index, inputs in
            guard let name = byNode[index], let x = inputs.first ?? nil else { return }
            let old = ranges[name] ?? (low: .infinity, high: -.infinity, sumAbs: 0, count: 0)
            ranges[name] = (min(old.low, x.min()), max(old.high, x.max()), old.sumAbs + x.scalars.reduce(0.0) { $0 + Double(abs($1)) },
                            old.count + x.count)
        })
        return ranges.mapValues { ($0.low, $0.high, Float($0.sumAbs / Double(max($0.count, 1)))) }
    }
}
