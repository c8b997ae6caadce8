import Foundation
import Network
import Tensors

/// Second-order information about one batch: the Hessian of the mean cross-entropy with
/// respect to each layer's weight (its diagonal block), as products, traces (Hutchinson or
/// exact), diagonals and top eigenvalues. The model runs in evaluation mode (batch norm uses its
/// running statistics), once; every product reuses that forward pass.
///
/// Two ways to multiply by a diagonal block H_ll:
/// - Gauss–Newton, when the network is piecewise linear (ReLU, max pooling, conv/linear,
///   evaluation-mode batch norm, pooling, reshapes): the output is then linear in W_l, so
///   H_ll = J_lᵀ·(diag(p) − ppᵀ)/N·J_l exactly, a quadratic form costs one forward tangent
///   pass, and the exact diagonal follows from per-example gradients of C backward passes.
/// - Otherwise the exact Hessian-vector product (forward-over-reverse through the graph); the
///   exact diagonal then needs one product per weight and is offered for small layers only.
public final class HessianAnalysis: @unchecked Sendable {
    public let model: Model
    public let crossEntropy: CrossEntropy
    /// Whether the Gauss–Newton form is exact for this network (see the type's summary).
    public let usesGaussNewton: Bool
    let trace: Model.Trace

    /// Weights above which `exactDiagonal` refuses the one-product-per-weight fallback.
    public static let exactProductLimit = 4096

    public init(model: Model, images: Tensor, labels: [Int]) throws {
        guard images.shape.first == labels.count, labels.count > 0 else {
            throw MixedPrecisionError("Hessian: expected one label per image, found \(images.shape.first ?? 0) images and \(labels.count) labels")
        }
        try model.checkFinite(for: "Hessian", data: images)
        self.model = model
        let (logits, trace) = try model.run(images, keepTrace: true)
        self.trace = trace!
        crossEntropy = try CrossEntropy(logits: logits, labels: labels)
        usesGaussNewton = model.isPiecewiseLinear
    }

    public convenience init(model: Model, data: Dataset) throws {
        try self.init(model: model, images: data.images, labels: data.labels)
    }

    /// Mean cross-entropy of the batch.
    public var loss: Double { crossEntropy.loss }

    /// H_ll·v for a tensor v shaped like the layer's weight.
    public func product(_ layer: Layer, _ v: Tensor) throws -> Tensor {
        try check(layer, v)
        if usesGaussNewton {
            let z = try model.tangent(trace, parameterTangents: [layer.weight: v])
            let g = try model.gradients(trace, outputGradient: crossEntropy.hessianProduct(z))
            return try g[layer.weight] ?? Tensor.zeros(v.shape)
        }
        let hv = try model.hessianVectorProduct(trace, outputGradient: crossEntropy.gradient,
                                                lossGradientTangent: { self.crossEntropy.hessianProduct($0) },
                                                parameterTangents: [layer.weight: v], only: [layer.weight])
        return try hv[layer.weight] ?? Tensor.zeros(v.shape)
    }

    /// vᵀ·H_ll·v.
    public func quadraticForm(_ layer: Layer, _ v: Tensor) throws -> Double {
        try check(layer, v)
        if usesGaussNewton {
            return crossEntropy.quadraticForm(try model.tangent(trace, parameterTangents: [layer.weight: v]))
        }
        return Self.dot(v, try product(layer, v))
    }

    /// One product for every layer at once (PyHessian's Hutchinson sample): with `v` holding a
    /// vector shaped like each layer's weight (by layer name), H·v over all of them, and per layer
    /// v_lᵀ(Hv)_l. With Rademacher v each is an unbiased estimate of Tr(H_ll) — the cross blocks
    /// H_lm (m ≠ l) average out — from one product per sample instead of one per layer, at the
    /// price of more variance.
    public func blockQuadraticForms(_ v: [String: Tensor]) throws -> [String: Double] {
        var tangents: [String: Tensor] = [:]
        var layers: [Layer] = []
        for (name, t) in v {
            guard let layer = model.layers.first(where: { $0.name == name }) else {
                throw MixedPrecisionError("Hessian: no layer named '\(name)'")
            }
            try check(layer, t)
            tangents[layer.weight] = t
            layers.append(layer)
        }
        let hv: [String: Tensor]
        if usesGaussNewton {
            let z = try model.tangent(trace, parameterTangents: tangents)
            hv = try model.gradients(trace, outputGradient: crossEntropy.hessianProduct(z))
        } else {
            hv = try model.hessianVectorProduct(trace, outputGradient: crossEntropy.gradient,
                                                lossGradientTangent: { self.crossEntropy.hessianProduct($0) },
                                                parameterTangents: tangents)
        }
        return Dictionary(uniqueKeysWithValues: try layers.map { l in
            (l.name, Self.dot(v[l.name]!, try hv[l.weight] ?? Tensor.zeros(l.weightShape)))
        })
    }

    func check(_ layer: Layer, _ v: Tensor) throws {
        guard v.shape == layer.weightShape else {
            throw MixedPrecisionError("Hessian of '\(layer.name)': expected a vector shaped \(layer.weightShape), found \(v.shape)")
        }
    }

    /// A Monte Carlo estimate with its standard error.
    public struct Estimate: Sendable, Equatable {
        public var mean: Double
        public var standardError: Double
        public var samples: Int
    }

    /// Hutchinson's estimate of Tr(H_ll): the mean of vᵀHv over Rademacher vectors drawn for
    /// this layer alone. Stops after `samples`, or earlier once the running mean changes by
    /// less than `tolerance` (relative) after at least `minimumSamples` (PyHessian's rule; pass
    /// 0 to always draw `samples`). The generator is seeded from `seed` and the layer's name,
    /// so one layer's estimate does not depend on which layers ran before it.
    public func hutchinson(_ layer: Layer, samples: Int = 100, tolerance: Double = 1e-3, minimumSamples: Int = 10,
                           seed: UInt64 = 0, progress: ((Int) -> Void)? = nil) throws -> Estimate {
        guard samples >= 2 else { throw MixedPrecisionError("Hutchinson: expected at least 2 samples, found \(samples)") }
        var rng = RandomGenerator(seed: Self.seed(seed, layer.name))
        var sum = 0.0, sumSquares = 0.0, previous = 0.0
        var n = 0
        while n < samples {
            var v = [Float](repeating: 0, count: layer.parameterCount)
            for i in v.indices { v[i] = rng.rademacher() }
            let q = try quadraticForm(layer, Tensor(checkedShape: layer.weightShape, scalars: v))
            n += 1
            sum += q; sumSquares += q * q
            progress?(n)
            let mean = sum / Double(n)
            if tolerance > 0, n >= max(2, minimumSamples), abs(mean - previous) / (abs(previous) + 1e-6) < tolerance { break }
            previous = mean
        }
        let mean = sum / Double(n)
        let variance = max(0, (sumSquares - Double(n) * mean * mean) / Double(n - 1))
        return Estimate(mean: mean, standardError: (variance / Double(n)).squareRoot(), samples: n)
    }

    /// The exact diagonal of H_ll for every layer given (all layers when nil). Gauss–Newton
    /// networks: C backward passes (C classes) shared by all layers, then per-example weight
    /// gradients. Otherwise one Hessian-vector product per weight (layers up to
    /// `exactProductLimit` weights).
    public func exactDiagonals(_ layers: [Layer]? = nil, progress: ((Int, Int) -> Void)? = nil) throws -> [String: Tensor] {
        let layers = layers ?? model.layers
        var out: [String: Tensor] = [:]
        if usesGaussNewton {
            let c = crossEntropy.probabilities.shape[1]
            let keep = Set(layers.map { model.nodes[$0.node].outputs[0] })
            for layer in layers { out[layer.name] = try Tensor.zeros(layer.weightShape) }
            for k in 0..<c {
                let grads = try model.gradients(trace, outputGradient: outputHessianFactor(k), keeping: keep)
                for layer in layers {
                    let delta = try grads[model.nodes[layer.node].outputs[0]] ?? Tensor.zeros(trace.values[model.nodes[layer.node].outputs[0]]!.shape)
                    out[layer.name] = try out[layer.name]! + model.squaredExampleGradients(of: layer, trace: trace, layerOutputGradients: [delta])
                }
                progress?(k + 1, c)
            }
            return out
        }
        for layer in layers {
            guard layer.parameterCount <= Self.exactProductLimit else {
                throw MixedPrecisionError("exact Hessian diagonal of '\(layer.name)': this network is not piecewise linear, so it takes one product per weight, and \(layer.parameterCount) weights exceed the limit of \(Self.exactProductLimit); use Hutchinson")
            }
            var diag = [Float](repeating: 0, count: layer.parameterCount)
            for i in diag.indices {
                var e = [Float](repeating: 0, count: layer.parameterCount)
                e[i] = 1
                diag[i] = try product(layer, Tensor(checkedShape: layer.weightShape, scalars: e)).scalars[i]
                progress?(i + 1, diag.count)
            }
            out[layer.name] = Tensor(checkedShape: layer.weightShape, scalars: diag)
        }
        return out
    }

    /// Row n of the k-th factor of the loss's output Hessian: √pₙₖ·(eₖ − pₙ)/√N, so that
    /// Σₖ hₖhₖᵀ = (diag(p) − ppᵀ)/N (the mean cross-entropy's, per example).
    func outputHessianFactor(_ k: Int) -> Tensor {
        let p = crossEntropy.probabilities
        let (n, c) = (p.shape[0], p.shape[1])
        let root = 1 / Float(n).squareRoot()
        var h = [Float](repeating: 0, count: n * c)
        for i in 0..<n {
            let s = p.scalars[i * c + k].squareRoot() * root
            for j in 0..<c { h[i * c + j] = -s * p.scalars[i * c + j] }
            h[i * c + k] += s
        }
        return Tensor(checkedShape: [n, c], scalars: h)
    }

    /// Per layer, per weight change in `changes[layer]`, per output channel c: Δ_cᵀ·G_cc·Δ_c, the
    /// exact Gauss–Newton block of channel c (all its weights' interactions through the layer's
    /// input, not just the diagonal) applied to that channel's part of the change. With Jₙ the
    /// logits' Jacobian and hₙₖ the output Hessian's factor rows, Δᵀ·G·Δ = Σₖ Σₙ (hₙₖᵀ·Jₙ·Δ)², and
    /// hₙₖᵀ·Jₙ·Δ_c = Σ_p δₙₖ[c, p]·ΔYₙ[c, p], with δₖ the k-th backward pass's gradient at the
    /// layer's output and ΔY the layer's output change (its convolution of the input with Δ):
    /// C backward passes shared by all layers and one convolution per change and class.
    /// Gauss–Newton networks only. Result: [layer name][change][channel].
    public func channelQuadraticForms(_ changes: [String: [Tensor]], progress: ((Int, Int) -> Void)? = nil) throws -> [String: [[Double]]] {
        guard usesGaussNewton else {
            throw MixedPrecisionError("per-channel Gauss–Newton forms need a piecewise-linear network (ReLU, pooling, batch norm)")
        }
        let layers = model.layers.filter { changes[$0.name] != nil }
        for name in changes.keys where model.layer(named: name) == nil { throw MixedPrecisionError("no layer '\(name)' in model '\(model.name)'") }
        let keep = Set(layers.map { model.nodes[$0.node].outputs[0] })
        let classes = crossEntropy.probabilities.shape[1]
        var out = Dictionary(uniqueKeysWithValues: layers.map { l in
            (l.name, Array(repeating: [Double](repeating: 0, count: l.weightShape[0]), count: changes[l.name]!.count))
        })
        for k in 0..<classes {
            let grads = try model.gradients(trace, outputGradient: outputHessianFactor(k), keeping: keep)
            for layer in layers {
                guard let delta = grads[model.nodes[layer.node].outputs[0]] else { continue }
                for (j, change) in changes[layer.name]!.enumerated() {
                    let dy = try model.outputChange(of: layer, trace: trace, weightChange: change)
                    let (n, channels) = (dy.shape[0], dy.shape[1]), positions = dy.count / max(1, n * channels)
                    dy.withUnsafeScalars { y in
                        delta.withUnsafeScalars { d in
                            for i in 0..<n {
                                for c in 0..<channels {
                                    let base = (i * channels + c) * positions
                                    var a = 0.0
                                    for q in base..<(base + positions) { a += Double(d[q]) * Double(y[q]) }
                                    out[layer.name]![j][c] += a * a
                                }
                            }
                        }
                    }
                }
            }
            progress?(k + 1, classes)
        }
        return out
    }

    /// Tr(H_ll), exactly.
    public func exactTrace(_ layer: Layer) throws -> Double {
        Self.sum(try exactDiagonals([layer])[layer.name]!)
    }

    /// The largest eigenvalue of H_ll by power iteration from a seeded normal vector, stopping
    /// after `iterations` or once the estimate changes by less than `tolerance` (relative).
    public func topEigenvalue(_ layer: Layer, iterations: Int = 30, tolerance: Double = 0, seed: UInt64 = 0) throws -> Double {
        var rng = RandomGenerator(seed: Self.seed(seed, layer.name) ^ 0x5EED)
        var v = Tensor(checkedShape: layer.weightShape, scalars: (0..<layer.parameterCount).map { _ in rng.normal() })
        v = Self.normalized(v)
        var eigenvalue = 0.0
        for i in 0..<max(1, iterations) {
            let hv = try product(layer, v)
            let next = Self.dot(v, hv)
            let norm = Self.dot(hv, hv).squareRoot()
            guard norm > 0 else { return 0 }
            v = Self.normalized(hv)
            if i > 0, tolerance > 0, abs(next - eigenvalue) / (abs(eigenvalue) + 1e-6) < tolerance { return next }
            eigenvalue = next
        }
        return eigenvalue
    }

    static func seed(_ seed: UInt64, _ name: String) -> UInt64 {
        // FNV-1a of the layer name, mixed with the seed.
        var h = FNV1a()
        h.bytes(name)
        return h.value ^ (seed &* 0x9E3779B97F4A7C15)
    }

    static func dot(_ a: Tensor, _ b: Tensor) -> Double {
        var s = 0.0
        for i in 0..<a.count { s += Double(a.scalars[i]) * Double(b.scalars[i]) }
        return s
    }

    static func sum(_ a: Tensor) -> Double { a.scalars.reduce(0.0) { $0 + Double($1) } }

    static func normalized(_ a: Tensor) -> Tensor {
        let n = Float(dot(a, a).squareRoot())
        return n > 0 ? a.map { $0 / n } : a
    }
}
