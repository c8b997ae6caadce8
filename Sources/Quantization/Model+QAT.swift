import Network
import Tensors

extension Model {
    /// A model for quantization-aware training with LSQ: every conv/linear weight passes
    /// through a learned quantizer with one step per output channel (signed narrow range at
    /// `weightBits`), and with `activationBits` every layer's input through one with a single
    /// step (unsigned when the calibration data never goes below 0, else signed narrow). Steps
    /// start at LSQ's 2·mean|x|/√qmax (activations measured on `calibration`) and are
    /// parameters: `train` learns them with the weights. Evaluating it is the simulation.
    public func learnedQuantization(weightBits: Int, activationBits: Int? = nil, calibration: Tensor? = nil) throws -> Model {
        guard (2...8).contains(weightBits) else { throw QuantizationError("qat: weight bits must be in 2…8, got \(weightBits)") }
        if let a = activationBits, !(2...16).contains(a) { throw QuantizationError("qat: activation bits must be in 2…16, got \(a)") }
        let q = try learnedQuantization(policy: try Policy.uniform(self, bits: weightBits, activationBits: activationBits), calibration: calibration)
        q.name = "\(name) (LSQ W\(weightBits)\(activationBits.map { "A\($0)" } ?? ""))"
        return q
    }

    /// LSQ for a mixed policy: each layer's weights at its width (float layers stay float), each
    /// layer with activation bits reading its input through a learned step at those bits. The
    /// policy's layer-wise symmetric widths of 2…8 bits and uniform activations are what LSQ
    /// learns; kernel-wise, binary and other schemes are refused with the layer named.
    public func learnedQuantization(policy: Policy, calibration: Tensor? = nil) throws -> Model {
        try policy.check(against: self)
        for e in policy.entries {
            if let w = e.weight {
                guard let b = w.uniformBits, (2...8).contains(b), [.symmetric, .symmetricFull].contains(w.quantizer.scheme) else {
                    throw QuantizationError("qat: layer '\(e.layer.name)': LSQ learns symmetric weights of one width in 2…8 bits; its quantizer is \(w.quantizer.scheme.rawValue) at \(w.channelBits.map { "\($0.count) per-channel widths" } ?? "\(w.quantizer.bits) bits")")
                }
            }
            if let a = e.activation {
                guard a.scheme == .uniform, (2...16).contains(a.bits) else {
                    throw QuantizationError("qat: layer '\(e.layer.name)': LSQ learns uniform activations of 2…16 bits; the policy has \(a.scheme.rawValue) at \(a.bits) bits")
                }
            }
        }
        let needsCalibration = policy.entries.contains { $0.activation != nil }
        if needsCalibration && calibration == nil {
            throw QuantizationError("qat: activation bits need calibration data to start their steps (calibration: data.calibration)")
        }
        let widths = Dictionary(uniqueKeysWithValues: policy.entries.map { ($0.layer.name, ($0.weight?.uniformBits, $0.activation?.bits)) })
        var nodes = self.nodes
        var params = parameterOrder.map { ($0, parameters[$0]!) }
        // Activation statistics of each layer input: mean |x| and whether it goes below 0.
        var stats: [Int: (sum: Double, count: Int, negative: Bool)] = [:]
        if let calibration, needsCalibration {
            let byNode = Set(layers.map(\.node))
            _ = try run(calibration, observer: { index, inputs in
                guard byNode.contains(index), let x = inputs.first ?? nil else { return }
                var s = stats[index] ?? (0, 0, false)
                for v in x.scalars { s.sum += Double(abs(v)); if v < 0 { s.negative = true } }
                s.count += x.count
                stats[index] = s
            })
        }
        // Insert quantizers in front of each layer, last layer first so indices stay valid.
        for layer in layers.sorted(by: { $0.node > $1.node }) {
            guard let weightBits = widths[layer.name]!.0 else { continue }
            let activationBits = widths[layer.name]!.1
            let w = parameters[layer.weight]!
            let qmax = (1 << (weightBits - 1)) - 1
            let cout = w.shape[0], per = w.count / cout
            let steps: [Float] = (0..<cout).map { c in
                let m = w.scalars[(c * per)..<((c + 1) * per)].reduce(0) { $0 + abs($1) } / Float(per)
                return max(2 * m / Float(qmax).squareRoot(), 1e-8)
            }
            let stepName = "\(layer.name).weight_step"
            params.append((stepName, Tensor(checkedShape: [cout] + Array(repeating: 1, count: w.rank - 1), scalars: steps)))
            var inserted: [Node] = [Node(name: "/\(layer.name)/weight/LearnedQuantize", op: .learnedQuantize(qmin: -qmax, qmax: qmax),
                                         inputs: [layer.weight, stepName], outputs: ["\(layer.weight)@lsq"])]
            nodes[layer.node].inputs[1] = "\(layer.weight)@lsq"
            if let a = activationBits, let s = stats[layer.node] {
                let (lo, hi) = s.negative ? (-((1 << (a - 1)) - 1), (1 << (a - 1)) - 1) : (0, (1 << a) - 1)
                let step = max(Float(2 * s.sum / Double(max(s.count, 1))) / Float(hi).squareRoot(), 1e-8)
                let name = "\(layer.name).input_step"
                params.append((name, Tensor([step])))
                let input = nodes[layer.node].inputs[0]
                inserted.append(Node(name: "/\(layer.name)/input/LearnedQuantize", op: .learnedQuantize(qmin: lo, qmax: hi),
                                     inputs: [input, name], outputs: ["\(input)@lsq:\(layer.name)"]))
                nodes[layer.node].inputs[0] = "\(input)@lsq:\(layer.name)"
            }
            nodes.insert(contentsOf: inserted, at: layer.node)
        }
        let q = copy()
        q.name = "\(name) (LSQ, mixed)"
        try q.replaceGraph(nodes: nodes, parameters: params, buffers: buffers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        return q
    }
}
