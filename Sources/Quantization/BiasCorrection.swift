import Network
import Tensors

/// Bias correction (Nagel et al., "Data-free quantization", §4.2, in its empirical form, as
/// Sony MCT applies it): quantizing a layer's weights by ΔW = Ŵ − W shifts the mean of each
/// output channel c by δ_c = Σ ΔW[c, ·]·E[patch], E[patch] the mean input patch the layer sees
/// (per input channel and kernel tap, over every output position and calibration image,
/// padding included — so border taps count their zeros). The shift is removed where the
/// layer's output is next shifted anyway: from its bias, or, when a batch norm reads it, from
/// that norm's running mean (μ' = μ + δ); a layer with neither gets a bias.
public enum BiasCorrection {
    /// Per output channel of each layer, the shift δ that quantizing `original`'s weights into
    /// `quantized`'s causes, the mean patches measured on `calibration` run through `original`.
    public static func shifts(original: Model, quantized: Model, calibration: Tensor) throws -> [String: [Double]] {
        try shifts(original: original, quantized: quantized, patches: try meanPatches(original, calibration: calibration))
    }

    /// Each layer's mean input patch on `calibration` run through `original` — what every policy's
    /// correction of this model shares, so a search measures it once.
    public static func meanPatches(_ original: Model, calibration: Tensor) throws -> [String: [Double]] {
        guard calibration.shape.first ?? 0 > 0 else { throw QuantizationError("bias correction: the calibration data holds no images") }
        try original.checkFinite(for: "bias correction", data: calibration)
        let byNode = Dictionary(uniqueKeysWithValues: original.layers.map { ($0.node, $0) })
        var patches: [String: [Double]] = [:]
        var failure: Error? = nil
        _ = try original.run(calibration, observer: { index, inputs in
            guard let layer = byNode[index], let x = inputs.first ?? nil, failure == nil else { return }
            do { patches[layer.name] = try meanPatch(x, layer: layer, node: original.nodes[index]) } catch { failure = error }
        })
        if let failure { throw failure }
        return patches
    }

    /// The shifts from mean patches measured before (`meanPatches`).
    public static func shifts(original: Model, quantized: Model, patches: [String: [Double]]) throws -> [String: [Double]] {
        var out: [String: [Double]] = [:]
        for layer in original.layers {
            guard let patch = patches[layer.name] else { continue }
            let w = original.parameters[layer.weight]!, q = quantized.parameters[layer.weight]!
            guard q.shape == w.shape else { throw QuantizationError("bias correction: layer '\(layer.name)' has another weight shape in the quantized model") }
            let channels = w.shape[0], per = w.count / channels
            let groups = layer.groups, perGroup = patch.count / max(1, groups)
            out[layer.name] = (0..<channels).map { c in
                let g = c / max(1, channels / groups), base = g * perGroup
                var d = 0.0
                for i in 0..<per { d += (Double(q.scalars[c * per + i]) - Double(w.scalars[c * per + i])) * patch[base + i] }
                return d
            }
        }
        return out
    }

    /// E[patch] of a layer's input: for a conv, one value per (input channel, tap) — the mean of
    /// the padded input at that tap's offset over all output positions; for a linear layer, the
    /// mean of each input feature.
    static func meanPatch(_ x: Tensor, layer: Layer, node: Node) throws -> [Double] {
        let n = x.shape[0]
        switch node.op {
        case .conv(let a):
            guard x.rank == 4 else { throw QuantizationError("bias correction: layer '\(layer.name)' reads a tensor of shape \(x.shape)") }
            let (c, h, w) = (x.shape[1], x.shape[2], x.shape[3])
            let (kh, kw) = (layer.weightShape[2], layer.weightShape[3])
            let oh = (h + a.pads[0] + a.pads[2] - a.dilations[0] * (kh - 1) - 1) / a.strides[0] + 1
            let ow = (w + a.pads[1] + a.pads[3] - a.dilations[1] * (kw - 1) - 1) / a.strides[1] + 1
            guard oh > 0, ow > 0 else { throw QuantizationError("bias correction: layer '\(layer.name)' has no output positions") }
            // For each tap, the input rows and columns it reads over all output positions.
            var out = [Double](repeating: 0, count: c * kh * kw)
            x.withUnsafeScalars { p in
                for ch in 0..<c {
                    for ky in 0..<kh {
                        let rows = (0..<oh).map { $0 * a.strides[0] + ky * a.dilations[0] - a.pads[0] }.filter { $0 >= 0 && $0 < h }
                        for kx in 0..<kw {
                            let cols = (0..<ow).map { $0 * a.strides[1] + kx * a.dilations[1] - a.pads[1] }.filter { $0 >= 0 && $0 < w }
                            var s = 0.0
                            for img in 0..<n {
                                let base = (img * c + ch) * h * w
                                for r in rows { for q in cols { s += Double(p[base + r * w + q]) } }
                            }
                            out[(ch * kh + ky) * kw + kx] = s / Double(n * oh * ow)
                        }
                    }
                }
            }
            return out
        case .gemm(let a) where !a.transA && a.transB:
            let k = x.count / max(1, n)
            var out = [Double](repeating: 0, count: k)
            x.withUnsafeScalars { p in
                for img in 0..<n { for i in 0..<k { out[i] += Double(p[img * k + i]) } }
            }
            return out.map { $0 / Double(n) }
        default:
            throw QuantizationError("bias correction: layer '\(layer.name)' (\(node.op.onnxName)) is not a convolution or a Gemm with transposed weights")
        }
    }

    /// `quantized` with each layer's shift removed (see the type's note).
    public static func apply(_ shifts: [String: [Double]], to quantized: Model) throws -> Model {
        let q = quantized.copy()
        var nodes = q.nodes, parameters = q.parameterOrder.map { ($0, q.parameters[$0]!) }
        var buffers = q.buffers
        for layer in q.layers {
            guard let delta = shifts[layer.name] else { continue }
            let out = nodes[layer.node].outputs[0]
            let readers = nodes.indices.filter { nodes[$0].inputs.contains(out) }
            if readers.count == 1, case .batchNorm = nodes[readers[0]].op, nodes[readers[0]].inputs.count == 5,
               let mean = buffers[nodes[readers[0]].inputs[3]], mean.count == delta.count {
                buffers[nodes[readers[0]].inputs[3]] = Tensor(checkedShape: mean.shape, scalars: mean.scalars.indices.map { mean.scalars[$0] + Float(delta[$0]) })
            } else if let biasName = layer.bias, let i = parameters.firstIndex(where: { $0.0 == biasName }) {
                let b = parameters[i].1
                parameters[i].1 = Tensor(checkedShape: b.shape, scalars: b.scalars.indices.map { b.scalars[$0] - Float(delta[$0]) })
            } else {
                let name = "\(layer.name).corrected_bias"
                parameters.append((name, Tensor(checkedShape: [delta.count], scalars: delta.map { Float(-$0) })))
                nodes[layer.node].inputs = Array(nodes[layer.node].inputs.prefix(2)) + [name]
            }
        }
        try q.replaceGraph(nodes: nodes, parameters: parameters, buffers: buffers.map { ($0.key, $0.value) })
        return q
    }
}

extension Model {
    /// This model with the output shifts `policy`'s weight quantizers cause (measured on
    /// `calibration`) taken out of its biases and batch norms; its weights stay float. Quantize it
    /// with `policy.moved(to:)` — by simulation or in the integer engine.
    public func biasCorrected(for policy: Policy, calibration: Tensor) throws -> Model {
        try policy.checkCalibration(calibration, for: "bias correction")
        return try biasCorrected(for: policy, patches: try BiasCorrection.meanPatches(self, calibration: calibration))
    }

    /// The same, from mean patches measured before (`BiasCorrection.meanPatches`): many policies
    /// of one model share them.
    public func biasCorrected(for policy: Policy, patches: [String: [Double]]) throws -> Model {
        let weightsOnly = try quantized(policy: try policy.weightsOnly(), calibration: nil)
        return try BiasCorrection.apply(try BiasCorrection.shifts(original: self, quantized: weightsOnly, patches: patches), to: self)
    }

    /// The fake-quant simulation of `policy`, with bias correction when asked (see `BiasCorrection`);
    /// `calibration` measures the shifts and calibrates the activations the policy quantizes.
    /// With `rounding`, AdaRound's learned rounding first (see `AdaRound`).
    public func quantized(policy: Policy, calibration: Tensor, biasCorrection: Bool, rounding: AdaRound? = nil,
                          progress: ((Int, Int) -> Void)? = nil) throws -> Model {
        let c = try corrected(for: policy, calibration: calibration, biasCorrection: biasCorrection, rounding: rounding, progress: progress)
        return try c.model.quantized(policy: c.policy, calibration: calibration)
    }
}

extension Policy {
    /// Corrections estimate one shift (and AdaRound one rounding) per output channel from the
    /// calibration images: fewer images than the widest quantized layer has output channels
    /// is refused, as are no images at all.
    public func checkCalibration(_ calibration: Tensor, for what: String) throws {
        let images = calibration.rank >= 1 ? calibration.shape[0] : 0
        guard images > 0 else { throw QuantizationError("\(what): the calibration data holds no images") }
        guard let widest = entries.filter({ $0.weight != nil }).max(by: { $0.layer.weightShape[0] < $1.layer.weightShape[0] }) else { return }
        let channels = widest.layer.weightShape[0]
        guard images >= channels else {
            throw QuantizationError("\(what): expected at least \(channels) calibration images (layer '\(widest.layer.name)' has \(channels) output channels, each estimated from them), found \(images)")
        }
    }

    /// The same entries for another model with the same layers by name (a bias-corrected copy,
    /// whose layers may have gained a bias).
    public func moved(to model: Model) throws -> Policy {
        guard model.layers.map(\.name) == layerNames else { throw QuantizationError("policy: model '\(model.name)' has other layers") }
        return try Policy(model: model, entries: zip(model.layers, entries).map { Entry(layer: $0, weight: $1.weight, activation: $1.activation) })
    }

    /// The same weight quantizers, every activation float.
    public func weightsOnly() throws -> Policy {
        var copy = self
        for name in layerNames { copy = try copy.replacing(name, weight: nil, activation: .some(nil)) }
        return copy
    }
}
