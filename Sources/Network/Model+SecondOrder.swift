import Foundation
import Kernels
import Tensors
import Runtime

/// Second-order passes: tangents of every value, and exact Hessian-vector products by
/// differentiating the backward pass along a tangent (forward-over-reverse).
extension Model {
    /// Forward-mode pass keeping the tangent of every value it reaches (nil-free entries only),
    /// around the point recorded in `trace`.
    public func tangents(_ trace: Trace, parameterTangents: [String: Tensor], inputTangent: Tensor? = nil) throws -> [String: Tensor] {
        var tangents = parameterTangents
        if let inputTangent { tangents[input] = inputTangent }
        for (i, node) in nodes.enumerated() {
            let ts = node.inputs.map { tangents[$0] }
            if ts.allSatisfy({ $0 == nil }) { continue }
            try Interrupt.check()
            if let t = try node.tangent(node.inputs.map { traced(trace, $0) }, output: trace.values[node.outputs[0]]!,
                                        state: trace.states[i], tangents: ts) {
                tangents[node.outputs[0]] = t
            }
        }
        return tangents
    }

    func traced(_ trace: Trace, _ name: String) -> Tensor? {
        if name.isEmpty { return nil }
        return trace.values[name] ?? parameters[name] ?? buffers[name]
    }

    /// Whether every op is piecewise linear or affine in its inputs (ReLU, max pooling, conv,
    /// linear, add, pooling, reshapes, evaluation-mode batch norm). For such a network the
    /// output is linear in any single layer's weight, so that layer's diagonal Hessian block of
    /// a loss equals the Gauss–Newton block Jᵀ·H_loss·J exactly.
    public var isPiecewiseLinear: Bool {
        nodes.allSatisfy { node in
            switch node.op {
            case .conv, .gemm, .matMul, .add, .relu, .clip, .maxPool, .averagePool, .globalAveragePool,
                 .flatten, .reshape, .batchNorm, .identity:
                return true
            case .mul:
                // A product is bilinear: affine only when one side is a constant.
                return node.inputs.filter { parameters[$0] == nil && buffers[$0] == nil }.count <= 1
            case .softmax, .logSoftmax, .fakeQuantize, .learnedQuantize, .mixedQuantize, .gumbelQuantize, .binaryWeights, .binarize, .requantize, .layerNorm, .lrn:
                return false
            case .concat, .transpose, .slice, .pad, .gather, .expand, .unsqueeze, .squeeze, .resize, .reduce, .shape, .constantOfShape, .range, .where:
                return true
            case .pointwise(let f):
                return f.isPiecewiseLinear
            case .binary(let f):
                switch f {
                case .sub, .max, .min, .integerDiv, .mod, .equal: return true
                // Linear in the numerator or the input when the divisor or slope is a constant.
                case .div, .prelu: return node.inputs.count == 2 && (parameters[node.inputs[1]] != nil || buffers[node.inputs[1]] != nil)
                }
            }
        }
    }

    /// The op kinds a Hessian-vector product can differentiate twice.
    func checkSecondOrder() throws {
        for node in nodes {
            switch node.op {
            case .lrn:
                throw NetworkError("node '\(node.name)' (\(node.op.onnxName)): Hessian-vector products through it are not supported yet; use a first-order metric (sensitivity(m, data, metric: \"fisher\" or \"mse\"))")
            default: break
            }
        }
    }

    /// Hessian-vector product of a scalar loss of the output: given the loss's gradient g at the
    /// output and the tangent ġ of that gradient (the loss Hessian applied to the output's
    /// tangent — `lossGradientTangent` receives the output tangent and returns ġ), returns the
    /// tangent of every parameter gradient along `parameterTangents`: H·v for the parameters.
    /// Exact (second-order differentiation of the graph), not a finite difference.
    /// With `only`, just those parameters' components are computed (the reverse pass stops at
    /// the first node that reads one of them): a diagonal block's product costs less.
    public func hessianVectorProduct(_ trace: Trace, outputGradient g: Tensor,
                                     lossGradientTangent: (Tensor) throws -> Tensor,
                                     parameterTangents: [String: Tensor], only: Set<String>? = nil) throws -> [String: Tensor] {
        try checkSecondOrder()
        let t = try tangents(trace, parameterTangents: parameterTangents)
        let outputTangent = try t[output] ?? Tensor.zeros(trace.values[output]!.shape)
        let first = only.map { wanted in nodes.firstIndex { node in node.inputs.contains { wanted.contains($0) } } ?? nodes.count } ?? 0
        var grads: [String: Tensor] = [output: g]
        var gradTangents: [String: Tensor] = [output: try lossGradientTangent(outputTangent)]
        var result: [String: Tensor] = [:]
        for (i, node) in nodes.enumerated().reversed() where i >= first {
            guard let dy = grads[node.outputs[0]] else { continue }
            try Interrupt.check()
            let ins = node.inputs.map { traced(trace, $0) }
            let needs = node.inputs.map { name in parameters[name] != nil || (buffers[name] == nil && name != input && !name.isEmpty) }
            let ddy = gradTangents[node.outputs[0]]
            let dins = try node.backward(ins, output: trace.values[node.outputs[0]]!, state: trace.states[i], gradient: dy, needs: needs)
            let ddins = try node.backwardTangent(ins, output: trace.values[node.outputs[0]]!, tangents: node.inputs.map { t[$0] }, state: trace.states[i],
                                                 gradient: dy, gradientTangent: ddy, needs: needs)
            for (j, name) in node.inputs.enumerated() where needs[j] {
                if j < dins.count, let d = dins[j] { grads[name] = try grads[name].map { try $0 + d } ?? d }
                if j < ddins.count, let dd = ddins[j] {
                    if parameters[name] != nil {
                        if let only, !only.contains(name) { continue }
                        result[name] = try result[name].map { try $0 + dd } ?? dd
                    } else {
                        gradTangents[name] = try gradTangents[name].map { try $0 + dd } ?? dd
                    }
                }
            }
            if node.outputs[0] != output { grads[node.outputs[0]] = nil; gradTangents[node.outputs[0]] = nil }
        }
        return result
    }
}

extension Node {
    /// The tangent of this node's backward pass: how the input gradients change when the inputs
    /// move along `tangents` and the output gradient along `gradientTangent`.
    func backwardTangent(_ inputs: [Tensor?], output: Tensor, tangents t: [Tensor?], state: OpState?, gradient dy: Tensor,
                         gradientTangent ddy: Tensor?, needs: [Bool]) throws -> [Tensor?] {
        func at(_ i: Int) -> Tensor? { i < t.count ? t[i] : nil }
        func sum(_ a: Tensor?, _ b: Tensor?) throws -> Tensor? {
            guard let a else { return b }
            guard let b else { return a }
            return try a + b
        }
        // Terms linear in the output gradient: the ordinary backward pass of ġ.
        var out: [Tensor?] = Array(repeating: nil, count: inputs.count)
        if let ddy {
            out = try backward(inputs, output: output, state: state, gradient: ddy, needs: needs)
            out += Array(repeating: nil, count: max(0, inputs.count - out.count))
        }
        // Terms from inputs the backward pass reads multiplicatively.
        switch op {
        case .conv(let a):
            let (x, w) = (inputs[0]!, inputs[1]!)
            if let dx = at(0), needs[1] {
                out[1] = try sum(out[1], ConvOp.backward(dx, w, hasBias: false, a, dy, needInput: false).dw)
            }
            if let dw = at(1), needs[0] {
                out[0] = try sum(out[0], ConvOp.backward(x, dw, hasBias: false, a, dy, needInput: true).dx)
            }
        case .gemm(let a):
            if let da = at(0), needs[1] { out[1] = try sum(out[1], LinearOp.backward(da, inputs[1]!, nil, a, dy).1) }
            if let db = at(1), needs[0] { out[0] = try sum(out[0], LinearOp.backward(inputs[0]!, db, nil, a, dy).0) }
        case .matMul:
            if let da = at(0), needs[1] { out[1] = try sum(out[1], MatMulOp.backward(da, inputs[1]!, dy).1) }
            if let db = at(1), needs[0] { out[0] = try sum(out[0], MatMulOp.backward(inputs[0]!, db, dy).0) }
        case .mul:
            let (a, b) = (inputs[0]!, inputs[1]!)
            if let db = at(1), needs[0] { out[0] = try sum(out[0], (dy * db).summed(toShape: a.shape)) }
            if let da = at(0), needs[1] { out[1] = try sum(out[1], (dy * da).summed(toShape: b.shape)) }
        case .batchNorm(let eps, _):
            if case .batchStatistics? = state {
                throw NetworkError("node '\(name)': second derivatives through batch norm in training mode are not supported; use the model in eval mode")
            }
            let (x, s, m, v) = (inputs[0]!, inputs[1]!, inputs[3]!, inputs[4]!)
            let zeros = try Tensor.zeros(s.shape)
            // dγ = Σ dy·(x − μ)/σ moves with x; dx = dy·γ/σ moves with γ.
            if let dx = at(0), needs[1] {
                out[1] = try sum(out[1], BatchNormOp.backward(dx, scale: s, mean: zeros, variance: v, epsilon: eps, state: nil, dy).1)
            }
            if let ds = at(1), needs[0] {
                out[0] = try sum(out[0], BatchNormOp.backward(x, scale: ds, mean: m, variance: v, epsilon: eps, state: nil, dy).0)
            }
        case .softmax(let axis):
            if let dx = at(0), needs[0] {
                let yt = try PointwiseOp.softmaxBackward(output, dx, axis: axis)
                out[0] = try sum(out[0], PointwiseOp.softmaxSecond(output, dy, outputTangent: yt, axis: axis))
            }
        case .logSoftmax(let axis):
            // dX = dY − p·Σ dY with p = exp(y); moving x moves p by ṗ = p ⊙ (ẋ − Σ p⊙ẋ).
            if let dx = at(0), needs[0] {
                out[0] = try sum(out[0], PointwiseOp.logSoftmaxSecond(output, dy, inputTangent: dx, axis: axis))
            }
        case .layerNorm(let axis, let eps):
            let (gx, gg) = try LayerNormOp.backwardTangent(inputs[0]!, inputs[1]!, axis: axis, epsilon: eps, dy, dx: at(0), dg: at(1))
            if needs[0], let gx { out[0] = try sum(out[0], gx) }
            if needs.count > 1, needs[1], let gg { out[1] = try sum(out[1], gg) }
        case .learnedQuantize, .mixedQuantize, .gumbelQuantize, .binaryWeights, .requantize, .lrn:
            throw NetworkError("node '\(name)' (\(op.onnxName)): second derivatives through it are not supported")
        case .pointwise(let f):
            if let dx = at(0), needs[0] { out[0] = try sum(out[0], f.secondDerivative(inputs[0]!, dy, dx)) }
        case .binary(let f):
            let (ga, gb) = try f.backwardTangent(inputs[0]!, inputs[1]!, dy, at(0), at(1))
            if needs[0], let ga { out[0] = try sum(out[0], ga) }
            if needs[1], let gb { out[1] = try sum(out[1], gb) }
        case .add, .relu, .clip, .maxPool, .averagePool, .globalAveragePool, .flatten, .reshape, .identity, .fakeQuantize, .binarize,
             .concat, .transpose, .slice, .pad, .gather, .expand, .unsqueeze, .squeeze, .resize, .reduce, .shape, .constantOfShape, .range, .where:
            break // linear in dy with the input held at the traced point (masks are constant a.e.)
        }
        return out
    }
}

extension Model {
    /// The change of a layer's output when its weight changes by `change` (bias left out), on
    /// the input `trace` holds: the layer's convolution or product of that input with `change`.
    /// Output channel c depends only on channel c of the change.
    public func outputChange(of layer: Layer, trace: Trace, weightChange change: Tensor) throws -> Tensor {
        var node = nodes[layer.node]
        guard let x = traced(trace, node.inputs[0]) else { throw NetworkError("layer '\(layer.name)': its input is not in the trace") }
        guard change.shape == layer.weightShape else {
            throw NetworkError("layer '\(layer.name)': expected a weight change of shape \(layer.weightShape), found \(change.shape)")
        }
        node.inputs = Array(node.inputs.prefix(2))
        return try node.forward([x, change], training: false, keepState: false).output
    }

    /// Σₙ Σₖ (∂/∂W of output-gradient k of example n)², elementwise over a layer's weight: the
    /// exact diagonal of Σₙ Jₙᵀ·(Σₖ hₙₖhₙₖᵀ)·Jₙ when `outputGradients[k]` holds the rows hₙₖ.
    /// `layerOutputGradients[k]` is the gradient at the layer's output for the k-th backward
    /// pass; the layer's input is read from `trace`.
    public func squaredExampleGradients(of layer: Layer, trace: Trace, layerOutputGradients: [Tensor]) throws -> Tensor {
        let node = nodes[layer.node]
        guard let x = traced(trace, node.inputs[0]), let w = parameters[layer.weight] else {
            throw NetworkError("layer '\(layer.name)': its input is not in the trace")
        }
        var diag = [Float](repeating: 0, count: w.count)
        switch node.op {
        case .gemm(let a):
            guard x.rank == 2, !a.transA else { throw NetworkError("layer '\(layer.name)': expected a [N, features] input") }
            let (n, cin, cout) = (x.shape[0], x.shape[1], w.shape[0])
            // gₙ = α·δₙxₙᵀ, so Σₖ gₙₖ² = α²·(Σₖ δₙₖ²)·xₙ².
            var d = [Float](repeating: 0, count: n * cout)
            for g in layerOutputGradients {
                for i in 0..<(n * cout) { d[i] += g.scalars[i] * g.scalars[i] }
            }
            let x2 = x.scalars.map { $0 * $0 }
            let scale = a.alpha * a.alpha
            for i in 0..<n {
                for o in 0..<cout where d[i * cout + o] != 0 {
                    let f = d[i * cout + o] * scale
                    for j in 0..<cin { diag[o * cin + j] += f * x2[i * cin + j] }
                }
            }
        case .conv(let a):
            let g = ConvOp.geometry(x.shape, w.shape, a)
            let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
            let cout = w.shape[0], groups = a.groups, coutG = cout / groups, cg = c / groups
            let pixels = g.outputPixels, k = g.patchSize
            let workers = max(1, min(Parallel.defaultThreads, n))
            var partial = [[Float]](repeating: [Float](repeating: 0, count: w.count), count: workers)
            let cols = (0..<workers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: k * pixels) }
            let grads = (0..<workers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: coutG * k) }
            defer { cols.forEach { $0.deallocate() }; grads.forEach { $0.deallocate() } }
            let deltas = layerOutputGradients
            x.withUnsafeScalars { xp in
                partial.withUnsafeMutableBufferPointer { pp in
                    let base = pp.baseAddress!
                    Parallel.forEach(n, threads: workers) { img, worker in
                        base[worker].withUnsafeMutableBufferPointer { acc in
                            for grp in 0..<groups {
                                Im2col.im2col(xp.baseAddress! + (img * c + grp * cg) * h * wd, geometry: g, padding: 0, into: cols[worker])
                                for delta in deltas {
                                    delta.withUnsafeScalars { dp in
                                        SGEMM.multiply(m: coutG, n: k, k: pixels, a: dp.baseAddress! + (img * cout + grp * coutG) * pixels,
                                                       lda: pixels, b: cols[worker], ldb: pixels, transB: true,
                                                       c: grads[worker], ldc: k, threads: 1)
                                    }
                                    let out = acc.baseAddress! + grp * coutG * k
                                    for i in 0..<(coutG * k) { out[i] += grads[worker][i] * grads[worker][i] }
                                }
                            }
                        }
                    }
                }
            }
            diag = partial[0]
            for p in partial.dropFirst() { for i in 0..<diag.count { diag[i] += p[i] } }
        default:
            throw NetworkError("layer '\(layer.name)': expected a Conv or Gemm node, found \(node.op.onnxName)")
        }
        return Tensor(checkedShape: w.shape, scalars: diag)
    }
}
