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
        if activationBits != nil && calibration == nil {
            throw QuantizationError("qat: activation bits need calibration data to start their steps (calibration: data.calibration)")
        }
        var nodes = self.nodes
        var params = parameterOrder.map { ($0, parameters[$0]!) }
        // Activation statistics of each layer input: mean |x| and whether it goes below 0.
        var stats: [Int: (sum: Double, count: Int, negative: Bool)] = [:]
        if let calibration, activationBits != nil {
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
        q.name = "\(name) (LSQ W\(weightBits)\(activationBits.map { "A\($0)" } ?? ""))"
        try q.replaceGraph(nodes: nodes, parameters: params, buffers: buffers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        return q
    }
}
