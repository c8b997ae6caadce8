import Network
import Tensors

extension HessianAnalysis {
    public enum TraceMethod: String, Sendable, CaseIterable {
        /// `exact` where it is cheap (a piecewise-linear network, or at most `exactProductLimit`
        /// weights in all the layers together: one product per weight), `hutchinson` elsewhere.
        case auto, exact, hutchinson

        /// What `auto` means for these layers of this model; other methods are themselves.
        public func resolved(model: Model, layers: [Layer]) -> TraceMethod {
            guard self == .auto else { return self }
            return model.isPiecewiseLinear || layers.reduce(0, { $0 + $1.parameterCount }) <= exactProductLimit ? .exact : .hutchinson
        }
    }

    /// Images per chunk of `traces`: the forward trace the analysis keeps grows with the batch
    /// (about 1.2 MB per image for ResNet-20), so larger data is analysed in chunks of this many.
    public static let traceChunk = 512

    /// The trace of each layer's diagonal Hessian block of the mean cross-entropy over `data`.
    ///
    /// Data larger than `traceChunk` images is analysed chunk by chunk, and the blocks combined
    /// as the mean loss's are, H = Σ_c (n_c / N)·H_c, so memory stays that of one chunk however
    /// many images are given. `exact`: the exact diagonals' sums (standard error 0). `hutchinson`:
    /// each chunk's estimate (`samples`, PyHessian's stopping rule) weighted alike; the standard
    /// errors combine as independent ones, and `samples` is the most any chunk drew.
    /// `progress` sees (done, total).
    public static func traces(model: Model, data: Dataset, method: TraceMethod, layers: [Layer]? = nil,
                              samples: Int = 100, seed: UInt64 = 0,
                              progress: ((Int, Int) -> Void)? = nil) throws -> [String: Estimate] {
        let layers = layers ?? model.layers
        let method = method.resolved(model: model, layers: layers)
        let n = data.count
        guard n > 0 else { throw MixedPrecisionError("Hessian: the data holds no images") }
        let chunks = stride(from: 0, to: n, by: traceChunk).map { $0..<min($0 + traceChunk, n) }
        var mean: [String: Double] = [:], variance: [String: Double] = [:], drawn: [String: Int] = [:]
        var done = 0
        let total = layers.count * chunks.count
        for range in chunks {
            let part = chunks.count == 1 ? data : try Dataset(name: data.name, images: data.images.slice(range),
                                                               labels: Array(data.labels[range]), classes: data.classes)
            let analysis = try HessianAnalysis(model: model, data: part)
            let weight = Double(range.count) / Double(n)
            switch method {
            case .exact:
                guard analysis.usesGaussNewton || layers.allSatisfy({ $0.parameterCount <= exactProductLimit }) else {
                    throw MixedPrecisionError("Hessian: method \"exact\" on a network that is not piecewise linear needs one product per weight; use method: \"hutchinson\"")
                }
                // One chunk shows the analysis's own progress; several, one step per chunk.
                let diagonals = try analysis.exactDiagonals(layers, progress: chunks.count == 1 ? progress : nil)
                for l in layers { mean[l.name, default: 0] += weight * diagonals[l.name]!.scalars.reduce(0.0) { $0 + Double($1) } }
                done += layers.count
                if chunks.count > 1 { progress?(done, total) }
            case .hutchinson, .auto:
                for l in layers {
                    let e = try analysis.hutchinson(l, samples: samples, seed: seed)
                    mean[l.name, default: 0] += weight * e.mean
                    variance[l.name, default: 0] += weight * weight * e.standardError * e.standardError
                    drawn[l.name] = max(drawn[l.name] ?? 0, e.samples)
                    done += 1
                    progress?(done, total)
                }
            }
        }
        return Dictionary(uniqueKeysWithValues: layers.map { l in
            (l.name, Estimate(mean: mean[l.name]!, standardError: (variance[l.name] ?? 0).squareRoot(), samples: drawn[l.name] ?? 0))
        })
    }
}
