import Foundation
import Network
import Tensors

/// What quantization-aware training learned, read back from a model made by
/// `learnedQuantization` (LSQ): the float graph under the learned quantizers, the policy they
/// implement, and the steps themselves — what `IntegerModel(learned:)` turns into the engine's
/// scales.
public struct LearnedSteps: Sendable {
    /// The model with its learned quantizers removed: the same nodes, weights (unquantized),
    /// batch norms and layer names, without the step parameters.
    public let model: Model
    /// For `model`: each layer's weight width (symmetric narrow range, per channel) and, where a
    /// step was learned for its input, its activation width and signedness.
    public let policy: Policy
    /// Layer name → one step per output channel: Ŵ_c = clamp(round(W_c/s_c), −q, q)·s_c.
    public let weightSteps: [String: [Float]]
    /// Layer name → its input's quantization point: x̂ = clamp(round(x/s), qmin, qmax)·s.
    public let inputPoints: [String: Policy.Activation.Point]
}

extension Model {
    /// Whether the graph holds learned quantizers (a model from `qat`).
    public var hasLearnedQuantization: Bool {
        nodes.contains { if case .learnedQuantize = $0.op { true } else { false } }
    }

    /// Splits a QAT model into its float graph, its policy and its learned steps. Throws when the
    /// model has no learned quantizers, or when one is not of the form `learnedQuantization`
    /// writes (a weight step per output channel, an input step per tensor, ranges of a width).
    public func learnedSteps() throws -> LearnedSteps {
        guard hasLearnedQuantization else {
            throw QuantizationError("model '\(name)' has no learned quantizers (qat(m, ...) makes them)")
        }
        var rename: [String: String] = [:]
        var steps = Set<String>()
        var weightSteps: [String: (step: [Float], bits: Int)] = [:]   // by weight parameter
        var inputSteps: [String: Policy.Activation.Point] = [:]       // by the quantized value's name
        var kept: [Node] = []
        for node in nodes {
            guard case .learnedQuantize(let qmin, let qmax) = node.op else { kept.append(node); continue }
            guard node.inputs.count == 2, let step = parameters[node.inputs[1]] else {
                throw QuantizationError("learned quantizer '\(node.name)': expected a value and a step parameter, found inputs \(node.inputs)")
            }
            let source = node.inputs[0]
            rename[node.outputs[0]] = source
            steps.insert(node.inputs[1])
            guard step.scalars.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw QuantizationError("learned quantizer '\(node.name)': its steps must be finite and positive; found \(step.scalars.filter { !($0.isFinite && $0 > 0) }.prefix(3).map { "\($0)" }.joined(separator: ", "))")
            }
            if let w = parameters[source] {
                guard qmin == -qmax, qmax >= 1, (qmax + 1).nonzeroBitCount == 1, step.count == w.shape[0] else {
                    throw QuantizationError("learned quantizer '\(node.name)': expected a symmetric narrow range of one step per output channel (\(w.shape[0])); found codes \(qmin)…\(qmax) with \(step.count) steps")
                }
                weightSteps[source] = (step.scalars, (qmax + 1).trailingZeroBitCount + 1)
            } else {
                let unsigned = qmin == 0
                guard step.count == 1, unsigned ? (qmax + 1).nonzeroBitCount == 1 : (qmin == -qmax && (qmax + 1).nonzeroBitCount == 1) else {
                    throw QuantizationError("learned quantizer '\(node.name)': expected one step and a range 0…2^b−1 or ±(2^(b−1)−1); found codes \(qmin)…\(qmax) with \(step.count) steps")
                }
                inputSteps[node.outputs[0]] = Policy.Activation.Point(scale: step.scalars[0], qmin: qmin, qmax: qmax, binary: false)
            }
        }
        let bare = copy()
        let renamed = kept.map { node -> Node in
            var n = node
            n.inputs = n.inputs.map { rename[$0] ?? $0 }
            return n
        }
        try bare.replaceGraph(nodes: renamed, parameters: parameterOrder.filter { !steps.contains($0) }.map { ($0, parameters[$0]!) },
                              buffers: buffers.map { ($0.key, $0.value) })
        bare.name = name
        // The policy and steps by layer: a layer's weight and input as the QAT graph fed them.
        var entries: [Policy.Entry] = []
        var byLayer: [String: [Float]] = [:], points: [String: Policy.Activation.Point] = [:]
        for (layer, qatLayer) in zip(bare.layers, layers) {
            let weight = weightSteps[layer.weight].map { Policy.Weight.reference(bits: $0.bits) }
            if let s = weightSteps[layer.weight] { byLayer[layer.name] = s.step }
            var activation: Policy.Activation? = nil
            if let p = inputSteps[nodes[qatLayer.node].inputs[0]] {
                let bits = p.qmin == 0 ? (p.qmax + 1).trailingZeroBitCount : (p.qmax + 1).trailingZeroBitCount + 1
                activation = Policy.Activation(bits: bits, sign: p.qmin == 0 ? .unsigned : .signed)
                points[layer.name] = p
            }
            entries.append(Policy.Entry(layer: layer, weight: weight, activation: activation))
        }
        return LearnedSteps(model: bare, policy: try Policy(model: bare, entries: entries), weightSteps: byLayer, inputPoints: points)
    }
}

extension IntegerModel {
    /// A layer's engine data from its learned steps: the codes training saw,
    /// clamp(round(W/s_c), ±(2^(b−1)−1)), from the unfolded weight `w`, at scale s_c·|f_c| with f_c
    /// the batch norm's fold factor γ_c/σ_c (codes negated where f_c < 0). A channel whose
    /// factor is 0 contributes nothing: its codes are 0.
    static func learnedLayer(_ w: Tensor, steps: [Float], bits: Int, factors: [Float], bias: [Float]?) -> LayerData {
        let n = w.shape[0], k = w.count / n
        let top = Float((1 << (bits - 1)) - 1)
        var codes = [Int8](repeating: 0, count: w.count)
        var scales = [Double](repeating: 0, count: n)
        for c in 0..<n {
            let s = steps[c], f = factors[c]
            scales[c] = Double(s) * abs(Double(f))
            guard scales[c] > 0 else { scales[c] = Double(s); continue }
            for i in 0..<k {
                let q = min(max((w.scalars[c * k + i] / s).rounded(.toNearestOrEven), -top), top)
                codes[c * k + i] = Int8(f < 0 ? -q : q)
            }
        }
        return LayerData(codes: codes, bits: bits, scales: scales, bias: bias, k: k, n: n)
    }
}
