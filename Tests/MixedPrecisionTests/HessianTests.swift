import Foundation
import Testing
import TestSupport
import MixedPrecision
import Network
import Tensors

/// A small network with every op kind the zoo uses: conv, eval-mode batch norm, ReLU, max
/// pooling, a residual add, global pooling, a linear layer. `bilinear` adds a product of two
/// activations, which makes the network not piecewise linear (the Gauss–Newton form no longer
/// equals the Hessian block and the general product must be used).
/// `smooth` replaces ReLU by identity and max pooling by average pooling, so finite
/// differences never straddle a kink.
func tinyNetwork(bilinear: Bool = false, smooth: Bool = false, seed: UInt64 = 3) throws -> Model {
    var rng = RandomGenerator(seed: seed)
    func r(_ s: [Int], _ std: Float = 0.5) throws -> Tensor { try Tensor.random(s, .normal(mean: 0, std: std), using: &rng) }
    var nodes = [
        Node(name: "conv1", op: .conv(ConvAttributes(pads: [1, 1, 1, 1])), inputs: ["x", "conv1.weight", "conv1.bias"], outputs: ["c1"]),
        Node(name: "bn1", op: .batchNorm(epsilon: 1e-5, momentum: 0.1), inputs: ["c1", "bn.g", "bn.b", "bn.m", "bn.v"], outputs: ["b1"]),
        Node(name: "relu1", op: smooth ? .identity : .relu, inputs: ["b1"], outputs: ["r1"]),
        Node(name: "conv2", op: .conv(ConvAttributes(pads: [1, 1, 1, 1])), inputs: ["r1", "conv2.weight"], outputs: ["c2"]),
        Node(name: "add", op: .add, inputs: ["c2", "r1"], outputs: ["s"]),
        Node(name: "relu2", op: smooth ? .identity : .relu, inputs: ["s"], outputs: ["r2"]),
        Node(name: "pool", op: smooth ? .averagePool(PoolAttributes(kernel: [2, 2])) : .maxPool(PoolAttributes(kernel: [2, 2])), inputs: ["r2"], outputs: ["p"]),
        Node(name: "flat", op: .flatten(axis: 1), inputs: ["p"], outputs: ["f"]),
    ]
    var last = "f"
    if bilinear {
        nodes.append(Node(name: "square", op: .mul, inputs: ["f", "f"], outputs: ["sq"]))
        last = "sq"
    }
    nodes.append(Node(name: "fc", op: .gemm(GemmAttributes(transB: true)), inputs: [last, "fc.weight", "fc.bias"], outputs: ["y"]))
    return try Model(name: "tiny", nodes: nodes, input: "x", output: "y", inputShape: [2, 6, 6],
                     parameters: [("conv1.weight", try r([4, 2, 3, 3])), ("conv1.bias", try r([4])),
                                  ("bn.g", try r([4]).map { 1 + $0 * 0.2 }), ("bn.b", try r([4])),
                                  ("conv2.weight", try r([4, 4, 3, 3], 0.3)), ("fc.weight", try r([5, 36], 0.4)), ("fc.bias", try r([5]))],
                     buffers: [("bn.m", try r([4], 0.1)), ("bn.v", try r([4]).map { 0.5 + $0 * $0 })])
}

func tinyBatch(seed: UInt64 = 9) throws -> (Tensor, [Int]) {
    var rng = RandomGenerator(seed: seed)
    let x = try Tensor.random([7, 2, 6, 6], .normal(mean: 0, std: 1), using: &rng)
    return (x, (0..<7).map { $0 % 5 })
}

/// The gradient of the mean cross-entropy with respect to every parameter, in a fresh pass.
func lossGradients(_ m: Model, _ x: Tensor, _ labels: [Int]) throws -> [String: Tensor] {
    let (logits, trace) = try m.run(x, keepTrace: true)
    return try m.gradients(trace!, outputGradient: CrossEntropy(logits: logits, labels: labels).gradient)
}

/// H·v for all parameters at once, against central differences of gradients:
/// (g(θ + hv) − g(θ − hv))/2h, on the smooth variant of the network (a difference across a ReLU
/// or max-pool kink measures the jump, not the derivative; the kinks' own rule — the mask is
/// held — is checked against the Gauss–Newton form below). With h = 1e-2 in Float32 the
/// difference is accurate to about 1e-3 relative; the check allows 1e-2 of the largest entry.
/// Every parameter moves at once, so cross-layer blocks are covered.
@Test(arguments: [false, true])
func hessianVectorProductMatchesFiniteDifferences(bilinear: Bool) throws {
    let m = try tinyNetwork(bilinear: bilinear, smooth: true)
    let (x, labels) = try tinyBatch()
    var rng = RandomGenerator(seed: 11)
    var v: [String: Tensor] = [:]
    for name in m.parameterOrder { v[name] = try Tensor.random(m.parameters[name]!.shape, .normal(mean: 0, std: 1), using: &rng) }
    let (logits, trace) = try m.run(x, keepTrace: true)
    let ce = try CrossEntropy(logits: logits, labels: labels)
    let hv = try m.hessianVectorProduct(trace!, outputGradient: ce.gradient, lossGradientTangent: { ce.hessianProduct($0) },
                                        parameterTangents: v)
    let h: Float = 2e-3
    func shifted(_ sign: Float) throws -> [String: Tensor] {
        let c = m.copy()
        for name in m.parameterOrder { c.parameters[name] = try m.parameters[name]! + v[name]!.map { $0 * h * sign } }
        return try lossGradients(c, x, labels)
    }
    let (plus, minus) = (try shifted(1), try shifted(-1))
    for name in m.parameterOrder {
        let fd = try (plus[name]! - minus[name]!).map { $0 / (2 * h) }
        let ours = try #require(hv[name], "no product for \(name)")
        let scale = fd.scalars.map(abs).max()! + 1e-3
        let err = zip(fd.scalars, ours.scalars).map { abs($0 - $1) }.max()!
        #expect(err <= 1e-2 * scale, "\(name): max error \(err) against finite differences (largest entry \(scale))")
    }
}

/// On a piecewise-linear network the diagonal block equals the Gauss–Newton block: the analysis
/// (which uses the Gauss–Newton form there) and the general product agree to rounding, and
/// the exact diagonal from per-example gradients equals the diagonal of unit-vector products.
@Test func gaussNewtonBlocksEqualHessianBlocksOnPiecewiseLinearNetworks() throws {
    let m = try tinyNetwork()
    #expect(m.isPiecewiseLinear)
    #expect(try !tinyNetwork(bilinear: true).isPiecewiseLinear)
    let (x, labels) = try tinyBatch()
    let analysis = try HessianAnalysis(model: m, images: x, labels: labels)
    #expect(analysis.usesGaussNewton)
    let (logits, trace) = try m.run(x, keepTrace: true)
    let ce = try CrossEntropy(logits: logits, labels: labels)
    var rng = RandomGenerator(seed: 2)
    let diagonals = try analysis.exactDiagonals()
    for layer in m.layers {
        let v = try Tensor.random(layer.weightShape, .normal(mean: 0, std: 1), using: &rng)
        let general = try m.hessianVectorProduct(trace!, outputGradient: ce.gradient, lossGradientTangent: { ce.hessianProduct($0) },
                                                 parameterTangents: [layer.weight: v])[layer.weight]!
        let gn = try analysis.product(layer, v)
        let scale = general.scalars.map(abs).max()!
        #expect(zip(general.scalars, gn.scalars).allSatisfy { abs($0 - $1) <= 1e-4 * scale + 1e-7 }, "\(layer.name)")
        // vᵀHv from the forward-only quadratic form equals vᵀ(Hv).
        let q = try analysis.quadraticForm(layer, v)
        let vhv = zip(v.scalars, gn.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        #expect(abs(q - vhv) <= 1e-4 * abs(vhv) + 1e-7, "\(layer.name): quadratic form \(q) vs \(vhv)")
        // Diagonal: unit vectors through the general product.
        var diag = [Float](repeating: 0, count: layer.parameterCount)
        for i in diag.indices {
            var e = [Float](repeating: 0, count: layer.parameterCount); e[i] = 1
            diag[i] = try m.hessianVectorProduct(trace!, outputGradient: ce.gradient, lossGradientTangent: { ce.hessianProduct($0) },
                                                 parameterTangents: [layer.weight: Tensor(shape: layer.weightShape, scalars: e)])[layer.weight]!.scalars[i]
        }
        let ours = diagonals[layer.name]!.scalars
        let big = diag.map(abs).max()!
        #expect(zip(diag, ours).allSatisfy { abs($0 - $1) <= 1e-4 * big + 1e-7 }, "\(layer.name): exact diagonal")
    }
}

/// Not piecewise linear: the exact diagonal falls back to unit-vector products, and Hutchinson's
/// mean approaches the exact trace (within 4 standard errors, 400 samples).
@Test func hutchinsonAgreesWithTheExactTraceOnANonlinearNetwork() throws {
    let m = try tinyNetwork(bilinear: true)
    let (x, labels) = try tinyBatch()
    let analysis = try HessianAnalysis(model: m, images: x, labels: labels)
    #expect(!analysis.usesGaussNewton)
    for layer in m.layers {
        let exact = try analysis.exactTrace(layer)
        let est = try analysis.hutchinson(layer, samples: 400, tolerance: 0, seed: 1)
        #expect(est.samples == 400)
        #expect(abs(est.mean - exact) <= 4 * est.standardError + 1e-9, "\(layer.name): \(est.mean) ± \(est.standardError) vs exact \(exact)")
        // The same seed gives the same estimate.
        #expect(try analysis.hutchinson(layer, samples: 20, tolerance: 0, seed: 1).mean == analysis.hutchinson(layer, samples: 20, tolerance: 0, seed: 1).mean)
    }
}

/// One product for all layers (PyHessian's sample): with v on one layer alone it is that
/// layer's quadratic form; with Rademacher v on every layer, the per-layer means over 400
/// samples approach the exact traces (within 4 standard errors) — on both the Gauss–Newton
/// route and the general second-order one.
@Test(arguments: [false, true])
func blockQuadraticFormsEstimateEveryTraceAtOnce(bilinear: Bool) throws {
    let m = try tinyNetwork(bilinear: bilinear)
    let (x, labels) = try tinyBatch()
    let analysis = try HessianAnalysis(model: m, images: x, labels: labels)
    var rng = RandomGenerator(seed: 4)
    func rademacher(_ l: Layer) -> Tensor { Tensor(checkedShape: l.weightShape, scalars: (0..<l.parameterCount).map { _ in rng.rademacher() }) }
    for layer in m.layers {
        let v = rademacher(layer)
        let alone = try analysis.blockQuadraticForms([layer.name: v])[layer.name]!
        let q = try analysis.quadraticForm(layer, v)
        #expect(abs(alone - q) <= 1e-4 * max(1, abs(q)), "\(layer.name): \(alone) vs \(q)")
    }
    var sums = [String: (Double, Double)]()
    let n = 400
    for _ in 0..<n {
        for (name, f) in try analysis.blockQuadraticForms(Dictionary(uniqueKeysWithValues: m.layers.map { ($0.name, rademacher($0)) })) {
            let (s, s2) = sums[name] ?? (0, 0)
            sums[name] = (s + f, s2 + f * f)
        }
    }
    for layer in m.layers {
        let (s, s2) = sums[layer.name]!
        let mean = s / Double(n), se = ((s2 / Double(n) - mean * mean) / Double(n - 1)).squareRoot()
        let exact = try analysis.exactTrace(layer)
        #expect(abs(mean - exact) <= 4 * se + 1e-9, "\(layer.name): \(mean) ± \(se) vs exact \(exact)")
    }
}

/// ../shared/reference `hessian_unfolded` for the MLP and the CNN: exact traces within 1e-3
/// relative, Hutchinson means within 3 combined standard errors, top eigenvalues within 2%.
@Test(arguments: ["mlp", "cnn"])
func hessianMatchesReference(_ name: String) throws {
    let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(referenceDirectory)/fmnist_\(name).json"))) as! [String: Any]
    let figures = json["hessian_unfolded"] as! [String: Any]
    let model = try Zoo.make(name)
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_\(name).npz")
    let batch = try FashionMNIST.load(.train, limit: 256)
    let analysis = try HessianAnalysis(model: model, data: batch)
    #expect(abs(analysis.loss - (figures["_loss"] as! Double)) <= 1e-4, "loss \(analysis.loss)")
    let exact = try analysis.exactDiagonals()
    for layer in model.layers {
        let ref = figures[layer.name] as! [String: Any]
        let trace = exact[layer.name]!.scalars.reduce(0.0) { $0 + Double($1) }
        if let expected = ref["trace_exact"] as? Double {
            #expect(abs(trace - expected) <= 1e-3 * expected, "\(name) \(layer.name): exact trace \(trace) vs \(expected)")
        }
        let hutch = try analysis.hutchinson(layer, samples: ref["trace_hutch_samples"] as! Int, tolerance: 0, seed: 7)
        let (mean, se) = (ref["trace_hutch_mean"] as! Double, ref["trace_hutch_stderr"] as! Double)
        let combined = (se * se + hutch.standardError * hutch.standardError).squareRoot()
        #expect(abs(hutch.mean - mean) <= 3 * combined, "\(name) \(layer.name): Hutchinson \(hutch.mean) ± \(hutch.standardError) vs \(mean) ± \(se)")
        // The exact trace lies within the reference's Hutchinson interval too (4 standard errors).
        #expect(abs(trace - mean) <= 4 * se, "\(name) \(layer.name): exact trace \(trace) vs reference Hutchinson \(mean) ± \(se)")
        let eig = try analysis.topEigenvalue(layer, iterations: ref["top_eig_iters"] as! Int, seed: 3)
        let expectedEig = ref["top_eig"] as! Double
        #expect(abs(eig - expectedEig) <= 0.02 * expectedEig, "\(name) \(layer.name): top eigenvalue \(eig) vs \(expectedEig)")
    }
}

/// Past `traceChunk` images the traces are taken chunk by chunk (memory of one chunk) and
/// combined as the mean loss's Hessian is: the result equals one analysis of the whole batch.
@Test func chunkedTracesEqualOneBatch() throws {
    let model = try Zoo.make("mlp")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_mlp.npz")
    let data = try FashionMNIST.load(.train, limit: HessianAnalysis.traceChunk + 88)
    let whole = try HessianAnalysis(model: model, data: data).exactDiagonals()
    var steps: [(Int, Int)] = []
    let chunked = try HessianAnalysis.traces(model: model, data: data, method: .exact, progress: { steps.append(($0, $1)) })
    for layer in model.layers {
        let trace = whole[layer.name]!.scalars.reduce(0.0) { $0 + Double($1) }
        #expect(abs(chunked[layer.name]!.mean - trace) <= 1e-4 * trace, "\(layer.name): chunked \(chunked[layer.name]!.mean) vs whole \(trace)")
    }
    #expect(steps.last.map { $0.0 == $0.1 } == true)
    #expect(throws: (any Error).self) { try HessianAnalysis.traces(model: model, data: try FashionMNIST.load(.train, limit: 0), method: .exact) }
}

/// The per-channel Gauss–Newton forms (kernel-wise objective) equal the quadratic form of the
/// change restricted to that channel, vᵀ·H·v with v zero outside channel c, on every layer of
/// the tiny network (conv and linear), for two changes at once.
@Test func channelFormsEqualQuadraticFormsOfOneChannel() throws {
    let m = try tinyNetwork()
    let (x, labels) = try tinyBatch()
    let analysis = try HessianAnalysis(model: m, images: x, labels: labels)
    var rng = RandomGenerator(seed: 5)
    var changes: [String: [Tensor]] = [:]
    for layer in m.layers {
        changes[layer.name] = try (0..<2).map { _ in try Tensor.random(layer.weightShape, .normal(mean: 0, std: 1), using: &rng) }
    }
    let forms = try analysis.channelQuadraticForms(changes)
    for layer in m.layers {
        let channels = layer.weightShape[0], per = layer.parameterCount / channels
        for (j, change) in changes[layer.name]!.enumerated() {
            for c in 0..<channels {
                var v = [Float](repeating: 0, count: layer.parameterCount)
                for i in (c * per)..<((c + 1) * per) { v[i] = change.scalars[i] }
                let q = try analysis.quadraticForm(layer, Tensor(checkedShape: layer.weightShape, scalars: v))
                #expect(abs(forms[layer.name]![j][c] - q) <= 1e-4 * abs(q) + 1e-9, "\(layer.name)[\(c)] change \(j): \(forms[layer.name]![j][c]) vs \(q)")
            }
        }
    }
    #expect(throws: MixedPrecisionError.self) { try analysis.channelQuadraticForms(["nope": []]) }
    #expect(throws: MixedPrecisionError.self) { try HessianAnalysis(model: try tinyNetwork(bilinear: true), images: x, labels: labels).channelQuadraticForms([:]) }
}
