import Foundation
import Tensors

/// XNOR-Net's weight binarization for training (Rastegari et al., 2016; ../shared/METHODS.md §8):
/// Ŵ = α_c·sign(W) per output channel c (dimension 0), α_c = mean|W_c|, sign(0) = +1.
/// Backward, the derivative of α_c·sign(W) with sign's clipped straight-through estimator
/// (∂sign(w)/∂w = 1 where |w| ≤ 1): ∂L/∂W_i = α_c·g_i·[|W_i| ≤ 1] + sign(W_i)/n·Σ_j g_j·sign(W_j),
/// n the channel's weights. A channel of zeros has α = 0 and binarizes to 0 (a defined result);
/// non-finite weights are an error naming the channel.
enum BinaryWeightsOp {
    static func forward(_ w: Tensor, node: String) throws -> Tensor {
        guard w.rank >= 1, w.shape[0] > 0 else { throw NetworkError("node '\(node)' (BinaryWeights): expected a weight with output channels, found shape \(w.shape)") }
        let channels = w.shape[0], n = w.count / channels
        var out = [Float](repeating: 0, count: w.count)
        try w.withUnsafeScalars { v in
            for c in 0..<channels {
                let range = (c * n)..<((c + 1) * n)
                var sum: Float = 0
                for i in range { sum += abs(v[i]) }
                guard sum.isFinite else { throw NetworkError("node '\(node)' (BinaryWeights): output channel \(c) holds non-finite weights") }
                let alpha = n > 0 ? sum / Float(n) : 0
                for i in range { out[i] = v[i] >= 0 ? alpha : -alpha }
            }
        }
        return Tensor(checkedShape: w.shape, scalars: out)
    }

    static func backward(_ w: Tensor, _ dy: Tensor) -> Tensor {
        let channels = max(w.shape.first ?? 1, 1), n = w.count / channels
        var dw = [Float](repeating: 0, count: w.count)
        w.withUnsafeScalars { v in
            dy.withUnsafeScalars { g in
                for c in 0..<channels {
                    let range = (c * n)..<((c + 1) * n)
                    var sum: Float = 0, signed: Float = 0
                    for i in range { sum += abs(v[i]); signed += v[i] >= 0 ? g[i] : -g[i] }
                    let alpha = n > 0 ? sum / Float(n) : 0, mean = n > 0 ? signed / Float(n) : 0
                    for i in range {
                        dw[i] = (abs(v[i]) <= 1 ? alpha * g[i] : 0) + (v[i] >= 0 ? mean : -mean)
                    }
                }
            }
        }
        return Tensor(checkedShape: w.shape, scalars: dw)
    }
}

extension Model {
    /// This model with every `binaryWeights` node that feeds a layer's weight computed once: the
    /// layer reads α_c·sign(W) as a plain parameter (under the weight's name) and the node is gone,
    /// so the function is the same and folding and quantizing see the weight the layer multiplies.
    /// Also the names of the layers whose weights were binarized.
    public func bakingBinaryWeights() throws -> (model: Model, layers: [String]) {
        let binarizing = nodes.filter { $0.op == .binaryWeights }
        guard !binarizing.isEmpty else { return (self, []) }
        var params = parameters
        var rename: [String: String] = [:]
        for n in binarizing {
            guard let w = parameters[n.inputs[0]] else { throw NetworkError("node '\(n.name)' (BinaryWeights) reads '\(n.inputs[0])', which is not a parameter") }
            params[n.inputs[0]] = try BinaryWeightsOp.forward(w, node: n.name)
            rename[n.outputs[0]] = n.inputs[0]
        }
        let kept = nodes.filter { $0.op != .binaryWeights }.map { n -> Node in
            var n = n; n.inputs = n.inputs.map { rename[$0] ?? $0 }; return n
        }
        let m = copy()
        try m.replaceGraph(nodes: kept, parameters: parameterOrder.map { ($0, params[$0]!) },
                           buffers: buffers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        let baked = Set(binarizing.map { $0.inputs[0] })
        return (m, layers.filter { baked.contains($0.weight) }.map(\.name))
    }
}

extension Model {
    /// The real-valued skeleton of a binary network: binary weights computed once
    /// (`bakingBinaryWeights`) and every sign (`binarize`) gone, its readers reading its input —
    /// the same layers and shapes, for what needs only those (timing the layers at other widths).
    public func strippingBinarization() throws -> Model {
        let baked = try bakingBinaryWeights().model
        func isSign(_ n: Node) -> Bool { if case .binarize = n.op { return n.outputs[0] != output }; return false }
        guard baked.nodes.contains(where: isSign) else { return baked }
        var rename: [String: String] = [:]
        for n in baked.nodes where isSign(n) { rename[n.outputs[0]] = rename[n.inputs[0]] ?? n.inputs[0] }
        let m = baked.copy()
        try m.replaceGraph(nodes: baked.nodes.filter { !isSign($0) }.map { n in
            var r = n; r.inputs = n.inputs.map { rename[$0] ?? $0 }; return r
        }, parameters: baked.parameterOrder.map { ($0, baked.parameters[$0]!) },
           buffers: baked.buffers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        return m
    }
}
