import Testing
import Network
import Tensors

/// One node with random parameters, the check's unit.
struct OpCase: CustomStringConvertible, Sendable {
    var label: String
    var op: Op
    var input: [Int]                 // input example shape (batch 3 is prepended)
    var parameters: [(String, [Int])]
    var buffers: [(String, [Int])] = []
    var training = false
    /// Parameters drawn as |N(0,1)| + 0.5 (divisors, scales).
    var positive = false
    /// How many times the input feeds the node (concat of x with itself).
    var inputCopies = 1
    var description: String { label }
}

let opCases: [OpCase] = [
    OpCase(label: "conv 3x3 pad 1", op: .conv(ConvAttributes(pads: [1, 1, 1, 1])), input: [2, 5, 5],
           parameters: [("w", [3, 2, 3, 3]), ("b", [3])]),
    OpCase(label: "conv stride 2 dilation 2 groups 2", op: .conv(ConvAttributes(strides: [2, 2], pads: [2, 1, 2, 1], dilations: [2, 2], groups: 2)),
           input: [4, 7, 6], parameters: [("w", [4, 2, 3, 3])]),
    OpCase(label: "gemm transB", op: .gemm(GemmAttributes(alpha: 0.7, beta: 1.3, transB: true)), input: [5],
           parameters: [("w", [4, 5]), ("b", [4])]),
    OpCase(label: "matmul", op: .matMul, input: [5], parameters: [("w", [5, 3])]),
    OpCase(label: "add broadcast", op: .add, input: [2, 3, 3], parameters: [("b", [2, 1, 1])]),
    OpCase(label: "mul broadcast", op: .mul, input: [2, 3, 3], parameters: [("s", [2, 1, 1])]),
    OpCase(label: "relu", op: .relu, input: [2, 4, 4], parameters: []),
    OpCase(label: "clip", op: .clip(min: -0.5, max: 0.6), input: [2, 4, 4], parameters: []),
    OpCase(label: "maxpool 2", op: .maxPool(PoolAttributes(kernel: [2, 2])), input: [2, 5, 5], parameters: []),
    OpCase(label: "maxpool 2 s2, rows of 10", op: .maxPool(PoolAttributes(kernel: [2, 2], strides: [2, 2])), input: [2, 4, 21], parameters: []),
    OpCase(label: "maxpool 3 s2 p1", op: .maxPool(PoolAttributes(kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1])),
           input: [2, 6, 6], parameters: []),
    OpCase(label: "avgpool 3 s2 p1", op: .averagePool(PoolAttributes(kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1])),
           input: [2, 6, 6], parameters: []),
    OpCase(label: "global average pool", op: .globalAveragePool, input: [3, 4, 4], parameters: []),
    OpCase(label: "flatten", op: .flatten(axis: 1), input: [2, 3, 3], parameters: []),
    OpCase(label: "reshape", op: .reshape(shape: [0, -1, 2]), input: [2, 3, 2], parameters: []),
    OpCase(label: "softmax", op: .softmax(axis: -1), input: [6], parameters: []),
    OpCase(label: "log softmax", op: .logSoftmax(axis: 1), input: [4, 3], parameters: []),
    OpCase(label: "batchnorm eval", op: .batchNorm(epsilon: 1e-5, momentum: 0.1), input: [3, 4, 4],
           parameters: [("g", [3]), ("beta", [3])], buffers: [("mean", [3]), ("var", [3])]),
    OpCase(label: "batchnorm train", op: .batchNorm(epsilon: 1e-5, momentum: 0.1), input: [3, 4, 4],
           parameters: [("g", [3]), ("beta", [3])], buffers: [("mean", [3]), ("var", [3])], training: true),
    // The operators imported from ONNX models beyond the classic CNN set.
    OpCase(label: "sigmoid", op: .pointwise(.sigmoid), input: [2, 3, 3], parameters: []),
    OpCase(label: "tanh", op: .pointwise(.tanh), input: [2, 3, 3], parameters: []),
    OpCase(label: "hard swish", op: .pointwise(.hardSwish), input: [2, 3, 3], parameters: []),
    OpCase(label: "hard sigmoid", op: .pointwise(.hardSigmoid(alpha: 0.2, beta: 0.5)), input: [2, 3, 3], parameters: []),
    OpCase(label: "gelu exact", op: .pointwise(.gelu(approximate: false)), input: [2, 3, 3], parameters: []),
    OpCase(label: "gelu tanh", op: .pointwise(.gelu(approximate: true)), input: [2, 3, 3], parameters: []),
    OpCase(label: "elu", op: .pointwise(.elu(alpha: 0.7)), input: [2, 3, 3], parameters: []),
    OpCase(label: "leaky relu", op: .pointwise(.leakyRelu(alpha: 0.1)), input: [2, 3, 3], parameters: []),
    OpCase(label: "softplus", op: .pointwise(.softplus), input: [2, 3, 3], parameters: []),
    OpCase(label: "selu", op: .pointwise(.selu(alpha: 1.6733, gamma: 1.0507)), input: [2, 3, 3], parameters: []),
    OpCase(label: "shrink", op: .pointwise(.shrink(lambda: 0.3, bias: 0.1)), input: [2, 3, 3], parameters: []),
    OpCase(label: "erf", op: .pointwise(.erf), input: [2, 3, 3], parameters: []),
    OpCase(label: "square", op: .pointwise(.power(2)), input: [2, 3, 3], parameters: []),
    OpCase(label: "sub broadcast", op: .binary(.sub), input: [2, 3, 3], parameters: [("b", [2, 1, 1])]),
    OpCase(label: "div broadcast", op: .binary(.div), input: [2, 3, 3], parameters: [("d", [2, 1, 1])], positive: true),
    OpCase(label: "prelu", op: .binary(.prelu), input: [2, 3, 3], parameters: [("slope", [2, 1, 1])]),
    OpCase(label: "batched matmul", op: .matMul, input: [2, 3, 4], parameters: [("w", [2, 4, 5])]),
    OpCase(label: "concat", op: .concat(axis: 2), input: [2, 3, 3], parameters: [], inputCopies: 2),
    OpCase(label: "transpose", op: .transpose(perm: [0, 3, 1, 2]), input: [2, 3, 4], parameters: []),
    OpCase(label: "slice step 2", op: .slice(SliceAttributes(starts: [1, -1], ends: [5, -100], axes: [2, 3], steps: [2, -2])),
           input: [2, 5, 5], parameters: []),
    OpCase(label: "split part", op: .slice(.part(1, of: 2, axis: 1)), input: [4, 3, 3], parameters: []),
    OpCase(label: "pad constant", op: .pad(PadAttributes(pads: [0, 0, 1, 2, 0, 0, 2, 1], value: 0.5)), input: [2, 3, 3], parameters: []),
    OpCase(label: "pad reflect", op: .pad(PadAttributes(pads: [0, 0, 2, 1, 0, 0, 1, 2], mode: .reflect)), input: [2, 4, 4], parameters: []),
    OpCase(label: "pad edge", op: .pad(PadAttributes(pads: [0, 0, 1, 1, 0, 0, 2, 2], mode: .edge)), input: [2, 3, 3], parameters: []),
    OpCase(label: "gather", op: .gather(axis: 2, indices: [2, 0, 2, -1], indexShape: [2, 2]), input: [2, 3, 3], parameters: []),
    OpCase(label: "expand", op: .expand(shape: [3, 2, 3, 4]), input: [2, 1, 4], parameters: []),
    OpCase(label: "resize nearest", op: .resize(ResizeAttributes(scales: [1, 1, 2, 2], sizes: nil, mode: .nearest,
                                                                 coordinates: .asymmetric, nearest: .floor)),
           input: [2, 3, 3], parameters: []),
    OpCase(label: "resize linear", op: .resize(ResizeAttributes(scales: [1, 1, 1.5, 2], sizes: nil, mode: .linear,
                                                                coordinates: .halfPixel, nearest: .roundPreferFloor)),
           input: [2, 4, 3], parameters: []),
    OpCase(label: "reduce mean", op: .reduce(.mean, axes: [2, 3], keepDims: true), input: [2, 3, 4], parameters: []),
    OpCase(label: "reduce sum", op: .reduce(.sum, axes: [1], keepDims: false), input: [2, 3, 4], parameters: []),
    OpCase(label: "layer norm", op: .layerNorm(axis: -1, epsilon: 1e-5), input: [3, 6],
           parameters: [("g", [6]), ("b", [6])]),
    OpCase(label: "lrn", op: .lrn(LRNAttributes(size: 3, alpha: 0.5, beta: 0.75, bias: 1)), input: [4, 3, 3], parameters: []),
    OpCase(label: "avgpool ceil", op: .averagePool(PoolAttributes(kernel: [3, 3], strides: [2, 2], ceilMode: true)),
           input: [2, 6, 6], parameters: []),
    OpCase(label: "maxpool ceil", op: .maxPool(PoolAttributes(kernel: [2, 2], strides: [2, 2], ceilMode: true)),
           input: [2, 5, 5], parameters: []),
]

/// L = Σ y ⊙ R for a fixed random R: dL/dy = R, so backward(R) must match finite differences
/// of L. Central differences with h = 1e-2 in Float32: error O(h²·f''') + O(u·|L|/h) ≈ 1e-3
/// relative here, so the check allows 1e-2 relative (plus 1e-3 absolute for tiny gradients).
/// Inputs are kept away from ReLU/clip/max-pool kinks by construction (well-separated values).
@Test(arguments: opCases)
func gradientsMatchFiniteDifferences(_ c: OpCase) throws {
    var rng = RandomGenerator(seed: 5)
    var params: [(String, Tensor)] = try c.parameters.map { ($0.0, try Tensor.random($0.1, .normal(mean: 0, std: 1), using: &rng)) }
    if case .batchNorm = c.op { params = params.map { ($0.0, $0.0 == "g" ? $0.1.map { abs($0) + 0.5 } : $0.1) } }
    if c.positive { params = params.map { ($0.0, $0.1.map { abs($0) + 0.5 }) } }
    let bufs: [(String, Tensor)] = try c.buffers.map { ($0.0, $0.0 == "var"
        ? try Tensor.random($0.1, .uniform(low: 0.5, high: 2), using: &rng) : try Tensor.random($0.1, .normal(mean: 0, std: 1), using: &rng)) }
    let node = Node(name: c.label, op: c.op, inputs: Array(repeating: "x", count: c.inputCopies) + c.parameters.map(\.0) + c.buffers.map(\.0), outputs: ["y"])
    let model = try Model(name: c.label, nodes: [node], input: "x", output: "y", inputShape: c.input,
                          parameters: params, buffers: bufs)
    // Distinct values spaced ≥ 0.05 apart, shuffled: no two inputs of a max or a kink coincide.
    let n = 3 * c.input.reduce(1, *)
    var values = (0..<n).map { Float($0) * 0.05 - Float(n) * 0.025 + 0.013 }
    for i in stride(from: n - 1, to: 0, by: -1) { values.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
    let x = try Tensor(shape: [3] + c.input, scalars: values)
    let frozen = model.buffers
    func loss(_ m: Model, _ x: Tensor, _ r: Tensor) throws -> Double {
        m.buffers = frozen
        let y = try m.run(x, training: c.training).output
        return zip(y.scalars, r.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }
    let (y, trace) = try model.run(x, training: c.training, keepTrace: true)
    let r = try Tensor.random(y.shape, .normal(mean: 0, std: 1), using: &rng)
    let grads = try model.gradients(trace!, outputGradient: r, inputGradient: true)
    let h: Float = 1e-2
    func check(_ name: String, _ analytic: Tensor, perturb: (Int, Float) throws -> Double) throws {
        for i in 0..<analytic.count {
            let numeric = (try perturb(i, h) - perturb(i, -h)) / Double(2 * h)
            let a = Double(analytic.scalars[i])
            #expect(abs(a - numeric) <= 1e-2 * max(abs(a), abs(numeric)) + 1e-3, "\(c.label): d/d\(name)[\(i)] = \(a), numeric \(numeric)")
        }
    }
    try check("x", grads["x"]!) { i, d in
        var xp = x; try xp.setValue(x.scalars[i] + d, at: try index(i, x.shape)); return try loss(model, xp, r)
    }
    for (name, p) in params {
        try check(name, grads[name]!) { i, d in
            let saved = model.parameters[name]!
            var q = p; try q.setValue(p.scalars[i] + d, at: try index(i, p.shape))
            model.parameters[name] = q
            defer { model.parameters[name] = saved }
            return try loss(model, x, r)
        }
    }
    // Tangents: ⟨J·v, R⟩ must equal ⟨v, Jᵀ·R⟩ (the backward pass) for random v — but batch norm
    // in training mode has no tangent pass, by design.
    guard !c.training else { return }
    let v = try Tensor.random(x.shape, .normal(mean: 0, std: 1), using: &rng)
    let pv = try Dictionary(uniqueKeysWithValues: params.map { ($0.0, try Tensor.random($0.1.shape, .normal(mean: 0, std: 1), using: &rng)) })
    model.buffers = frozen
    let (_, trace2) = try model.run(x, keepTrace: true)
    let jv = try model.tangent(trace2!, parameterTangents: pv, inputTangent: v)
    let lhs = zip(jv.scalars, r.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    var rhs = zip(v.scalars, grads["x"]!.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    for (name, t) in pv { rhs += zip(t.scalars, grads[name]!.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }
    #expect(abs(lhs - rhs) <= 1e-3 * max(1, abs(lhs)), "\(c.label): ⟨Jv, R⟩ = \(lhs), ⟨v, JᵀR⟩ = \(rhs)")
}

func index(_ flat: Int, _ shape: [Int]) throws -> [Int] {
    var rest = flat
    return Tensor.strides(of: shape).map { s in defer { rest %= s }; return rest / s }
}

@Test func crossEntropyGradientMatchesFiniteDifferences() throws {
    var rng = RandomGenerator(seed: 2)
    let logits = try Tensor.random([4, 5], .normal(mean: 0, std: 2), using: &rng)
    let labels = [0, 3, 4, 1]
    let (_, g) = try CrossEntropy.lossAndGradient(logits: logits, labels: labels)
    for i in 0..<logits.count {
        var up = logits, down = logits
        try up.setValue(logits.scalars[i] + 1e-2, at: try index(i, logits.shape))
        try down.setValue(logits.scalars[i] - 1e-2, at: try index(i, logits.shape))
        let numeric = (try CrossEntropy.lossAndGradient(logits: up, labels: labels).loss
                       - CrossEntropy.lossAndGradient(logits: down, labels: labels).loss) / 2e-2
        #expect(abs(numeric - Double(g.scalars[i])) < 1e-3)
    }
}

/// Distillation's loss is zero when the student's logits equal the teacher's, positive otherwise,
/// and its gradient matches central differences at T = 1 and T = 4.
@Test func distillationGradientMatchesCentralDifferences() throws {
    var rng = RandomGenerator(seed: 21)
    let s = try Tensor.random([3, 5], .normal(mean: 0, std: 2), using: &rng), t = try Tensor.random([3, 5], .normal(mean: 0, std: 2), using: &rng)
    #expect(abs(try Distillation.lossAndGradient(student: t, teacher: t, temperature: 2).loss) < 1e-9)
    for temperature in [1.0, 4.0] {
        let (loss, g) = try Distillation.lossAndGradient(student: s, teacher: t, temperature: temperature)
        #expect(loss > 0)
        for i in 0..<s.count {
            var (up, down) = (s, s)
            up.withUnsafeMutableScalars { $0[i] += 1e-2 }
            down.withUnsafeMutableScalars { $0[i] -= 1e-2 }
            let fd = (try Distillation.lossAndGradient(student: up, teacher: t, temperature: temperature).loss
                      - Distillation.lossAndGradient(student: down, teacher: t, temperature: temperature).loss) / 2e-2
            #expect(abs(fd - Double(g.scalars[i])) <= 1e-3 + 1e-2 * abs(fd), "T \(temperature), element \(i): \(g.scalars[i]) vs \(fd)")
        }
    }
    #expect(throws: NetworkError.self) { try Distillation.lossAndGradient(student: s, teacher: try Tensor.zeros([3, 4]), temperature: 1) }
}
