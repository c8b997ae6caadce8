import Foundation
import Network
import Quantization
import Tensors

/// Kernel-wise bit allocation (AutoQ's granularity, with HAWQ-V3's objective): every output
/// channel of every layer takes its own weight width. A channel's sensitivity is HAWQ-V3's
/// formula on its own diagonal Hessian block, Ω_{l,c}(b) = Tr(H_{l,c})/P_{l,c}·‖Q_b(W_{l,c}) − W_{l,c}‖²,
/// with Q_b the layer's quantizer at b bits applied to that channel alone; the exact solver
/// then allocates channels (not layers) under the budget.
public struct KernelWiseTable: Sendable {
    public var layers: [Layer]
    public var bits: [Int]
    /// values[layer][channel][choice]
    public var values: [[[Double]]]
    /// The weight quantizer of each layer (its width replaced by each candidate's).
    public var quantizers: [Policy.Weight]

    /// How a channel's sensitivity weighs its weight error.
    public enum Objective: String, Sendable, CaseIterable {
        /// HAWQ-V3's: Tr(H_{l,c})/P_{l,c}·‖ΔW_{l,c}‖² (the block's mean curvature).
        case trace
        /// Σ_i H_ii·ΔW_i² over the channel's weights (each weight's own curvature).
        case diagonal
        /// ΔW_{l,c}ᵀ·G_{l,c}·ΔW_{l,c}: the channel's exact Gauss–Newton block, the interactions of
        /// its weights through the layer's input included (`init(model:data:bits:)`).
        case gaussNewton = "gauss_newton"
    }

    /// The weight quantizer of each layer (`template`'s, or the reference), with checks.
    static func quantizers(model: Model, bits: [Int], template: Policy?) throws -> [Policy.Weight] {
        guard !bits.isEmpty, bits.allSatisfy({ (1...8).contains($0) }), Set(bits).count == bits.count else {
            throw MixedPrecisionError("kernel-wise sensitivity: candidate widths must be distinct, in 1…8; got \(bits)")
        }
        if let template { try template.check(against: model) }
        return model.layers.indices.map { template?.entries[$0].weight ?? .reference(bits: 8) }
    }

    /// A layer's weight error Q_b(W) − W at each candidate width, every channel on its own scale.
    static func weightErrors(_ w: Tensor, quantizer: Policy.Weight, bits: [Int]) throws -> [Tensor] {
        try bits.map { b in
            var q = quantizer.at(bits: b).quantizer
            q.slicing = .channel
            return try q.quantize(w).dequantized - w
        }
    }

    /// The table with the `gaussNewton` objective: each channel's weight error at each width
    /// weighed by its exact Gauss–Newton block on `data` (Gauss–Newton networks; in chunks of
    /// `HessianAnalysis.traceChunk` images combined as the mean loss's).
    public init(model: Model, data: Dataset, bits: [Int], template: Policy? = nil, progress: ((Int, Int) -> Void)? = nil) throws {
        let quantizers = try Self.quantizers(model: model, bits: bits, template: template)
        let n = data.count
        guard n > 0 else { throw MixedPrecisionError("kernel-wise sensitivity: the data holds no images") }
        var changes: [String: [Tensor]] = [:]
        for (l, layer) in model.layers.enumerated() {
            changes[layer.name] = try Self.weightErrors(model.parameters[layer.weight]!, quantizer: quantizers[l], bits: bits)
        }
        let chunks = stride(from: 0, to: n, by: HessianAnalysis.traceChunk).map { $0..<min($0 + HessianAnalysis.traceChunk, n) }
        var forms: [String: [[Double]]] = [:]
        for (k, range) in chunks.enumerated() {
            let part = chunks.count == 1 ? data : try Dataset(name: data.name, images: data.images.slice(range),
                                                               labels: Array(data.labels[range]), classes: data.classes)
            let analysis = try HessianAnalysis(model: model, data: part)
            let weight = Double(range.count) / Double(n)
            for (name, f) in try analysis.channelQuadraticForms(changes, progress: chunks.count == 1 ? progress : nil) {
                let scaled = f.map { $0.map { $0 * weight } }
                forms[name] = forms[name].map { zip($0, scaled).map { zip($0, $1).map(+) } } ?? scaled
            }
            if chunks.count > 1 { progress?(k + 1, chunks.count) }
        }
        layers = model.layers
        self.bits = bits
        self.quantizers = quantizers
        // [layer][change][channel] → [layer][channel][choice]
        values = model.layers.map { layer in
            let f = forms[layer.name]!
            return (0..<layer.weightShape[0]).map { c in f.map { $0[c] } }
        }
    }

    /// The exact diagonal of each layer's Hessian block (Gauss–Newton networks), in chunks of
    /// `HessianAnalysis.traceChunk` images combined as the mean loss's.
    public static func diagonals(model: Model, data: Dataset, progress: ((Int, Int) -> Void)? = nil) throws -> [String: Tensor] {
        let n = data.count
        guard n > 0 else { throw MixedPrecisionError("Hessian: the data holds no images") }
        let chunks = stride(from: 0, to: n, by: HessianAnalysis.traceChunk).map { $0..<min($0 + HessianAnalysis.traceChunk, n) }
        var out: [String: Tensor] = [:]
        for (k, range) in chunks.enumerated() {
            let part = chunks.count == 1 ? data : try Dataset(name: data.name, images: data.images.slice(range),
                                                               labels: Array(data.labels[range]), classes: data.classes)
            let analysis = try HessianAnalysis(model: model, data: part)
            guard analysis.usesGaussNewton else {
                throw MixedPrecisionError("kernel-wise sensitivity: the exact per-channel diagonals need a piecewise-linear network (ReLU, pooling, batch norm)")
            }
            let weight = Float(range.count) / Float(n)
            for (name, d) in try analysis.exactDiagonals(model.layers, progress: chunks.count == 1 ? progress : nil) {
                let scaled = d.map { $0 * weight }
                out[name] = try out[name].map { try $0 + scaled } ?? scaled
            }
            if chunks.count > 1 { progress?(k + 1, chunks.count) }
        }
        return out
    }

    /// Sums of a layer's diagonal over each output channel: the traces of the channel blocks.
    public static func channelTraces(_ diagonal: Tensor) -> [Double] {
        let channels = diagonal.shape[0], per = diagonal.count / max(1, channels)
        return (0..<channels).map { c in (0..<per).reduce(0.0) { $0 + Double(diagonal.scalars[c * per + $1]) } }
    }

    /// The table from the Hessian diagonals, under `template`'s weight quantizers (nil: the reference).
    public init(model: Model, diagonals: [String: Tensor], bits: [Int], objective: Objective = .trace, template: Policy? = nil) throws {
        guard objective != .gaussNewton else {
            throw MixedPrecisionError("kernel-wise sensitivity: the gauss_newton objective is measured on data (KernelWiseTable(model:data:bits:)), not from diagonals")
        }
        let quantizers = try Self.quantizers(model: model, bits: bits, template: template)
        layers = model.layers
        self.bits = bits
        self.quantizers = quantizers
        values = try model.layers.enumerated().map { l, layer -> [[Double]] in
            guard let diagonal = diagonals[layer.name], diagonal.shape == layer.weightShape else {
                throw MixedPrecisionError("kernel-wise sensitivity: no Hessian diagonal of shape \(layer.weightShape) for layer '\(layer.name)'")
            }
            let traces = Self.channelTraces(diagonal)
            let w = model.parameters[layer.weight]!
            let channels = layer.weightShape[0], per = w.count / channels
            var rows = Array(repeating: [Double](), count: channels)
            for error in try Self.weightErrors(w, quantizer: quantizers[l], bits: bits) {
                for c in 0..<channels {
                    var e = 0.0, weighted = 0.0
                    for i in (c * per)..<((c + 1) * per) {
                        let d = Double(error.scalars[i])
                        e += d * d; weighted += Double(diagonal.scalars[i]) * d * d
                    }
                    rows[c].append(objective == .trace ? traces[c] / Double(per) * e : weighted)
                }
            }
            return rows
        }
    }

    /// The table under `objective` on `data`: the Gauss–Newton blocks measured directly, or the
    /// trace and diagonal objectives from the exact Hessian diagonals.
    public static func measure(model: Model, data: Dataset, bits: [Int], objective: Objective = .gaussNewton,
                               template: Policy? = nil, progress: ((Int, Int) -> Void)? = nil) throws -> KernelWiseTable {
        if objective == .gaussNewton { return try KernelWiseTable(model: model, data: data, bits: bits, template: template, progress: progress) }
        return try KernelWiseTable(model: model, diagonals: try diagonals(model: model, data: data, progress: progress), bits: bits,
                                   objective: objective, template: template)
    }

    /// The exact allocation of widths to channels minimising ΣΩ under a weight-size budget
    /// (bytes, as `CostModel.size`), with whole layers pinned (`pinned`: layer name → bits).
    /// Returns the kernel-wise policy (activations as `template`'s, or float) and the solution.
    public func search(model: Model, size limit: Double, pinned: [String: Int] = [:], template: Policy? = nil) throws -> (policy: Policy, solution: BitAllocation.Solution) {
        guard limit.isFinite, limit > 0 else { throw MixedPrecisionError("kernel-wise search: the size budget must be a positive finite number of bytes, found \(limit)") }
        var names: [String] = [], objective: [[Double]] = [], cost: [[Double]] = []
        var pins: [Int: Int] = [:]
        for (l, layer) in layers.enumerated() {
            let channels = layer.weightShape[0], per = layer.parameterCount / channels
            if let b = pinned[layer.name], !bits.contains(b) {
                throw MixedPrecisionError("kernel-wise search: layer '\(layer.name)' is pinned at \(b) bits, which is not a candidate (\(bits))")
            }
            for c in 0..<channels {
                if let b = pinned[layer.name] { pins[names.count] = b }
                names.append("\(layer.name)[\(c)]")
                objective.append(values[l][c])
                cost.append(bits.map { Double(per * $0) / 8 })
            }
        }
        for name in pinned.keys where !layers.contains(where: { $0.name == name }) {
            throw MixedPrecisionError("kernel-wise search: no layer named '\(name)' to pin")
        }
        let problem = BitAllocation(layers: names, choices: Array(repeating: bits, count: names.count), objective: objective,
                                    budgets: [BitAllocation.Budget(name: "size", cost: cost, limit: limit)], pinned: pins)
        let solution = try problem.solveExactly()
        var next = 0
        let entries = try layers.enumerated().map { l, layer -> Policy.Entry in
            let channels = layer.weightShape[0]
            let widths = Array(solution.bits[next..<(next + channels)])
            next += channels
            let weight = widths.allSatisfy({ $0 == widths[0] }) ? quantizers[l].at(bits: widths[0]) : quantizers[l].perChannel(widths)
            return Policy.Entry(layer: layer, weight: weight, activation: template?.entries[l].activation)
        }
        return (try Policy(model: model, entries: entries), solution)
    }
}
