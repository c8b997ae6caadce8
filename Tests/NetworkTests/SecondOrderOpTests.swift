import Testing
import Network
import Tensors

/// One operator placed between two learned layers, for the Hessian-vector product check.
struct SecondOrderCase: CustomStringConvertible, Sendable {
    var label: String
    var op: Op
    var parameters: [(String, [Int])] = []
    /// Parameters drawn as |N(0,1)| + 0.5 (divisors).
    var positive = false
    var inputCopies = 1
    var description: String { label }
}

/// Each acts on the conv output [N, 2, 4, 4].
let secondOrderCases: [SecondOrderCase] = [
    SecondOrderCase(label: "sigmoid", op: .pointwise(.sigmoid)),
    SecondOrderCase(label: "tanh", op: .pointwise(.tanh)),
    SecondOrderCase(label: "gelu exact", op: .pointwise(.gelu(approximate: false))),
    SecondOrderCase(label: "gelu tanh", op: .pointwise(.gelu(approximate: true))),
    SecondOrderCase(label: "softplus", op: .pointwise(.softplus)),
    SecondOrderCase(label: "erf", op: .pointwise(.erf)),
    SecondOrderCase(label: "square", op: .pointwise(.power(2))),
    SecondOrderCase(label: "exp", op: .pointwise(.exp)),
    SecondOrderCase(label: "sub", op: .binary(.sub), parameters: [("b", [2, 1, 1])]),
    SecondOrderCase(label: "div by parameter", op: .binary(.div), parameters: [("d", [2, 1, 1])], positive: true),
    SecondOrderCase(label: "batched matmul", op: .matMul, parameters: [("w", [4, 3])]),
    SecondOrderCase(label: "concat with itself", op: .concat(axis: 1), inputCopies: 2),
    SecondOrderCase(label: "transpose", op: .transpose(perm: [0, 2, 3, 1])),
    SecondOrderCase(label: "slice", op: .slice(SliceAttributes(starts: [1], ends: [4], axes: [3], steps: [2]))),
    SecondOrderCase(label: "pad reflect", op: .pad(PadAttributes(pads: [0, 0, 1, 1, 0, 0, 1, 1], mode: .reflect))),
    SecondOrderCase(label: "resize linear", op: .resize(ResizeAttributes(scales: [1, 1, 1.5, 1.5], sizes: nil, mode: .linear,
                                                                         coordinates: .halfPixel, nearest: .roundPreferFloor))),
    SecondOrderCase(label: "reduce mean", op: .reduce(.mean, axes: [3], keepDims: false)),
    SecondOrderCase(label: "softmax over channels", op: .softmax(axis: 1)),
    SecondOrderCase(label: "softmax over the last axis", op: .softmax(axis: -1)),
    SecondOrderCase(label: "log softmax over channels", op: .logSoftmax(axis: 1)),
    SecondOrderCase(label: "layer norm", op: .layerNorm(axis: -1, epsilon: 1e-5), parameters: [("g", [4]), ("beta", [4])]),
    SecondOrderCase(label: "layer norm over channels and space", op: .layerNorm(axis: 1, epsilon: 1e-5), parameters: [("g", [32]), ("beta", [32])]),
    SecondOrderCase(label: "average pool ceil", op: .averagePool(PoolAttributes(kernel: [3, 3], strides: [2, 2], ceilMode: true))),
]

/// x → conv (learned) → the operator → flatten → gemm (learned) → cross-entropy: the exact
/// Hessian-vector product for all parameters against central differences of gradients (extrapolated;
/// 1e-2 of the largest entry, as `hessianVectorProductMatchesFiniteDifferences`).
/// The operator's own second derivative and its tangent/backward-tangent passes are all on
/// the path, since the conv before it has a tangent and the loss after it is curved.
@Test(arguments: secondOrderCases)
func hessianVectorProductsThroughOperators(_ c: SecondOrderCase) throws {
    var rng = RandomGenerator(seed: 7)
    func r(_ s: [Int], _ std: Float = 0.5) throws -> Tensor { try Tensor.random(s, .normal(mean: 0, std: std), using: &rng) }
    var params: [(String, Tensor)] = [("conv.w", try r([2, 2, 3, 3])), ("conv.b", try r([2]))]
    for (name, shape) in c.parameters { params.append((name, c.positive ? try r(shape, 1).map { abs($0) + 0.5 } : try r(shape, 1))) }
    let head = [
        Node(name: "conv", op: .conv(ConvAttributes(pads: [1, 1, 1, 1])), inputs: ["x", "conv.w", "conv.b"], outputs: ["conv.out"]),
        Node(name: "op", op: c.op, inputs: Array(repeating: "conv.out", count: c.inputCopies) + c.parameters.map(\.0), outputs: ["op.out"]),
        Node(name: "flat", op: .flatten(axis: 1), inputs: ["op.out"], outputs: ["f"]),
    ]
    let probe = try Model(name: "probe", nodes: head, input: "x", output: "f", inputShape: [2, 4, 4], parameters: params, buffers: [])
    let features = try probe.run(Tensor.zeros([1, 2, 4, 4])).output.shape[1]
    params += [("fc.w", try r([5, features], 0.4)), ("fc.b", try r([5]))]
    let m = try Model(name: c.label, nodes: head + [Node(name: "fc", op: .gemm(GemmAttributes(transB: true)), inputs: ["f", "fc.w", "fc.b"], outputs: ["y"])],
                      input: "x", output: "y", inputShape: [2, 4, 4], parameters: params, buffers: [])
    let x = try r([6, 2, 4, 4], 1)
    let labels = (0..<6).map { $0 % 5 }
    var v: [String: Tensor] = [:]
    for name in m.parameterOrder { v[name] = try r(m.parameters[name]!.shape, 1) }
    let (logits, trace) = try m.run(x, keepTrace: true)
    let ce = try CrossEntropy(logits: logits, labels: labels)
    let hv = try m.hessianVectorProduct(trace!, outputGradient: ce.gradient, lossGradientTangent: { ce.hessianProduct($0) },
                                        parameterTangents: v)
    func gradients(_ step: Float) throws -> [String: Tensor] {
        let s = m.copy()
        for name in m.parameterOrder { s.parameters[name] = try m.parameters[name]! + v[name]!.map { $0 * step } }
        let (l, t) = try s.run(x, keepTrace: true)
        return try s.gradients(t!, outputGradient: CrossEntropy(logits: l, labels: labels).gradient)
    }
    // Richardson: (4·D(h/2) − D(h))/3 cancels the h² term of the central difference D, which
    // a strongly curved case (the square) needs; h = 2e-3.
    let h: Float = 2e-3
    let steps = [try gradients(h), try gradients(-h), try gradients(h / 2), try gradients(-h / 2)]
    // A parameter whose products all vanish (a bias the softmax after it cannot see) is
    // measured against the largest product of any parameter: its finite difference is noise.
    let floor = try m.parameterOrder.map { name -> Float in
        guard let a = steps[2][name], let b = steps[3][name] else { return 0 }
        return try (a - b).scalars.map { abs($0) / h }.max() ?? 0
    }.max() ?? 0
    for name in m.parameterOrder {
        guard let g = steps.compactMap({ $0[name] }) as [Tensor]?, g.count == 4 else { Issue.record("\(c.label): no gradient for \(name)"); continue }
        guard let ours = hv[name] else { Issue.record("\(c.label): no product for \(name)"); continue }
        let wide = try (g[0] - g[1]).map { $0 / (2 * h) }, narrow = try (g[2] - g[3]).map { $0 / h }
        let fd = try (narrow.map { 4 * $0 } - wide).map { $0 / 3 }
        let scale = max(fd.scalars.map(abs).max()!, 1e-2 * floor) + 1e-3
        let err = zip(fd.scalars, ours.scalars).map { abs($0 - $1) }.max()!
        #expect(err <= 1e-2 * scale, "\(c.label): \(name): max error \(err) against finite differences (largest entry \(scale))")
    }
}

/// Operators whose second derivative is not implemented (LRN) are refused by name, with the
/// first-order metrics suggested, not silently given a wrong curvature.
@Test func secondOrderRefusesLRN() throws {
    for (op, params) in [(Op.lrn(LRNAttributes(size: 3)), [(String, [Int])]())] {
        var rng = RandomGenerator(seed: 1)
        let ps = try params.map { ($0.0, try Tensor.random($0.1, .normal(mean: 0, std: 1), using: &rng)) }
        let m = try Model(name: "n", nodes: [Node(name: "n", op: op, inputs: ["x"] + params.map(\.0), outputs: ["y"])],
                          input: "x", output: "y", inputShape: [2, 4, 4], parameters: ps, buffers: [])
        let (y, trace) = try m.run(Tensor.zeros([1, 2, 4, 4]), keepTrace: true)
        #expect(throws: NetworkError.self) {
            try m.hessianVectorProduct(trace!, outputGradient: y, lossGradientTangent: { $0 }, parameterTangents: [:])
        }
        do { _ = try m.hessianVectorProduct(trace!, outputGradient: y, lossGradientTangent: { $0 }, parameterTangents: [:]) }
        catch { #expect("\(error)".contains(op.onnxName) && "\(error)".contains("fisher")) }
    }
}
