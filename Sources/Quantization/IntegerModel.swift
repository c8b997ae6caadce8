import Foundation
import Kernels
import Network
import Tensors
import Runtime

/// HAWQ-V3's integer-only inference. Batch norm is folded; each conv/linear weight becomes
/// per-channel symmetric codes at the policy's bits (stored packed below 8 bits — `storedBytes`
/// — and expanded to int8 for the VNNI kernel, which has no narrower multiply); activations are
/// codes with one scale per tensor (unsigned after ReLU). How it runs: IntegerModel+Plan.swift. A
/// layer multiplies codes into Int32 accumulators (bias added in Int32 at scale S_w·S_in);
/// every requantization is a dyadic multiply and shift in Int64; a residual add requantizes
/// each branch to its output scale and adds integers; max pooling compares integers; average
/// pooling sums integers and divides with rounding. Only the logits leave as floats; a model
/// that ends in a Softmax or LogSoftmax (`Model.probabilityHead`) runs it on them in Float32.
///
/// Two simulations run the same quantization as float graphs (IntegerModel+Simulation.swift):
/// `simulation`, fake quantization of real values at the engine's points with exact scales, and
/// `dyadicSimulation`, HAWQ-V3's form, which carries every value as its integer code in floats
/// and requantizes with the engine's dyadic multipliers, so it reproduces the engine's logits.
public final class IntegerModel: @unchecked Sendable {
    /// The BN-folded float model the engine was built from.
    public let folded: Model
    public let policy: Policy
    /// Fake quantization of real values at exactly the engine's quantization points, scales
    /// exact: what training and float evaluation see. It differs from the engine where Float32
    /// rounding or the dyadic multiplier's 31-bit mantissa moves a value across a rounding
    /// boundary.
    public private(set) var simulation: Model
    /// HAWQ-V3's simulation: integer codes carried in floats, the engine's dyadic requantization
    /// and rounding rules; equal to the engine's results (see IntegerModel+Simulation.swift).
    /// Made on first use (the engine does not need it): it throws where a layer's integer sums
    /// pass 2^24, which Float32 cannot hold exactly and the engine's Int32 can.
    public var dyadicSimulation: Model {
        get throws {
            twinLock.lock(); defer { twinLock.unlock() }
            if let dyadicTwin { return dyadicTwin }
            let twin = try integerSimulation()
            dyadicTwin = twin
            return twin
        }
    }
    private var dyadicTwin: Model? = nil
    private let twinLock = NSLock()
    /// Weight bytes as stored (packed codes plus Float32 scales and Int32 biases).
    public private(set) var storedBytes = 0

    struct LayerData {
        var codes: [Int8]        // Cout × K
        var bits: Int
        var scales: [Double]     // per output channel
        var bias: [Float]?       // float bias of the folded layer
        var k: Int, n: Int
    }

    /// A quantization point: the scale and code range of a value's codes.
    struct Point {
        var scale: Double; var qmin: Int32; var qmax: Int32
        /// Binary activations: codes sign(x) ∈ {−1, +1} (sign(0) = +1), value scale·code.
        var binary = false
    }

    var layers: [LayerData] = []
    var layerOfNode: [Int: Int] = [:]
    /// Values turned into codes right after they are produced (or, for the input, on entry).
    var quantizeAt: [String: Point] = [:]
    /// Values that are codes (statically known), and their points.
    var codePoint: [String: Point] = [:]
    /// Scale each layer's input codes carry.
    var inputPoint: [Int: Point] = [:]

    /// Builds the engine for `model` under `policy` (every layer needs activation bits),
    /// calibrating each quantization point by min/max over `calibration`.
    public convenience init(model: Model, policy: Policy, calibration: Tensor) throws {
        try self.init(model: model, policy: policy, calibration: Optional(calibration), learned: nil)
    }

    /// The engine for a model trained with learned quantization (`qat`): the learned steps are
    /// the engine's scales. Each weight keeps the codes training saw, clamp(round(W/s_c), ±q), at
    /// scale s_c·|γ_c/σ_c| once batch norm is folded (codes negated where γ_c/σ_c < 0); each
    /// layer's input is quantized at its learned step and range. Where one value feeds layers
    /// with different steps (a residual block's input feeds its first conv and its shortcut),
    /// the engine quantizes it once, at the step of the widest reader (the first in graph order
    /// among equals), and residual adds requantize to the step of the layer reading their
    /// output. `calibration` is needed only for values no learned step covers.
    public convenience init(learned qat: Model, calibration: Tensor? = nil) throws {
        let learned = try qat.learnedSteps()
        try self.init(model: learned.model, policy: learned.policy, calibration: calibration, learned: learned)
    }

    init(model: Model, policy: Policy, calibration: Tensor?, learned: LearnedSteps?) throws {
        if let calibration {
            guard calibration.shape.first ?? 0 > 0 else { throw QuantizationError("integer engine: the calibration data holds no images") }
            try model.checkFinite(for: "integer engine", data: calibration)
        }
        try policy.check(against: model)
        guard policy.entries.allSatisfy({ $0.activation != nil }) else {
            throw QuantizationError(learned != nil
                ? "integer engine: the QAT model learned no input step for layer '\(policy.entries.first { $0.activation == nil }!.layer.name)'; the engine needs activation bits everywhere (qat(m, bits: 4, activation_bits: 8, calibration: ...))"
                : "integer engine: every layer needs activation bits (policy(model, bits: 8, activation_bits: 8))")
        }
        if let float = policy.entries.first(where: { $0.weight == nil }) {
            throw QuantizationError("integer engine: layer '\(float.layer.name)' keeps float weights; the engine runs 1…8-bit weights only")
        }
        // A trained binary network's XNOR weights (α_c·sign(W), `binaryWeights`) become the
        // layers' weights; the policy must take them at 1 bit, binary per channel, which keeps them.
        let (baked, binaryLayers) = try model.bakingBinaryWeights()
        for name in binaryLayers {
            let w = policy.entries.first { $0.layer.name == name }?.weight?.quantizer
            guard let w, w.bits == 1, w.scheme == .binary, w.slicing == .channel else {
                throw QuantizationError("integer engine: layer '\(name)' was trained with binary weights (α·sign(W) per channel); its policy entry must be 1-bit binary per channel, found \(w.map { "\($0.bits)-bit \($0.scheme.rawValue)" } ?? "float")")
            }
        }
        let model = baked
        let folded = try model.layers.contains { $0.kind == .conv } ? model.foldingBatchNorm() : model.copy()
        let head = folded.probabilityHead, headNodes = Set(head?.nodes ?? [])
        let foldFactors = try learned.map { _ in try model.batchNormFoldFactors() }
        for (index, node) in folded.nodes.enumerated() where !headNodes.contains(index) {
            switch node.op {
            case .conv(let a) where a.groups != 1:
                // Depthwise (one filter per channel, as many outputs as inputs) runs; other groupings do not.
                guard let shape = folded.layers.first(where: { $0.node == index })?.weightShape, shape[1] == 1, shape[0] == a.groups else {
                    throw QuantizationError("integer engine: node '\(node.name)' is a grouped convolution (groups \(a.groups)) that is not depthwise; the engine runs depthwise and ordinary convolutions")
                }
            case .clip(let lo, let hi) where !(lo == 0 && hi > 0):
                throw QuantizationError("integer engine: node '\(node.name)' clips to [\(lo), \(hi)]; the engine runs ReLU6-style clips [0, max] after a layer")
            case .binarize(let scale) where !(scale > 0 && scale.isFinite):
                throw QuantizationError("integer engine: node '\(node.name)' binarizes at scale \(scale); expected a positive scale")
            case .averagePool(let a) where a.ceilMode, .maxPool(let a) where a.ceilMode:
                throw QuantizationError("integer engine: node '\(node.name)' pools in ceil mode; the engine runs floor-mode pooling")
            case .conv, .gemm, .relu, .clip, .maxPool, .averagePool, .globalAveragePool, .flatten, .reshape, .identity, .add, .binarize, .concat, .pointwise: continue
            case .gemm(let a) where a.transA || !a.transB || a.alpha != 1: fallthrough
            default:
                throw QuantizationError("integer engine: node '\(node.name)' (\(node.op.onnxName)) has no integer implementation; the engine runs Conv (ordinary and depthwise), Gemm, Relu, Clip [0, max] (ReLU6), MaxPool, AveragePool, Add, Concat (channels), elementwise activations (HardSwish, Sigmoid, … by lookup tables on codes), GlobalAveragePool, Flatten, Reshape and Binarize of BN-folded models, and a Softmax or LogSoftmax at the end (in Float32 on the logits)")
            }
        }
        self.folded = folded
        self.head = head
        self.policy = policy
        self.simulation = folded
        // Weights: per-channel codes through each layer's quantizer (the folded weight's).
        var simParams: [String: Tensor] = [:]
        for (i, layer) in folded.layers.enumerated() {
            let spec = policy.entries[i].weight!
            let w = folded.parameters[layer.weight]!
            let n = w.shape[0], k = w.count / n
            let bias = layer.bias.map { folded.parameters[$0]!.scalars }
            if let learned, let steps = learned.weightSteps[layer.name] {
                layers.append(Self.learnedLayer(model.parameters[layer.weight]!, steps: steps, bits: spec.quantizer.bits,
                                                factors: foldFactors![layer.name]!, bias: bias))
            } else {
                let q: WeightQuantizer.Codes
                do { q = try spec.codes(w) } catch let e as QuantizationError {
                    throw QuantizationError("integer engine: layer '\(layer.name)': \(e.message)")
                }
                var codes = q.codes
                // A binary channel of zeros (α = 0) multiplies by 0, not by its +1 signs.
                for c in 0..<n where q.bits == 1 && q.scales[c] == 0 { for j in 0..<k { codes[c * k + j] = 0 } }
                layers.append(LayerData(codes: codes, bits: q.bits, scales: q.scales.map(Double.init), bias: bias, k: k, n: n))
            }
            layerOfNode[layer.node] = i
            // Stored: the codes packed at their widths, channel after channel (binary rows as
            // sign bits), Float32 scales, Int32 biases. The kernels read the int8 codes.
            storedBytes += (spec.storedBits(for: layer) + 7) / 8 + 4 * n + (layer.bias != nil ? 4 * n : 0)
            simParams[layer.weight] = dequantizedWeight(i)
        }
        // Ranges of every value a node reads, on the weight-quantized folded model.
        let probe = folded.copy()
        for (name, t) in simParams { probe.parameters[name] = t }
        var statistics: [String: Policy.Activation.Statistics] = [:]
        if let calibration {
            _ = try probe.run(calibration, observer: { index, inputs in
                for (name, x) in zip(probe.nodes[index].inputs, inputs) {
                    guard let x, probe.parameters[name] == nil, probe.buffers[name] == nil else { continue }
                    statistics[name, default: Policy.Activation.Statistics()].add(x)
                }
            })
        }
        // The static walk: which values are codes, where to quantize, each add's target.
        let nodes = folded.nodes
        var consumers: [String: [Int]] = [:]
        for (i, node) in nodes.enumerated() where !headNodes.contains(i) { for v in node.inputs { consumers[v, default: []].append(i) } }
        /// The widest layer reading `value` (through pooling, flattening and adds; the first in
        /// graph order among equals), or nil where no layer reads it.
        func reader(of value: String) -> Int? {
            var best: Int? = nil, frontier = [value], seen = Set<String>()
            while let v = frontier.popLast() {
                guard seen.insert(v).inserted else { continue }
                for c in consumers[v] ?? [] {
                    // A sign takes any input: its reader sets no point here.
                    if case .binarize = nodes[c].op { continue }
                    if let l = layerOfNode[c] {
                        let (a, b) = (policy.entries[l].activation!, best.map { policy.entries[$0].activation! })
                        if b == nil || a.bits > b!.bits || (a.bits == b!.bits && l < best!) { best = l }
                    } else { frontier.append(nodes[c].outputs[0]) }
                }
            }
            return best
        }
        /// The point of `value`: its widest reader's learned step, or that reader's activation
        /// quantizer (uniform 8-bit where no layer reads it) over the calibration range.
        func point(for value: String) throws -> Point {
            let l = reader(of: value)
            if let l, let p = learned?.inputPoints[policy.entries[l].layer.name] {
                return Point(scale: Double(p.scale), qmin: Int32(p.qmin), qmax: Int32(p.qmax), binary: false)
            }
            guard let s = statistics[value] else {
                throw QuantizationError(calibration == nil ? "integer engine: '\(value)' has no learned step; give calibration data to measure its range"
                                                           : "integer engine: no calibration range for '\(value)'")
            }
            let p = (l.map { policy.entries[$0].activation! } ?? Policy.Activation(bits: 8)).point(s)
            return Point(scale: max(Double(p.scale), 1e-12), qmin: Int32(p.qmin), qmax: Int32(p.qmax), binary: p.binary)
        }
        var isCodes: [String: Bool] = [:]
        quantizeAt[folded.input] = try point(for: folded.input)
        codePoint[folded.input] = quantizeAt[folded.input]
        isCodes[folded.input] = true
        var addTargets: [Int: Point] = [:]
        var gapRounding: [Int: Point] = [:]
        var lookups: [Int: (input: Point, output: Point)] = [:]
        for (i, node) in nodes.enumerated() where !headNodes.contains(i) {
            let out = node.outputs[0]
            switch node.op {
            case .conv, .gemm:
                let x = node.inputs[0]
                if isCodes[x] != true {
                    let p = try point(for: x)
                    quantizeAt[x] = p; codePoint[x] = p; isCodes[x] = true
                }
                inputPoint[layerOfNode[i]!] = codePoint[x]!
                isCodes[out] = false
            case .add:
                // The add's output scale: the value quantized after it (its ReLU's output when a
                // ReLU is its only reader).
                let readers = consumers[out] ?? []
                let reluOnly = readers.count == 1 && { if case .relu = nodes[readers[0]].op { return true }; return false }()
                addTargets[i] = try point(for: reluOnly ? nodes[readers[0]].outputs[0] : out)
                if addTargets[i]!.binary {
                    throw QuantizationError("integer engine: a binary layer reads the output of residual add '\(node.name)'; the engine requantizes residual adds to 2…16-bit codes only")
                }
                if !reluOnly && (out == (head?.logits ?? folded.output) || readers.isEmpty || readers.contains { if case .binarize = nodes[$0].op { return true }; return false }) {
                    // A sum a sign reads (Bi-Real's shortcuts) stays Int32, carried at 1/256 of the
                    // step, so the sign sees it finely. Elsewhere the sum is at its readers' step
                    // (MobileNetV2's shortcuts: quantized at once, which the add then does itself).
                    addTargets[i]!.scale /= 256
                }
                isCodes[out] = false
            case .concat(let axis):
                // Channels joined as codes at one point, the output's (its widest reader's):
                // every input is requantized to it where the codes are written.
                guard axis == 1 else {
                    throw QuantizationError("integer engine: node '\(node.name)' concatenates along axis \(axis); the engine joins channels (axis 1)")
                }
                let p = try point(for: out)
                if p.binary { throw QuantizationError("integer engine: a binary layer reads concatenation '\(node.name)'; the engine joins 2…16-bit codes only") }
                quantizeAt[out] = p; codePoint[out] = p; isCodes[out] = true
            case .pointwise(let f):
                // An elementwise function of codes is a table from the input's codes to the
                // output's: the input quantized where it is made, the output at its own point.
                let x = node.inputs[0]
                if isCodes[x] != true {
                    let p = try point(for: x)
                    quantizeAt[x] = p; codePoint[x] = p; isCodes[x] = true
                }
                let p = try point(for: out)
                guard !codePoint[x]!.binary, !p.binary else {
                    throw QuantizationError("integer engine: \(f.onnxName) '\(node.name)' reads or feeds binary codes; its table maps 2…8-bit codes")
                }
                quantizeAt[out] = p; codePoint[out] = p; isCodes[out] = true
                lookups[i] = (codePoint[x]!, p)
            case .binarize(let scale):
                // Signs of whatever it reads (codes or sums: the sign does not depend on a
                // positive scale), as binary codes at the node's scale.
                isCodes[out] = true
                codePoint[out] = Point(scale: Double(scale), qmin: -1, qmax: 1, binary: true)
            case .globalAveragePool, .averagePool:
                let x = node.inputs[0]
                if isCodes[x] != true {
                    let p = try point(for: x)
                    quantizeAt[x] = p; codePoint[x] = p; isCodes[x] = true
                }
                gapRounding[i] = codePoint[x]!
                if codePoint[x]!.binary { throw QuantizationError("integer engine: average pooling '\(node.name)' of binary activations is not supported") }
                codePoint[out] = codePoint[x]!; isCodes[out] = true
            default:
                isCodes[out] = isCodes[node.inputs[0]] ?? false
                if let p = codePoint[node.inputs[0]], isCodes[out] == true { codePoint[out] = p }
            }
        }
        self.addTargets = addTargets
        self.gapRounding = gapRounding
        self.lookups = lookups
        plan = try compilePlan()
        simulation = try floatSimulation(weights: simParams)
    }

    /// The model's Softmax / LogSoftmax head, run in Float32 on the engine's logits.
    public private(set) var head: ProbabilityHead? = nil
    /// The value the engine computes: the logits the head reads, or the graph's output.
    var logits: String { head?.logits ?? folded.output }
    var headNodes: Set<Int> { Set(head?.nodes ?? []) }

    var addTargets: [Int: Point] = [:]
    var gapRounding: [Int: Point] = [:]
    /// Elementwise functions run as tables: by node, the points of their input and output codes.
    var lookups: [Int: (input: Point, output: Point)] = [:]
    /// The compiled plan the engine runs (see IntegerModel+Plan.swift).
    var plan = Plan()
    /// Workspaces of earlier runs, kept for the next (one image of ResNet-50 at 224² has ~12 MB
    /// of buffers, which a new workspace zeroes: 10% of its time at batch 1).
    private var workspaces: [Workspace] = []
    private let workspaceLock = NSLock()

    /// A workspace of an earlier run, or a new one. A recycled workspace's borders are still zero
    /// and every step writes the interiors it reads before they are read.
    func takeWorkspace() -> Workspace {
        workspaceLock.lock(); defer { workspaceLock.unlock() }
        return workspaces.popLast() ?? Workspace(plan)
    }

    /// Keeps a workspace for the next run (up to four: two threads, two runs at once).
    func recycle(_ ws: Workspace) {
        workspaceLock.lock(); defer { workspaceLock.unlock() }
        ws.threads = 1
        if workspaces.count < 4 { workspaces.append(ws) }
    }

    /// The model's output for a batch: logits computed in integers, images spread over the
    /// worker threads (then the model's probability head, if it has one, in Float32).
    public func run(_ x: Tensor, threads: Int = Parallel.defaultThreads) throws -> Tensor {
        guard x.rank == folded.inputShape.count + 1, Array(x.shape.dropFirst()) == folded.inputShape else {
            throw QuantizationError("integer engine: expected input [N, \(folded.inputShape.map(String.init).joined(separator: ", "))], found \(x.shape)")
        }
        guard !x.hasNonFinite else { throw QuantizationError("integer engine: the input holds NaN or infinite values") }
        let n = x.shape[0], inner = x.count / max(n, 1)
        let out = plan.slots[plan.output]
        let width = out.c * out.h * out.w
        var logits = [Float](repeating: 0, count: n * width)
        let plan = self.plan
        x.scalars.withUnsafeBufferPointer { xs in
            logits.withUnsafeMutableBufferPointer { ls in
                let (x0, l0) = (xs.baseAddress!, ls.baseAddress!)
                let workers = min(max(1, threads), max(n, 1))
                // Images dealt as workers free up (a slower core takes fewer).
                let spaces = (0..<workers).map { _ in takeWorkspace() }
                defer { spaces.forEach(recycle) }
                if workers == 1 { spaces[0].threads = max(1, threads) }
                Parallel.forEachDynamic(n, threads: workers) { image, w in
                    if Interrupt.isRequested { return }
                    execute(plan, spaces[w], image: x0 + image * inner, logits: l0 + image * width)
                }
            }
        }
        try Interrupt.check()
        let y = Tensor(checkedShape: out.h * out.w == 1 ? [n, out.c] : [n, out.c, out.h, out.w], scalars: logits)
        return try head.map { try folded.applyHead($0, to: y) } ?? y
    }

    /// Layer l's sums are its dot products times 2^refinement (a binary layer reading binary
    /// codes: its dots are small integers, and a sign taken downstream would otherwise see the
    /// bias rounded to a whole agreement), the bias at the finer step; 0 elsewhere. Sums stay
    /// below 2^22 so the dyadic simulation's Float32 holds them exactly.
    func refinement(_ l: Int) -> Int {
        guard layers[l].bits == 1, inputPoint[l]?.binary == true else { return 0 }
        return max(0, min(8, 22 - (Int.bitWidth - layers[l].k.leadingZeroBitCount)))
    }

    /// The step of one unit of layer l's input in its sums: the input scale over 2^refinement.
    func sumInputScale(_ l: Int) -> Double { inputPoint[l]!.scale / Double(1 << refinement(l)) }

    /// The Int32 bias at scale S_w·S_in, rounded half to even (as the simulation).
    func integerBias(_ l: Int, inputScale: Double) -> [Int32]? {
        guard let bias = layers[l].bias else { return nil }
        return bias.indices.map { c in
            let step = layers[l].scales[c] * inputScale
            return step > 0 ? Int32(clamping: Int64((Double(bias[c]) / step).rounded(.toNearestOrEven))) : 0
        }
    }

    /// Logits computed by the integer engine for every image, in batches.
    /// `progress` sees (examples done, total) after each batch.
    public func predict(_ images: Tensor, batchSize: Int = 256, progress: ((Int, Int) -> Void)? = nil) throws -> Tensor {
        let n = images.shape.first ?? 0
        var parts: [Tensor] = []
        var start = 0
        while start < n {
            try Interrupt.check()
            let end = min(n, start + max(batchSize, 1))
            parts.append(try run(try images.slice(start..<end)))
            start = end
            progress?(end, n)
        }
        return try Tensor.stack(parts)
    }

    /// Test accuracy computed by the integer engine, in batches (ties: the first class).
    /// `progress` sees (examples done, total) after each batch.
    public func accuracy(on data: Dataset, batchSize: Int = 256, progress: ((Int, Int) -> Void)? = nil) throws -> Double {
        let predicted = try predictedClasses(on: data, batchSize: batchSize, progress: progress)
        return Double(zip(predicted, data.labels).filter { $0 == $1 }.count) / Double(data.count)
    }

    /// Each example's class by the integer engine (ties: the first).
    public func predictedClasses(on data: Dataset, batchSize: Int = 256, progress: ((Int, Int) -> Void)? = nil) throws -> [Int] {
        guard data.count > 0 else { throw QuantizationError("the dataset holds no examples to classify") }
        return try predict(data.images, batchSize: batchSize, progress: progress).argmax(axis: 1).scalars.map { Int($0) }
    }

    /// A ReLU6-style clip's top `m` as a code of point p: round(m / scale), at most qmax. The
    /// engine clamps there in the epilogue and the dyadic simulation after its requantization.
    static func clipCode(_ m: Float, _ p: Point) -> Int32 {
        Int32(min(Double(p.qmax), max(0, (Double(m) / p.scale).rounded())))
    }

    /// The layers run as matrix–vector products (one output pixel) and the width their weights
    /// are read at (8, 4 or 2 bits), by layer name.
    public var vectorWidths: [String: Int] {
        var out: [String: Int] = [:]
        for case .layer(let l) in plan.steps { if let v = l.vector { out[folded.layers[l.layer].name] = v.bits } }
        return out
    }

    /// Per output channel, the logits' step (one unit of the final accumulator).
    public var outputSteps: [Double] {
        let l = layers.count - 1
        return layers[l].scales.map { $0 * sumInputScale(l) }
    }
}
