import Foundation
import Network
import Tensors

extension Model {
    /// A copy whose weights sit on `policy`'s grids with rounding learned by AdaRound on
    /// `calibration` (see `AdaRound`), its biases corrected along the way when `biasCorrection`
    /// is set; weights stay Float32. Quantize it with `policy.moved(to:)` (simulation or the
    /// integer engine), which keeps the learned codes. `progress` sees (layers done, layers).
    public func adaRounded(for policy: Policy, calibration: Tensor, options: AdaRound = AdaRound(), biasCorrection: Bool = false,
                           progress: ((Int, Int) -> Void)? = nil) throws -> (model: Model, report: AdaRound.Report) {
        try options.validate()
        try policy.check(against: self)
        try policy.checkCalibration(calibration, for: "adaround")
        try checkFinite(for: "adaround", data: calibration)
        let start = Date()
        let entries = policy.entries.filter { $0.weight != nil }.sorted { $0.layer.node < $1.layer.node }
        let images = calibration.shape[0]
        let chunks = try stride(from: 0, to: images, by: options.chunk).map { try calibration.slice($0..<min(images, $0 + options.chunk)) }
        let floatInputs = try FloatInputs(model: self, nodes: Set(entries.map(\.layer.node)), chunks: chunks)
        var current = copy()
        var reports: [AdaRound.LayerReport] = []
        for (done, entry) in entries.enumerated() {
            defer { progress?(done + 1, entries.count) }
            let layerStart = Date()
            let layer = entry.layer, weight = entry.weight!
            let w = parameters[layer.weight]!
            let nearest = try weight.quantize(w)
            let channels = layer.weightShape[0], k = w.count / channels
            let groups = layer.kind == .conv ? layer.groups : 1, rowsPerGroup = channels / groups
            var moments = InputMoments(k: k, groups: groups, channels: channels)
            for (index, batch) in chunks.enumerated() {
                let xf = try floatInputs.input(of: layer.node, chunk: index, batch: batch)
                guard let xq = try current.inputs(of: layer.node, on: batch).first ?? nil else { throw QuantizationError("adaround: layer '\(layer.name)' has no input") }
                if xq.hasNonFinite || xf.hasNonFinite {
                    throw QuantizationError("adaround: the input of layer '\(layer.name)' holds NaN or infinite values on the calibration data")
                }
                try moments.add(f: xf, q: xq, weight: w, node: nodes[layer.node], layer: layer)
            }
            moments.finish(centred: biasCorrection, weight: w)
            var rounded = nearest.dequantized.scalars
            var nearestError = Double.nan, learnedError = Double.nan, flipped = 0
            var note: String? = nil
            if AdaRound.learns(weight.quantizer.scheme) {
                let grid = AdaRound.Grid(weight: weight, nearest: nearest, w: w, channels: channels)
                nearestError = 0; learnedError = 0
                for g in 0..<groups {
                    let range = (g * rowsPerGroup * k)..<((g + 1) * rowsPerGroup * k)
                    let r = try options.round(weights: Array(w.scalars[range]), scale: Array(grid.scale[range]), lo: Array(grid.lo[range]), hi: Array(grid.hi[range]),
                                              fixed: Array(grid.fixed[range]), rows: rowsPerGroup, k: k, moments: moments, group: g)
                    rounded.replaceSubrange(range, with: r.rounded)
                    nearestError += r.nearestError / Double(groups); learnedError += r.learnedError / Double(groups); flipped += r.flipped
                }
                if learnedError > nearestError {
                    note = String(format: "kept nearest: the learned rounding reconstructed worse (%.4g against %.4g)", learnedError, nearestError)
                } else {
                    // The policy's quantizer must give back the same grid; else the layer keeps its own rounding.
                    let again = try weight.quantize(Tensor(checkedShape: w.shape, scalars: rounded)).dequantized
                    let tolerance = 1e-4 * (nearest.scales.max() ?? 0)
                    if !zip(again.scalars, rounded).allSatisfy({ abs($0 - $1) <= tolerance }) { note = "kept nearest: re-quantizing the learned rounding moved the grid" }
                }
                if note != nil { rounded = nearest.dequantized.scalars; learnedError = nearestError; flipped = 0 }
            } else {
                note = "the \(weight.quantizer.scheme.rawValue) scheme has no rounding to learn"
            }
            current.parameters[layer.weight] = Tensor(checkedShape: w.shape, scalars: rounded)
            if biasCorrection {
                // The mean output shift Ŵ·E[x_q] − W·E[x_f], out of the bias or batch norm.
                let delta: [Double] = (0..<channels).map { c in
                    let g = c / rowsPerGroup
                    var d = 0.0
                    for j in 0..<k { d += Double(rounded[c * k + j]) * moments.meanQ[g][j] - Double(w.scalars[c * k + j]) * moments.meanF[g][j] }
                    return d
                }
                current = try BiasCorrection.apply([layer.name: delta], to: current)
            }
            reports.append(.init(layer: layer.name, learned: note == nil, note: note, nearestError: nearestError, learnedError: learnedError,
                                 flipped: Double(flipped) / Double(w.count), seconds: Date().timeIntervalSince(layerStart)))
        }
        return (current, AdaRound.Report(layers: reports, seconds: Date().timeIntervalSince(start)))
    }

    /// The post-training corrections a policy asks of this model before it is quantized: none,
    /// bias correction (`BiasCorrection`), or AdaRound's learned rounding (with sequential bias
    /// correction when asked). Returns the float model to quantize and the policy moved onto it;
    /// `quantized(policy:)` and `IntegerModel` take both.
    public func corrected(for policy: Policy, calibration: Tensor, biasCorrection: Bool, rounding: AdaRound? = nil,
                          progress: ((Int, Int) -> Void)? = nil) throws -> (model: Model, policy: Policy, report: AdaRound.Report?) {
        if let rounding {
            let (m, report) = try adaRounded(for: policy, calibration: calibration, options: rounding, biasCorrection: biasCorrection, progress: progress)
            return (m, try policy.moved(to: m), report)
        }
        guard biasCorrection else { return (self, policy, nil) }
        let m = try biasCorrected(for: policy, calibration: calibration)
        return (m, try policy.moved(to: m), nil)
    }
}

extension AdaRound {
    /// Per weight of a layer: its slice's scale and code range from the policy's quantizer, and
    /// whether it keeps its nearest code (each slice's largest and smallest weight, which set
    /// the grid when the result is quantized again).
    struct Grid {
        var scale: [Float], lo: [Float], hi: [Float], fixed: [Bool]

        init(weight: Policy.Weight, nearest: Quantizer.Result, w: Tensor, channels: Int) {
            let count = w.count, slices = nearest.scales.count, perSlice = count / slices, perChannel = count / channels
            let widths = weight.widths(channels: channels)
            scale = [Float](repeating: 0, count: count); lo = scale; hi = scale
            fixed = [Bool](repeating: false, count: count)
            for s in 0..<slices {
                let q = weight.at(bits: widths[s * perSlice / perChannel]).quantizer
                let r = AdaRound.range(bits: q.bits, scheme: q.scheme, zero: nearest.zeroPoints[s])
                let first = s * perSlice
                var top = first, bottom = first
                for i in first..<(first + perSlice) {
                    scale[i] = nearest.scales[s]; lo[i] = r.lo; hi[i] = r.hi
                    if w.scalars[i] > w.scalars[top] { top = i }
                    if w.scalars[i] < w.scalars[bottom] { bottom = i }
                }
                fixed[top] = true; fixed[bottom] = true
            }
        }
    }
}

/// Each AdaRound layer's input in the float model, per calibration chunk: kept from one pass when
/// they fit in a quarter of the memory budget, else recomputed layer by layer.
struct FloatInputs {
    let model: Model
    var kept: [[Int: Tensor]]?

    init(model: Model, nodes: Set<Int>, chunks: [Tensor]) throws {
        self.model = model
        guard let first = chunks.first else { kept = nil; return }
        func collect(_ batch: Tensor) throws -> [Int: Tensor] {
            var seen: [Int: Tensor] = [:]
            _ = try model.run(batch, observer: { i, ins in if nodes.contains(i), let x = ins.first ?? nil { seen[i] = x } })
            return seen
        }
        let one = try collect(first)
        let bytes = one.values.reduce(0) { $0 + $1.count * 4 } * chunks.count
        guard bytes <= MemoryBudget.limit / 4 else { kept = nil; return }
        kept = try [one] + chunks.dropFirst().map(collect)
    }

    func input(of node: Int, chunk: Int, batch: Tensor) throws -> Tensor {
        if let x = kept?[chunk][node] { return x }
        guard let x = try model.inputs(of: node, on: batch).first ?? nil else { throw QuantizationError("adaround: node \(node) has no input") }
        return x
    }
}
