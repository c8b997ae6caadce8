import Foundation
import Kernels
import Network
import Quantization
import Tensors
import Runtime

/// How much each layer suffers at each candidate bit width: the objective of a bit allocation.
/// values[layer][choice] for `layers` × `bits`; larger is worse; every metric is ≈ 0 in float.
public struct SensitivityTable: Sendable, Equatable {
    public enum Metric: String, Sendable, CaseIterable {
        /// HAWQ-V3: Ω = Tr(H_l)/P_l · ‖Q_b(W_l) − W_l‖² (needs Hessian traces).
        case hawq
        /// ZeroQ: mean KL(softmax(fp) ‖ softmax(q)) with only layer l quantized.
        case kl
        /// MPQNNCO: ½·mean_x[Σₖ pₖΔoₖ² − (Σₖ pₖΔoₖ)²], Δo the logit change with only layer l
        /// quantized (the loss's second-order term, exact for ReLU nets at small Δo).
        case mpqnnco
        /// Fisher: Σᵢ Fᵢᵢ·ΔWᵢ², F the empirical Fisher diagonal (1/N)·Σₙ gₙ² of the labels' loss.
        case fisher
        /// Mean squared logit change with only layer l quantized.
        case mse
        /// Accuracy lost on the data with only layer l quantized (fraction, not per cent).
        case accuracy
    }

    public var metric: Metric
    public var layers: [String]
    public var bits: [Int]
    public var values: [[Double]]
    /// The policy whose quantizers the values were measured under (each layer's weight
    /// quantizer at each candidate width); a search's policy is this one with the widths it
    /// chose, activations as here. nil: the reference quantizer, float activations.
    public var template: Policy?

    public init(metric: Metric, layers: [String], bits: [Int], values: [[Double]], template: Policy? = nil) {
        self.metric = metric; self.layers = layers; self.bits = bits; self.values = values; self.template = template
    }

    /// Layer l's weight quantizer at `bits`.
    public func quantizer(_ l: Int, bits: Int) -> Policy.Weight { Self.quantizer(template, l, bits: bits) }

    static func quantizer(_ template: Policy?, _ l: Int, bits: Int) -> Policy.Weight {
        (template?.entries[l].weight ?? .reference(bits: 8)).at(bits: bits)
    }

    /// Widths the template fixes: a binary layer at 1 bit, a ternary one at 2 (the solver's pins).
    public var fixedWidths: [String: Int] {
        var out: [String: Int] = [:]
        for e in template?.entries ?? [] {
            switch e.weight?.quantizer.scheme {
            case .binary?: out[e.layer.name] = 1
            case .ternary?: out[e.layer.name] = 2
            default: break
            }
        }
        return out
    }

    public func value(layer: String, bits b: Int) -> Double? {
        guard let l = layers.firstIndex(of: layer), let i = bits.firstIndex(of: b) else { return nil }
        return values[l][i]
    }

    /// The policy giving layer i `bits[i]` under the table's quantizer (weights only).
    public func policy(bits: [Int], model: Model) throws -> Policy {
        guard layers == model.layers.map(\.name), bits.count == layers.count else {
            throw MixedPrecisionError("sensitivity: the table's layers are not model '\(model.name)''s, or the widths (\(bits.count)) are not one per layer")
        }
        return try Policy(model: model, entries: model.layers.indices.map {
            Policy.Entry(layer: model.layers[$0], weight: quantizer($0, bits: bits[$0]), activation: template?.entries[$0].activation)
        })
    }

    static func checkBits(_ bits: [Int], _ template: Policy?, _ model: Model) throws {
        guard !bits.isEmpty else { throw MixedPrecisionError("sensitivity: expected at least one candidate bit width") }
        if let template { try template.check(against: model) }
        for b in bits {
            try WeightQuantizer.validate(bits: b)
            for (l, layer) in model.layers.enumerated() {
                let q = quantizer(template, l, bits: b).quantizer
                if (q.scheme == .binary && b != 1) || (q.scheme == .ternary && b != 2) { continue }
                do { try q.validate() }
                catch let e as QuantizationError {
                    throw MixedPrecisionError("sensitivity: layer '\(layer.name)' at \(b) bits: \(e.message.replacingOccurrences(of: "quantize: ", with: ""))")
                }
            }
        }
        guard Set(bits).count == bits.count else { throw MixedPrecisionError("sensitivity: candidate bit widths repeat: \(bits)") }
    }

    /// ‖Q_b(W) − W‖² for one layer.
    public static func perturbation(_ model: Model, _ layer: Layer, bits: Int, quantizer: Policy.Weight = .reference(bits: 8)) throws -> Double {
        let w = model.parameters[layer.weight]!
        let q = try quantizer.at(bits: bits).quantize(w).dequantized
        var s = 0.0
        for i in 0..<w.count { let d = Double(q.scalars[i]) - Double(w.scalars[i]); s += d * d }
        return s
    }

    /// HAWQ-V3's table from per-layer Hessian traces (by layer name).
    public static func hawq(model: Model, traces: [String: Double], bits: [Int], template: Policy? = nil) throws -> SensitivityTable {
        try checkBits(bits, template, model)
        let values = try model.layers.enumerated().map { l, layer -> [Double] in
            guard let t = traces[layer.name] else { throw MixedPrecisionError("sensitivity: no Hessian trace for layer '\(layer.name)'") }
            return try bits.map { t / Double(layer.parameterCount) * (try perturbation(model, layer, bits: $0, quantizer: quantizer(template, l, bits: $0))) }
        }
        return SensitivityTable(metric: .hawq, layers: model.layers.map(\.name), bits: bits, values: values, template: template)
    }

    /// The Fisher table: one backward pass of the labels' loss gives the per-example gradients'
    /// squares (the empirical Fisher diagonal); Ω = Σ F·ΔW².
    public static func fisher(model: Model, images: Tensor, labels: [Int], bits: [Int], template: Policy? = nil) throws -> SensitivityTable {
        try checkBits(bits, template, model)
        try model.checkFinite(for: "sensitivity", data: images)
        guard images.shape.first ?? 0 > 0 else { throw MixedPrecisionError("sensitivity: the data holds no images") }
        let (logits, trace) = try model.run(images, keepTrace: true)
        let ce = try CrossEntropy(logits: logits, labels: labels)
        // Rows (pₙ − yₙ)/√N: per-example gradients scaled so their squares sum to the mean.
        let n = Float(labels.count)
        let rows = ce.gradient.map { $0 * n / n.squareRoot() }
        let keep = Set(model.layers.map { model.nodes[$0.node].outputs[0] })
        let grads = try model.gradients(trace!, outputGradient: rows, keeping: keep)
        let values = try model.layers.enumerated().map { l, layer -> [Double] in
            let out = model.nodes[layer.node].outputs[0]
            let delta = try grads[out] ?? Tensor.zeros(trace!.values[out]!.shape)
            let f = try model.squaredExampleGradients(of: layer, trace: trace!, layerOutputGradients: [delta])
            let w = model.parameters[layer.weight]!
            return try bits.map { b in
                let q = try quantizer(template, l, bits: b).quantize(w).dequantized
                var s = 0.0
                for i in 0..<w.count { let d = Double(q.scalars[i]) - Double(w.scalars[i]); s += Double(f.scalars[i]) * d * d }
                return s
            }
        }
        return SensitivityTable(metric: .fisher, layers: model.layers.map(\.name), bits: bits, values: values, template: template)
    }

    /// Tables measured by forward passes with one layer quantized at a time (kl, mpqnnco, mse,
    /// accuracy). `labels` are needed for `accuracy` only. `progress` sees (done, total).
    public static func measured(_ metric: Metric, model: Model, images: Tensor, labels: [Int]? = nil, bits: [Int],
                                template: Policy? = nil,
                                progress: ((Int, Int) -> Void)? = nil) throws -> SensitivityTable {
        try checkBits(bits, template, model)
        guard [.kl, .mpqnnco, .mse, .accuracy].contains(metric) else {
            throw MixedPrecisionError("sensitivity: '\(metric.rawValue)' is not measured by forward passes; use its own constructor")
        }
        if metric == .accuracy {
            guard let labels, labels.count == images.shape[0] else {
                throw MixedPrecisionError("sensitivity: 'accuracy' needs one label per image")
            }
        }
        try model.checkFinite(for: "sensitivity", data: images)
        guard images.shape.first ?? 0 > 0 else { throw MixedPrecisionError("sensitivity: the data holds no images") }
        let reference = try model.run(images).output
        let c = reference.shape[1], n = reference.shape[0]
        let p = try CrossEntropy.softmax(reference)
        let baseAccuracy = labels.map { Self.accuracy(reference, $0) } ?? 0
        var values: [[Double]] = []
        var done = 0
        let total = model.layers.count * bits.count
        for (l, layer) in model.layers.enumerated() {
            var row: [Double] = []
            let original = model.parameters[layer.weight]!
            let probe = model.copy()
            for b in bits {
                try Interrupt.check()
                probe.parameters[layer.weight] = try quantizer(template, l, bits: b).quantize(original).dequantized
                let out = try probe.run(images).output
                var s = 0.0
                switch metric {
                case .kl:
                    let q = try CrossEntropy.softmax(out)
                    for i in 0..<(n * c) where p.scalars[i] > 0 {
                        s += Double(p.scalars[i]) * (log(Double(p.scalars[i])) - log(max(Double(q.scalars[i]), 1e-30)))
                    }
                    s /= Double(n)
                case .mpqnnco:
                    for i in 0..<n {
                        var m1 = 0.0, m2 = 0.0
                        for k in 0..<c {
                            let d = Double(out.scalars[i * c + k]) - Double(reference.scalars[i * c + k]), pk = Double(p.scalars[i * c + k])
                            m1 += pk * d; m2 += pk * d * d
                        }
                        s += m2 - m1 * m1
                    }
                    s /= 2 * Double(n)
                case .mse:
                    for i in 0..<(n * c) { let d = Double(out.scalars[i]) - Double(reference.scalars[i]); s += d * d }
                    s /= Double(n * c)
                case .accuracy:
                    s = baseAccuracy - Self.accuracy(out, labels!)
                default: break
                }
                row.append(max(s, metric == .accuracy ? -1 : 0))
                done += 1
                progress?(done, total)
            }
            values.append(row)
        }
        return SensitivityTable(metric: metric, layers: model.layers.map(\.name), bits: bits, values: values, template: template)
    }

    static func accuracy(_ logits: Tensor, _ labels: [Int]) -> Double {
        let c = logits.shape[1]
        var right = 0
        for (i, y) in labels.enumerated() {
            var best = 0
            for k in 1..<c where logits.scalars[i * c + k] > logits.scalars[i * c + best] { best = k }
            if best == y { right += 1 }
        }
        return Double(right) / Double(max(1, labels.count))
    }
}
