import Tensors

/// A convolution's attributes, ONNX-style (pads: top, left, bottom, right).
public struct ConvAttributes: Codable, Equatable, Sendable {
    public var strides: [Int] = [1, 1]
    public var pads: [Int] = [0, 0, 0, 0]
    public var dilations: [Int] = [1, 1]
    public var groups: Int = 1
    public init(strides: [Int] = [1, 1], pads: [Int] = [0, 0, 0, 0], dilations: [Int] = [1, 1], groups: Int = 1) {
        self.strides = strides; self.pads = pads; self.dilations = dilations; self.groups = groups
    }
}

/// Pooling attributes. With `ceilMode` the output size rounds up (a last window may hang over
/// the padded input; it must start inside the input or the leading padding, as ONNX and
/// PyTorch say), and an average counts only what lies inside the padded input.
public struct PoolAttributes: Codable, Equatable, Sendable {
    public var kernel: [Int]
    public var strides: [Int]
    public var pads: [Int] = [0, 0, 0, 0]
    public var countIncludePad: Bool = false
    public var ceilMode: Bool = false
    public init(kernel: [Int], strides: [Int]? = nil, pads: [Int] = [0, 0, 0, 0], countIncludePad: Bool = false, ceilMode: Bool = false) {
        self.kernel = kernel; self.strides = strides ?? kernel; self.pads = pads; self.countIncludePad = countIncludePad
        self.ceilMode = ceilMode
    }
    enum CodingKeys: String, CodingKey { case kernel, strides, pads, countIncludePad, ceilMode }
    /// Graphs saved before ceil mode existed have no `ceilMode` key.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kernel = try c.decode([Int].self, forKey: .kernel)
        strides = try c.decode([Int].self, forKey: .strides)
        pads = try c.decode([Int].self, forKey: .pads)
        countIncludePad = try c.decode(Bool.self, forKey: .countIncludePad)
        ceilMode = try c.decodeIfPresent(Bool.self, forKey: .ceilMode) ?? false
    }
}

/// ONNX Gemm: Y = α·op(A)·op(B) + β·C.
public struct GemmAttributes: Codable, Equatable, Sendable {
    public var alpha: Float = 1, beta: Float = 1
    public var transA = false, transB = false
    public init(alpha: Float = 1, beta: Float = 1, transA: Bool = false, transB: Bool = false) {
        self.alpha = alpha; self.beta = beta; self.transA = transA; self.transB = transB
    }
}

/// An integer-only engine's conversions, on tensors whose values are integers held in floats
/// (HAWQ-V3's simulation carries every activation as its integer code this way; Float32 holds
/// integers below 2^24 exactly, so convolutions and sums over them are exact). Per channel means
/// along dimension 1; one entry applies to every channel.
public struct Requantization: Codable, Equatable, Sendable {
    public enum Rounding: String, Codable, Sendable { case halfToEven, halfAwayFromZero }
    public enum Rule: Codable, Equatable, Sendable {
        /// Reals to codes: x / scale (in Double), rounded, clamped.
        case divide(scale: Double, rounding: Rounding)
        /// Integer sums to codes: (x·m + 2^(s−1)) >> s in Int64 per channel (x·m/2^s rounded
        /// half up), clamped. Non-integer inputs are refused.
        case dyadic(multipliers: [Int64], shifts: [Int])
        /// Binary codes: +1 where x ≥ 0, −1 elsewhere.
        case sign
        /// Codes or sums to reals: x·scale per channel (in Double), not clamped.
        case multiply(scales: [Double])
    }
    public var rule: Rule
    /// The code range (ignored by `multiply` and `sign`).
    public var lo: Int64, hi: Int64
    public init(_ rule: Rule, lo: Int64 = Int64(Int32.min), hi: Int64 = Int64(Int32.max)) {
        self.rule = rule; self.lo = lo; self.hi = hi
    }
}

/// The operations of the graph IR: the ONNX operators the reference models and the zoo use.
/// Inputs are named values (graph inputs, parameters, buffers or other nodes' outputs).
public enum Op: Codable, Equatable, Sendable {
    /// inputs: x [N, C, H, W], weight [Cout, C/groups, kh, kw], optional bias [Cout]
    case conv(ConvAttributes)
    /// inputs: A, B, optional C (broadcast to the result)
    case gemm(GemmAttributes)
    /// inputs: A [m, k], B [k, n]
    case matMul
    case add, mul
    case relu
    /// ReLU6 is clip(0, 6).
    case clip(min: Float, max: Float)
    case maxPool(PoolAttributes)
    case averagePool(PoolAttributes)
    case globalAveragePool
    case flatten(axis: Int)
    /// The target shape (0 copies a dimension, −1 is inferred), as ONNX Reshape; with a second
    /// input the target is read from it when the node runs (shape arithmetic on a dynamic batch).
    case reshape(shape: [Int])
    /// inputs: x, scale, bias, running mean, running var. Training mode uses batch statistics
    /// and updates the running ones (PyTorch's momentum convention: new = (1−m)·old + m·batch).
    case batchNorm(epsilon: Float, momentum: Float)
    case softmax(axis: Int)
    /// log(softmax(x)) along the axis, computed as x − log Σ exp(x).
    case logSoftmax(axis: Int)
    case identity
    /// Simulated quantization: clamp(round(x/scale), qmin, qmax)·scale, round half to even.
    /// Backward and tangents pass straight through where x is inside the clipping range.
    case fakeQuantize(scale: Float, qmin: Int, qmax: Int)
    /// LSQ (Esser et al., 2020), for quantization-aware training. inputs: x, step s (a
    /// parameter broadcast to x). Forward: clamp(round(x/s), qmin, qmax)·s, round half to even.
    /// Backward: x straight through inside the range; s by LSQ's estimator — round(x/s) − x/s
    /// inside, qmin or qmax outside — times g = 1/√(n·qmax), n the elements sharing a step.
    case learnedQuantize(qmin: Int, qmax: Int)
    /// EdMIPS' search layer: inputs x, α (logits over candidate widths) and, for activations, the
    /// running σ (a buffer); Σ softmax(α)_i·Q_i(x) (see `MixedQuantization`). Training only: it
    /// has no ONNX form and no second derivative.
    case mixedQuantize(MixedQuantization)
    /// HMQ's search layer: inputs x, π (logits over widths × power-of-two thresholds), the
    /// Gumbel noise and the temperature (buffers); see `GumbelQuantization`. Training only, like
    /// mixedQuantize.
    case gumbelQuantize(GumbelQuantization)
    /// XNOR-Net's binary weights for training: α_c·sign(W) per output channel, α_c = mean|W_c|
    /// (see `BinaryWeightsOp`). Training and simulation; no ONNX form.
    case binaryWeights
    /// Binary activations (XNOR-Net): scale·sign(x), sign(0) = +1. Backward: straight through
    /// where |x| ≤ scale (BNN's clipped estimator, at the activation's scale).
    case binarize(scale: Float)
    /// An integer engine's conversion between codes, sums and reals (inference only: it has no
    /// gradient).
    case requantize(Requantization)
    /// One-input elementwise functions (Sigmoid, HardSwish, Erf, …).
    case pointwise(Pointwise)
    /// Two-input elementwise operations beyond Add and Mul (Sub, Div, PRelu, Max, Min).
    case binary(Binary)
    /// inputs: any number of tensors equal outside `axis`.
    case concat(axis: Int)
    /// An empty perm reverses the axes, as ONNX says.
    case transpose(perm: [Int])
    case slice(SliceAttributes)
    case pad(PadAttributes)
    /// Gather along `axis` at constant indices (an empty `indexShape`: one scalar index, the axis dropped).
    case gather(axis: Int, indices: [Int], indexShape: [Int])
    /// Broadcast to `shape`; with a second input the shape is read from it when the node runs.
    case expand(shape: [Int])
    case unsqueeze(axes: [Int])
    /// nil squeezes every axis of size 1.
    case squeeze(axes: [Int]?)
    case resize(ResizeAttributes)
    case reduce(Reduction, axes: [Int]?, keepDims: Bool)
    /// inputs: x, scale, optional bias; normalises over the axes from `axis` on.
    case layerNorm(axis: Int, epsilon: Float)
    case lrn(LRNAttributes)
    /// The input's shape (dimensions start..<end) as a 1-D tensor: shape arithmetic at run time.
    case shape(start: Int, end: Int?)
    /// A tensor of the shape its input holds, filled with `value`.
    case constantOfShape(value: Float)
    /// inputs: start, limit, delta (scalars): start, start + delta, … before limit.
    case range
    /// inputs: condition, a, b: a where the condition is nonzero, b elsewhere (broadcast).
    case `where`

    /// A training-time quantizer of its first input (LSQ's or a search layer's): a layer's weight
    /// may reach it through one.
    public var quantizesItsFirstInput: Bool {
        switch self { case .learnedQuantize, .mixedQuantize, .gumbelQuantize, .binaryWeights: true; default: false }
    }

    /// The ONNX operator name.
    public var onnxName: String {
        switch self {
        case .conv: "Conv"; case .gemm: "Gemm"; case .matMul: "MatMul"; case .add: "Add"; case .mul: "Mul"
        case .relu: "Relu"; case .clip: "Clip"; case .maxPool: "MaxPool"; case .averagePool: "AveragePool"
        case .globalAveragePool: "GlobalAveragePool"; case .flatten: "Flatten"; case .reshape: "Reshape"
        case .batchNorm: "BatchNormalization"; case .softmax: "Softmax"; case .logSoftmax: "LogSoftmax"; case .identity: "Identity"
        case .fakeQuantize: "FakeQuantize"
        case .learnedQuantize: "LearnedQuantize"
        case .mixedQuantize: "MixedQuantize"
        case .gumbelQuantize: "GumbelQuantize"
        case .binarize: "Binarize"
        case .binaryWeights: "BinaryWeights"
        case .requantize: "Requantize"
        case .pointwise(let f): f.onnxName
        case .binary(let f): f.onnxName
        case .concat: "Concat"; case .transpose: "Transpose"; case .slice: "Slice"; case .pad: "Pad"; case .gather: "Gather"
        case .expand: "Expand"; case .unsqueeze: "Unsqueeze"; case .squeeze: "Squeeze"; case .resize: "Resize"
        case .reduce(let r, _, _): r.onnxName
        case .layerNorm: "LayerNormalization"; case .lrn: "LRN"; case .shape: "Shape"; case .constantOfShape: "ConstantOfShape"
        case .range: "Range"; case .where: "Where"
        }
    }
}

/// One operation in the graph.
public struct Node: Codable, Equatable, Sendable {
    public var name: String
    public var op: Op
    public var inputs: [String]
    public var outputs: [String]
    public init(name: String, op: Op, inputs: [String], outputs: [String]) {
        self.name = name; self.op = op; self.inputs = inputs; self.outputs = outputs
    }
}

/// What a node's forward pass keeps for its backward and tangent passes.
public enum OpState: Sendable {
    /// Max pooling: the flat input index (within its plane) each output took its value from.
    case argmax([Int32])
    /// An element-moving op's map from output to input elements.
    case indexMap(IndexMap)
    /// Batch norm in training mode: the batch mean and 1/σ per channel (the backward pass
    /// normalises the input again, as the forward did, rather than keep a copy of it).
    case batchStatistics(mean: [Float], inverseStd: [Float])
    /// A scale measured on the batch in training mode (HWGQ's σ in a search layer).
    case scale(Float)
}
