import Tensors

/// A classifier's probability head: the Softmax or LogSoftmax that turns its logits into the
/// graph's output, with the shape plumbing an exporter writes around it (before opset 13 a
/// Softmax flattens at its axis, so the importer puts Shape, Flatten and a Reshape back around
/// it; Identity and Dropout import as Identity). Engines that compute logits (the integer
/// engine) run the head in Float32 after them.
public struct ProbabilityHead: Sendable {
    /// The value the head reads: the logits.
    public let logits: String
    /// The head's nodes, in graph order.
    public let nodes: [Int]
}

extension Model {
    /// The graph's probability head, or nil when the output is not produced through a Softmax or
    /// LogSoftmax. The head is the nodes from the output back to the first value an operation
    /// other than Softmax, LogSoftmax, Shape, Flatten, Reshape or Identity makes: that value is
    /// the logits, the only one the head reads (besides constants), and nothing else reads the
    /// logits or the head's values.
    public var probabilityHead: ProbabilityHead? {
        var producer: [String: Int] = [:], consumers: [String: [Int]] = [:]
        for (i, node) in nodes.enumerated() {
            for o in node.outputs { producer[o] = i }
            for v in node.inputs where !v.isEmpty { consumers[v, default: []].append(i) }
        }
        func plumbing(_ op: Op) -> Bool {
            switch op {
            case .softmax, .logSoftmax, .shape, .flatten, .reshape, .identity: true
            default: false
            }
        }
        var head = Set<Int>(), boundary = Set<String>(), frontier = [output]
        while let v = frontier.popLast() {
            guard parameters[v] == nil, buffers[v] == nil else { continue }
            guard let p = producer[v], plumbing(nodes[p].op) else { boundary.insert(v); continue }
            if head.insert(p).inserted { frontier += nodes[p].inputs.filter { !$0.isEmpty } }
        }
        guard boundary.count == 1, let logits = boundary.first, logits != input,
              head.contains(where: { i in
                  switch nodes[i].op { case .softmax, .logSoftmax: true; default: false }
              }) else { return nil }
        // Nothing outside the head reads what it reads or makes.
        let values = head.flatMap { nodes[$0].outputs } + [logits]
        guard values.allSatisfy({ (consumers[$0] ?? []).allSatisfy(head.contains) }) else { return nil }
        return ProbabilityHead(logits: logits, nodes: head.sorted())
    }

    /// The head's output for `logits` (the value `head.logits` as the graph holds it, [N, …]).
    public func applyHead(_ head: ProbabilityHead, to logits: Tensor) throws -> Tensor {
        var values: [String: Tensor] = [head.logits: logits]
        for i in head.nodes {
            let node = nodes[i]
            let inputs = node.inputs.map { $0.isEmpty ? nil : values[$0] ?? parameters[$0] ?? buffers[$0] }
            values[node.outputs[0]] = try node.forward(inputs, training: false, keepState: false).output
        }
        guard let y = values[output] else { throw NetworkError("model '\(name)': its probability head does not make the output") }
        return y
    }
}
