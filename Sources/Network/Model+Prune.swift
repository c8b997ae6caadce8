import Foundation
import Tensors

/// Channel pruning (APQ's width dimension, ../shared/METHODS.md §4): a layer keeps the output
/// channels of largest L1 norm; the batch norm after it and the one layer that reads it lose the
/// same channels. Only a layer whose output reaches exactly one layer of its kind (or, flattened,
/// one linear layer) through at most a batch norm, one-input activations and pooling can be pruned alone — a residual branch's last layer
/// or a shortcut (whose channels an addition shares) cannot, so residual blocks stay consistent.
extension Model {
    /// How one layer's output travels to the layer that reads it.
    struct PruningChain {
        var layer: Int
        var batchNorm: Int?
        var reader: Int
    }

    /// The chain from layer `index`'s output to its one reader, or why there is none.
    func pruningChain(_ index: Int) -> Result<PruningChain, NetworkError> {
        let layer = layers[index]
        let conv = nodes[layer.node]
        func consumers(_ value: String) -> [Int] { nodes.indices.filter { nodes[$0].inputs.contains(value) } }
        guard layer.groups == 1 else { return .failure(NetworkError("prune: layer '\(layer.name)' is a grouped convolution")) }
        var value = conv.outputs[0], batchNorm: Int? = nil
        for _ in 0..<6 {
            if value == output { return .failure(NetworkError("prune: layer '\(layer.name)' gives the model's output")) }
            let next = consumers(value)
            guard next.count == 1 else {
                return .failure(NetworkError("prune: layer '\(layer.name)''s output is read by \(next.count) nodes (\(next.map { "'\(nodes[$0].name)' (\(nodes[$0].op.onnxName))" }.joined(separator: ", "))), which would have to lose the same channels"))
            }
            let n = nodes[next[0]]
            switch n.op {
            case .batchNorm where batchNorm == nil && n.inputs[0] == value:
                batchNorm = next[0]; value = n.outputs[0]
            case .relu, .clip, .pointwise, .maxPool, .averagePool, .globalAveragePool:
                value = n.outputs[0]
            case .flatten(axis: 1):
                // A linear layer reading the flattened channels: each channel a block of its features.
                let after = consumers(n.outputs[0])
                if after.count == 1, nodes[after[0]].inputs[0] == n.outputs[0],
                   let reader = layers.firstIndex(where: { $0.node == after[0] && $0.kind == .linear }) {
                    return .success(PruningChain(layer: index, batchNorm: batchNorm, reader: reader))
                }
                return .failure(NetworkError("prune: layer '\(layer.name)''s flattened output is not read by one linear layer alone"))
            default:
                if let reader = layers.firstIndex(where: { $0.node == next[0] }), layers[reader].groups == 1, n.inputs[0] == value,
                   layers[reader].kind == layer.kind {
                    return .success(PruningChain(layer: index, batchNorm: batchNorm, reader: reader))
                }
                return .failure(NetworkError("prune: layer '\(layer.name)''s output reaches node '\(n.name)' (\(n.op.onnxName)), not one layer of its kind"))
            }
        }
        return .failure(NetworkError("prune: layer '\(layer.name)''s output does not reach a layer within a batch norm, activations and pooling"))
    }

    /// The layer that reads layer `index`'s pruned channels (its next conv, or the linear layer
    /// reading them flattened); nil when the layer cannot be pruned alone.
    public func pruningReader(_ index: Int) -> Int? {
        if case .success(let chain) = pruningChain(index) { return chain.reader }
        return nil
    }

    /// How many output channels a keep ratio leaves a layer of `channels`: round(ratio × channels),
    /// at least one — the count `pruned(keep:)` keeps.
    public static func channelsKept(_ channels: Int, ratio: Double) -> Int { max(1, min(channels, Int((ratio * Double(channels)).rounded()))) }

    /// The layers whose output channels can be pruned alone.
    public var prunableLayers: [String] {
        layers.indices.compactMap { if case .success = pruningChain($0) { return layers[$0].name }; return nil }
    }

    /// The output channels of `layer` that pruning to `keep` of them retains: the largest L1 norms,
    /// in their original order (ties: the earlier channel).
    public func channelsKept(_ layer: Layer, keep: Int) throws -> [Int] {
        guard let w = parameters[layer.weight] else { throw NetworkError("prune: layer '\(layer.name)' has no weight") }
        let cout = layer.weightShape[0], per = w.count / max(1, cout)
        let norms: [Float] = (0..<cout).map { c in w.scalars[(c * per)..<((c + 1) * per)].reduce(0) { $0 + abs($1) } }
        guard norms.allSatisfy(\.isFinite) else { throw NetworkError("prune: layer '\(layer.name)' has NaN or infinite weights") }
        return Array((0..<cout).sorted { (norms[$0], -$0) > (norms[$1], -$1) }.prefix(keep)).sorted()
    }

    /// A copy with each named layer keeping round(ratio × channels) of its output channels (at
    /// least one), chosen by L1 norm; its batch norm and its reader pruned to match. Ratios in
    /// (0, 1]; a layer that cannot be pruned alone is an error naming what reads it.
    public func pruned(keep ratios: [String: Double]) throws -> Model {
        var chains: [(chain: PruningChain, keep: [Int])] = []
        for (name, ratio) in ratios.sorted(by: { $0.key < $1.key }) {
            guard let index = layers.firstIndex(where: { $0.name == name }) else {
                throw NetworkError("prune: no layer named '\(name)'; prunable layers are \(prunableLayers.joined(separator: ", "))")
            }
            guard ratio.isFinite, ratio > 0, ratio <= 1 else { throw NetworkError("prune: keep ratios must lie in (0, 1], found \(ratio) for '\(name)'") }
            let chain = try pruningChain(index).get()
            let cout = layers[index].weightShape[0]
            chains.append((chain, try channelsKept(layers[index], keep: Model.channelsKept(cout, ratio: ratio))))
        }
        var parameters = self.parameterOrder.map { ($0, self.parameters[$0]!) }
        var buffers = self.buffers
        func slice(_ t: Tensor, axis: Int, _ keep: [Int]) -> Tensor {
            let outer = t.shape[..<axis].reduce(1, *), inner = t.shape[(axis + 1)...].reduce(1, *), n = t.shape[axis]
            var scalars: [Float] = []
            scalars.reserveCapacity(outer * keep.count * inner)
            for o in 0..<outer { for k in keep { scalars += t.scalars[((o * n + k) * inner)..<((o * n + k + 1) * inner)] } }
            var shape = t.shape
            shape[axis] = keep.count
            return Tensor(checkedShape: shape, scalars: scalars)
        }
        func update(_ name: String, axis: Int, _ keep: [Int]) {
            if let i = parameters.firstIndex(where: { $0.0 == name }) { parameters[i].1 = slice(parameters[i].1, axis: axis, keep) }
            else if let b = buffers[name] { buffers[name] = slice(b, axis: axis, keep) }
        }
        for (chain, keep) in chains {
            let layer = layers[chain.layer]
            update(layer.weight, axis: 0, keep)
            if let bias = layer.bias { update(bias, axis: 0, keep) }
            if let bn = chain.batchNorm { for name in nodes[bn].inputs.dropFirst() { update(name, axis: 0, keep) } }
            let reader = layers[chain.reader]
            if reader.kind == .linear && layer.kind == .conv {
                // Flattened [C, H, W]: channel c is features c·HW ..< (c + 1)·HW.
                let spatial = reader.weightShape[1] / layer.weightShape[0]
                update(reader.weight, axis: 1, keep.flatMap { c in (c * spatial)..<((c + 1) * spatial) })
            } else {
                update(reader.weight, axis: 1, keep)
            }
        }
        let m = copy()
        try m.replaceGraph(nodes: nodes, parameters: parameters, buffers: buffers.sorted { $0.key < $1.key })
        return m
    }
}

extension Layer {
    /// This layer's shape as pruning leaves it (for cost models, without touching weights):
    /// `outputs` of its output channels and `inputs` of its input features, MACs scaled alike.
    public func keeping(outputs: Int? = nil, inputs: Int? = nil) -> Layer {
        var l = self
        if let outputs, weightShape[0] > 0 {
            l.macs = l.macs / weightShape[0] * outputs
            l.weightShape[0] = outputs
        }
        if let inputs, weightShape.count > 1, weightShape[1] > 0 {
            l.macs = l.macs / weightShape[1] * inputs
            l.weightShape[1] = inputs
        }
        return l
    }
}
