import Foundation
import Network
import Tensors

/// The engine's two float twins, built from the BN-folded graph and the quantization points —
/// not from the engine's plan, so they check its layout, kernels, fusions and pooling.
extension IntegerModel {
    /// Each value's multipliers to a target scale, as the engine requantizes (0 for a zero scale).
    func dyadics(_ scales: [Double], to target: Double) throws -> [Dyadic] {
        try scales.map { $0 > 0 ? try Dyadic($0 / target) : Dyadic.zero }
    }

    /// Layer l's weight as the engine holds it: per-channel codes times their scales.
    func dequantizedWeight(_ l: Int) -> Tensor {
        let d = layers[l]
        return Tensor(checkedShape: folded.layers[l].weightShape, scalars: d.codes.indices.map { Float(d.codes[$0]) * Float(d.scales[$0 / d.k]) })
    }

    /// Fake quantization of real values: quantized weights (`weights`, by parameter name, from
    /// `dequantizedWeight`), the engine's Int32 bias in float, fake quantization at every point
    /// with the exact scales (rounding half to even).
    func floatSimulation(weights: [String: Tensor]) throws -> Model {
        var simNodes: [Node] = []
        var rename: [String: String] = [:]
        func fq(_ name: String, _ v: String, _ p: Point, clamp: Bool = true) -> Node {
            if p.binary { return Node(name: name, op: .binarize(scale: Float(p.scale)), inputs: [v], outputs: ["\(v)@\(name)"]) }
            return Node(name: name, op: .fakeQuantize(scale: Float(p.scale), qmin: clamp ? Int(p.qmin) : -(1 << 30), qmax: clamp ? Int(p.qmax) : 1 << 30),
                        inputs: [v], outputs: ["\(v)@\(name)"])
        }
        if let p = quantizeAt[folded.input] {
            let n = fq("input/q", folded.input, p)
            simNodes.append(n); rename[folded.input] = n.outputs[0]
        }
        var params = weights
        for (i, node) in folded.nodes.enumerated() {
            var node = node
            node.inputs = node.inputs.map { rename[$0] ?? $0 }
            if let l = layerOfNode[i], let bias = integerBias(l, inputScale: sumInputScale(l)), node.inputs.count > 2 {
                let sIn = sumInputScale(l)
                let name = node.inputs[2] + "@int32"
                params[name] = Tensor(checkedShape: [bias.count], scalars: bias.indices.map { Float(Double(bias[$0]) * (layers[l].scales[$0] * sIn)) })
                node.inputs[2] = name
            }
            if case .add = node.op, let t = addTargets[i] {
                for position in 0..<2 {
                    let b = fq("\(node.name)/branch\(position)", node.inputs[position], t, clamp: false)
                    simNodes.append(b); node.inputs[position] = b.outputs[0]
                }
            }
            simNodes.append(node)
            let out = node.outputs[0]
            if let p = gapRounding[i] {
                let r = fq("\(node.name)/round", out, p)
                simNodes.append(r); rename[out] = r.outputs[0]
            }
            if let p = quantizeAt[out] {
                let r = fq("\(node.name)/q", out, p)
                simNodes.append(r); rename[out] = r.outputs[0]
            }
        }
        return try twin("integer simulation", simNodes, output: rename[folded.output] ?? folded.output, params)
    }

    /// HAWQ-V3's simulation (its reference code's fixed-point mode): every value is carried as
    /// integers in floats — codes, or Int32-range sums with a scale per channel — so convolutions
    /// over integer codes and integer weights are exact in Float32 (sums below 2^24, which the
    /// requantization checks); the input is quantized, sums requantized and residual branches
    /// rescaled with the engine's rounding and dyadic multipliers, average pooling rounds half to
    /// even, and the logits are the final sums times their scales. Requantization happens where the
    /// graph quantizes (after ReLU and max pooling, which the engine fuses before them — they
    /// commute with a monotone requantization that keeps 0 at 0).
    func integerSimulation() throws -> Model {
        var simNodes: [Node] = []
        var rename: [String: String] = [:]
        /// Per value: the scale of its integers (one, or one per channel).
        var scales: [String: [Double]] = [:]
        var params: [String: Tensor] = [:]
        func requantize(_ name: String, _ value: String, _ r: Requantization) -> String {
            let v = rename[value] ?? value
            simNodes.append(Node(name: name, op: .requantize(r), inputs: [v], outputs: ["\(v)@\(name)"]))
            return "\(v)@\(name)"
        }
        /// A ReLU6-style clip's top still to apply to a value (in real units): the clip runs as a
        /// ReLU on the integers and its top as the clamp of the next requantization, as the
        /// engine's epilogue does.
        var pendingClip: [String: Float] = [:]
        func toCodes(_ from: [Double], _ p: Point, clip: Float? = nil) throws -> Requantization {
            if p.binary { return Requantization(.sign) }
            let d = try dyadics(from, to: p.scale)
            let hi = clip.map { Self.clipCode($0, p) } ?? p.qmax
            return Requantization(.dyadic(multipliers: d.map(\.multiplier), shifts: d.map(\.shift)), lo: Int64(p.qmin), hi: Int64(hi))
        }
        let p0 = quantizeAt[folded.input]!
        rename[folded.input] = requantize("input/q", folded.input, p0.binary ? Requantization(.sign)
                                          : Requantization(.divide(scale: p0.scale, rounding: .halfAwayFromZero), lo: Int64(p0.qmin), hi: Int64(p0.qmax)))
        scales[folded.input] = [p0.scale]
        let headNodes = self.headNodes
        for (i, node) in folded.nodes.enumerated() where !headNodes.contains(i) {
            var node = node
            let out = node.outputs[0]
            guard let x = scales[node.inputs[0]] else { throw QuantizationError("integer simulation: node '\(node.name)' reads a value with no known scale") }
            if case .binarize(let scale) = node.op {
                // Codes ±1 at the node's scale: the sign of the integers it reads.
                rename[out] = requantize(node.name, node.inputs[0], Requantization(.sign))
                scales[out] = [Double(scale)]
                continue
            }
            var quantized = false
            /// Whether the node's output is real values (a table's function), requantized by division.
            var realOutput = false
            /// Inputs read through a conversion only this node sees.
            var converted: [Int: String] = [:]
            switch node.op {
            case .conv, .gemm:
                let l = layerOfNode[i]!
                guard x.count == 1 else { throw QuantizationError("integer simulation: layer '\(node.name)' reads sums, not codes") }
                let d = layers[l]
                let codes = folded.layers[l].weight + "@codes"
                // A binary layer's sums are its dots times 2^refinement: its ±1 weights as ±2^r.
                let unit = Float(1 << refinement(l)), sIn = sumInputScale(l)
                params[codes] = Tensor(checkedShape: folded.layers[l].weightShape, scalars: d.codes.map { Float($0) * unit })
                node.inputs[1] = codes
                if let bias = integerBias(l, inputScale: sIn), node.inputs.count > 2 {
                    let name = node.inputs[2] + "@int32"
                    params[name] = Tensor(checkedShape: [bias.count], scalars: bias.map(Float.init))
                    node.inputs[2] = name
                }
                scales[out] = d.scales.map { $0 * sIn }
            case .add:
                let t = addTargets[i]!
                for position in 0..<2 {
                    let v = node.inputs[position]
                    let d = try dyadics(scales[v]!, to: t.scale)
                    converted[position] = requantize("\(node.name)/branch\(position)", v, Requantization(.dyadic(multipliers: d.map(\.multiplier), shifts: d.map(\.shift))))
                }
                scales[out] = [t.scale]
            case .pointwise:
                // Codes to real values at the input's scale; the function; the output requantized
                // by division (the engine's table holds the same arithmetic).
                guard let (pin, _) = lookups[i] else { throw QuantizationError("integer simulation: node '\(node.name)' has no table") }
                converted[0] = requantize("\(node.name)/real", node.inputs[0], Requantization(.multiply(scales: [pin.scale])))
                realOutput = true
            case .concat:
                // Each input requantized to the output's point, as the engine writes the codes.
                let p = quantizeAt[out]!
                for (position, v) in node.inputs.enumerated() {
                    guard let sv = scales[v] else { throw QuantizationError("integer simulation: node '\(node.name)' reads a value with no known scale") }
                    converted[position] = requantize("\(node.name)/input\(position)", v, try toCodes(sv, p, clip: pendingClip[v]))
                }
                quantized = true
                scales[out] = [p.scale]
            case .globalAveragePool, .averagePool:
                scales[out] = x
            case .clip(let lo, let hi):
                guard lo == 0 else { throw QuantizationError("integer simulation: node '\(node.name)' clips below at \(lo); only [0, max] clips run") }
                node.op = .relu
                pendingClip[out] = min(hi, pendingClip[node.inputs[0]] ?? hi)
                scales[out] = x
            case .flatten, .reshape:
                pendingClip[out] = pendingClip[node.inputs[0]]
                // Requantizing commutes with flattening; per-channel sums are requantized first.
                if x.count > 1, let p = quantizeAt[out] {
                    converted[0] = requantize("\(node.name)/q", node.inputs[0], try toCodes(x, p, clip: pendingClip[out]))
                    quantized = true
                    scales[out] = [p.scale]
                } else {
                    scales[out] = x
                }
            case .relu, .maxPool, .identity:
                pendingClip[out] = pendingClip[node.inputs[0]]
                scales[out] = x
            default:
                scales[out] = x
            }
            node.inputs = node.inputs.enumerated().map { converted[$0] ?? rename[$1] ?? $1 }
            simNodes.append(node)
            if let p = gapRounding[i] {
                rename[out] = requantize("\(node.name)/round", out, Requantization(.divide(scale: 1, rounding: .halfToEven), lo: Int64(p.qmin), hi: Int64(p.qmax)))
            }
            if realOutput, let p = quantizeAt[out] {
                rename[out] = requantize("\(node.name)/q", out, Requantization(.divide(scale: p.scale, rounding: .halfToEven), lo: Int64(p.qmin), hi: Int64(p.qmax)))
                scales[out] = [p.scale]
            } else if let p = quantizeAt[out], !quantized {
                rename[out] = requantize("\(node.name)/q", out, try toCodes(scales[out]!, p, clip: pendingClip[out]))
                scales[out] = [p.scale]
            }
        }
        let real = requantize("output/real", logits, Requantization(.multiply(scales: scales[logits]!)))
        // The head (a trailing Softmax) on the real logits, as the engine runs it.
        for i in head?.nodes ?? [] {
            var node = folded.nodes[i]
            node.inputs = node.inputs.map { $0 == logits ? real : $0 }
            simNodes.append(node)
        }
        return try twin("dyadic simulation", simNodes, output: head == nil ? real : folded.output, params)
    }

    /// A model over the folded graph's input with `params` replacing or joining its parameters.
    private func twin(_ kind: String, _ nodes: [Node], output: String, _ params: [String: Tensor]) throws -> Model {
        let used = Set(nodes.flatMap(\.inputs))
        var list = folded.parameterOrder.filter { used.contains($0) }.map { ($0, params[$0] ?? folded.parameters[$0]!) }
        list += params.keys.sorted().filter { folded.parameters[$0] == nil }.map { ($0, params[$0]!) }
        return try Model(name: "\(folded.name) (\(kind))", nodes: nodes, input: folded.input, output: output,
                         inputShape: folded.inputShape, parameters: list,
                         buffers: folded.buffers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
    }
}
