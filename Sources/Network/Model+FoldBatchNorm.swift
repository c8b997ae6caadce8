import Tensors

extension Model {
    /// Folds every batch norm that directly follows a conv (whose output nothing else reads)
    /// into that conv: W' = W·γ/√(σ²+ε) per output channel, b' = (b − μ)·γ/√(σ²+ε) + β.
    /// Returns a new model; this one is unchanged. The result computes the same function in
    /// evaluation mode (up to rounding) and is what HAWQ quantizes.
    public func foldingBatchNorm() throws -> Model {
        let folded = copy()
        var readers: [String: Int] = [:]
        for node in nodes { for i in node.inputs { readers[i, default: 0] += 1 } }
        var producer: [String: Int] = [:]
        for (i, node) in nodes.enumerated() { producer[node.outputs[0]] = i }
        var remove = Set<Int>()
        var params = folded.parameters
        var newNodes = nodes
        for (bi, bn) in nodes.enumerated() {
            guard case .batchNorm(let eps, _) = bn.op, let ci = producer[bn.inputs[0]],
                  case .conv = nodes[ci].op, readers[bn.inputs[0]] == 1 else { continue }
            let conv = nodes[ci]
            guard let w = parameters[conv.inputs[1]],
                  let gamma = parameters[bn.inputs[1]] ?? buffers[bn.inputs[1]],
                  let beta = parameters[bn.inputs[2]] ?? buffers[bn.inputs[2]],
                  let mean = buffers[bn.inputs[3]] ?? parameters[bn.inputs[3]],
                  let variance = buffers[bn.inputs[4]] ?? parameters[bn.inputs[4]] else { continue }
            let f = Self.foldBatchNorm(weight: w, bias: conv.inputs.count > 2 ? parameters[conv.inputs[2]] : nil,
                                       gamma: gamma, beta: beta, mean: mean, variance: variance, epsilon: eps)
            let biasName = conv.inputs.count > 2 ? conv.inputs[2] : Model.biasName(forWeight: conv.inputs[1])
            params[conv.inputs[1]] = f.weight
            params[biasName] = f.bias
            var c2 = conv
            c2.inputs = Array(conv.inputs.prefix(2)) + [biasName]
            c2.outputs = bn.outputs
            newNodes[ci] = c2
            remove.insert(bi)
        }
        let kept = newNodes.enumerated().filter { !remove.contains($0.offset) }.map(\.element)
        let used = Set(kept.flatMap(\.inputs))
        var order: [String] = []
        for name in parameterOrder where used.contains(name) {
            order.append(name)
            let bias = Model.biasName(forWeight: name)
            if params[bias] != nil && parameters[bias] == nil && used.contains(bias) { order.append(bias) }
        }
        try folded.replaceGraph(nodes: kept, parameters: order.map { ($0, params[$0]!) },
                                buffers: buffers.filter { used.contains($0.key) }.map { ($0.key, $0.value) })
        return folded
    }

    /// A conv's weight and bias with the batch norm after it folded in: W' = W·s, b' = (b − μ)·s + β
    /// per output channel, s = γ/√(σ²+ε).
    static func foldBatchNorm(weight w: Tensor, bias: Tensor?, gamma: Tensor, beta: Tensor, mean: Tensor, variance: Tensor,
                              epsilon eps: Float) -> (weight: Tensor, bias: Tensor) {
        let cout = w.shape[0], per = w.count / cout
        var wf = w.scalars
        var b = bias?.scalars ?? [Float](repeating: 0, count: cout)
        for c in 0..<cout {
            let s = gamma.scalars[c] / (variance.scalars[c] + eps).squareRoot()
            for j in 0..<per { wf[c * per + j] *= s }
            b[c] = (b[c] - mean.scalars[c]) * s + beta.scalars[c]
        }
        return (Tensor(checkedShape: w.shape, scalars: wf), Tensor(checkedShape: [cout], scalars: b))
    }

    /// Per layer, the factor folding multiplies each output channel's weights by: γ_c/√(σ²_c+ε)
    /// where a batch norm folds into the layer, 1 elsewhere (the folded weights of all-ones).
    public func batchNormFoldFactors() throws -> [String: [Float]] {
        let ones = copy()
        for l in layers { ones.parameters[l.weight] = Tensor(checkedShape: l.weightShape, scalars: [Float](repeating: 1, count: l.parameterCount)) }
        let folded = try ones.foldingBatchNorm()
        var out: [String: [Float]] = [:]
        for l in layers {
            let w = folded.parameters[l.weight]!.scalars, per = l.parameterCount / l.weightShape[0]
            out[l.name] = (0..<l.weightShape[0]).map { w[$0 * per] }
        }
        return out
    }

    static func biasName(forWeight weight: String) -> String {
        weight.hasSuffix(".weight") ? String(weight.dropLast(7)) + ".bias" : weight + ".bias"
    }
}
