import Foundation
import Kernels
import Network
import Tensors

/// HAWQ-V3's integer-only inference. Batch norm is folded; each conv/linear weight becomes
/// per-channel symmetric codes at the policy's bits (int8, or packed 2…7-bit rows read by the
/// integer GEMM); activations are codes with one scale per tensor (unsigned after ReLU). A
/// layer multiplies codes into Int32 accumulators (bias added in Int32 at scale S_w·S_in);
/// every requantization is a dyadic multiply and shift in Int64; a residual add requantizes
/// each branch to its output scale and adds integers; max pooling compares integers; average
/// pooling sums integers and divides with rounding. Only the logits leave as floats.
///
/// `simulation` is the same arithmetic in float — a model with fake-quantization nodes at
/// exactly the engine's quantization points and the Int32 bias in float — so the two agree
/// except where a value lands exactly on a rounding tie (the engine rounds halves up, the
/// simulation to even) or the dyadic multiplier's 31-bit mantissa moves it across one.
public final class IntegerModel: @unchecked Sendable {
    /// The BN-folded float model the engine was built from.
    public let folded: Model
    public let policy: Policy
    /// The fake-quant simulation of exactly this engine.
    public private(set) var simulation: Model
    /// Weight bytes as stored (packed codes plus Float32 scales and Int32 biases).
    public private(set) var storedBytes = 0

    struct LayerData {
        var codes: [Int8]        // Cout × K
        var packed: [UInt8]      // rows of packed codes (bits < 8)
        var rowBytes: Int
        var bits: Int
        var scales: [Double]     // per output channel
        var bias: [Float]?       // float bias of the folded layer
        var k: Int, n: Int
    }

    /// A quantization point: the scale and code range of a value's codes.
    struct Point { var scale: Double; var qmin: Int32; var qmax: Int32 }

    enum Step {
        case layer(Int)               // index into layers
        case relu, maxPool(PoolAttributes), globalAveragePool, reshape, add(target: Point)
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
    public init(model: Model, policy: Policy, calibration: Tensor) throws {
        try policy.check(against: model)
        guard policy.activationBits.allSatisfy({ $0 != nil }) else {
            throw QuantizationError("integer engine: every layer needs activation bits (policy(model, bits: 8, activation_bits: 8))")
        }
        let folded = try model.layers.contains { $0.kind == .conv } ? model.foldingBatchNorm() : model.copy()
        for node in folded.nodes {
            switch node.op {
            case .conv(let a) where a.groups != 1:
                throw QuantizationError("integer engine: node '\(node.name)' is a grouped convolution (groups \(a.groups)), which the engine does not run yet")
            case .conv, .gemm, .relu, .maxPool, .globalAveragePool, .flatten, .reshape, .identity, .add: continue
            case .gemm(let a) where a.transA || !a.transB || a.alpha != 1: fallthrough
            default:
                throw QuantizationError("integer engine: node '\(node.name)' (\(node.op.onnxName)) has no integer implementation; the engine runs Conv, Gemm, Relu, MaxPool, Add, GlobalAveragePool, Flatten and Reshape of BN-folded models")
            }
        }
        self.folded = folded
        self.policy = policy
        self.simulation = folded
        // Weights: per-channel codes at the policy's bits.
        var simParams: [String: Tensor] = [:]
        for (i, layer) in folded.layers.enumerated() {
            let bits = policy.weightBits[i]
            guard bits >= 2 else { throw QuantizationError("integer engine: layer '\(layer.name)' has \(bits)-bit weights; binary layers are not in the engine yet") }
            let w = folded.parameters[layer.weight]!
            let q = try WeightQuantizer.codes(w, bits: bits, granularity: .perChannel)
            let n = w.shape[0], k = w.count / n
            let rowBytes = BitPacking.byteCount(codes: k, bits: bits)
            var packed: [UInt8] = []
            if bits < 8 {
                packed = [UInt8](repeating: 0, count: n * rowBytes)
                q.codes.withUnsafeBufferPointer { src in
                    packed.withUnsafeMutableBufferPointer { dst in
                        for j in 0..<n {
                            BitPacking.pack(UnsafeRawPointer(src.baseAddress! + j * k).assumingMemoryBound(to: UInt8.self), count: k, bits: bits,
                                            into: dst.baseAddress! + j * rowBytes)
                        }
                    }
                }
            }
            layers.append(LayerData(codes: q.codes, packed: packed, rowBytes: rowBytes, bits: bits, scales: q.scales.map(Double.init),
                                    bias: layer.bias.map { folded.parameters[$0]!.scalars }, k: k, n: n))
            layerOfNode[layer.node] = i
            storedBytes += (bits < 8 ? packed.count : q.codes.count) + 4 * n + (layer.bias != nil ? 4 * n : 0)
            simParams[layer.weight] = Tensor(checkedShape: w.shape, scalars: q.codes.indices.map { Float(q.codes[$0]) * q.scales[$0 / k] })
        }
        // Ranges of every value a node reads, on the weight-quantized folded model.
        let probe = folded.copy()
        for (name, t) in simParams { probe.parameters[name] = t }
        var ranges: [String: (Float, Float)] = [:]
        _ = try probe.run(calibration, observer: { index, inputs in
            for (name, x) in zip(probe.nodes[index].inputs, inputs) {
                guard let x, probe.parameters[name] == nil, probe.buffers[name] == nil else { continue }
                let old = ranges[name] ?? (.infinity, -.infinity)
                ranges[name] = (min(old.0, x.min()), max(old.1, x.max()))
            }
        })
        // The static walk: which values are codes, where to quantize, each add's target.
        let nodes = folded.nodes
        var consumers: [String: [Int]] = [:]
        for (i, node) in nodes.enumerated() { for v in node.inputs { consumers[v, default: []].append(i) } }
        func activationBits(reachingFrom value: String) -> Int {
            var bits = 0, frontier = [value], seen = Set<String>()
            while let v = frontier.popLast() {
                guard seen.insert(v).inserted else { continue }
                for c in consumers[v] ?? [] {
                    if let l = layerOfNode[c] { bits = max(bits, policy.activationBits[l]!) } else { frontier.append(nodes[c].outputs[0]) }
                }
            }
            return bits == 0 ? 8 : bits
        }
        func point(for value: String) throws -> Point {
            guard let (lo, hi) = ranges[value] else { throw QuantizationError("integer engine: no calibration range for '\(value)'") }
            let q = ActivationQuantizer(low: lo, high: hi, bits: activationBits(reachingFrom: value))
            let (qmin, qmax) = q.codeRange
            return Point(scale: Double(max(q.scale, 1e-12)), qmin: Int32(qmin), qmax: Int32(qmax))
        }
        var isCodes: [String: Bool] = [:]
        quantizeAt[folded.input] = try point(for: folded.input)
        codePoint[folded.input] = quantizeAt[folded.input]
        isCodes[folded.input] = true
        var addTargets: [Int: Point] = [:]
        var gapRounding: [Int: Point] = [:]
        for (i, node) in nodes.enumerated() {
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
                let target = readers.count == 1 && { if case .relu = nodes[readers[0]].op { return true }; return false }()
                    ? nodes[readers[0]].outputs[0] : out
                addTargets[i] = try point(for: target)
                isCodes[out] = false
            case .globalAveragePool:
                let x = node.inputs[0]
                if isCodes[x] != true {
                    let p = try point(for: x)
                    quantizeAt[x] = p; codePoint[x] = p; isCodes[x] = true
                }
                gapRounding[i] = codePoint[x]!
                codePoint[out] = codePoint[x]!; isCodes[out] = true
            default:
                isCodes[out] = isCodes[node.inputs[0]] ?? false
                if let p = codePoint[node.inputs[0]], isCodes[out] == true { codePoint[out] = p }
            }
        }
        self.addTargets = addTargets
        self.gapRounding = gapRounding
        // The simulation: quantized weights, the engine's Int32 bias in float, fake quantization
        // at every point.
        var simNodes: [Node] = []
        var rename: [String: String] = [:]
        func fq(_ name: String, _ v: String, _ p: Point, clamp: Bool = true) -> Node {
            Node(name: name, op: .fakeQuantize(scale: Float(p.scale), qmin: clamp ? Int(p.qmin) : -(1 << 30), qmax: clamp ? Int(p.qmax) : 1 << 30),
                 inputs: [v], outputs: ["\(v)@\(name)"])
        }
        if let p = quantizeAt[folded.input] {
            let n = fq("input/q", folded.input, p)
            simNodes.append(n); rename[folded.input] = n.outputs[0]
        }
        var biasParams: [(String, Tensor)] = []
        for (i, node) in nodes.enumerated() {
            var node = node
            node.inputs = node.inputs.map { rename[$0] ?? $0 }
            if let l = layerOfNode[i], let bias = layers[l].bias, node.inputs.count > 2 {
                let sIn = inputPoint[l]!.scale
                let q = bias.indices.map { c -> Float in
                    let step = layers[l].scales[c] * sIn
                    return step > 0 ? Float((Double(bias[c]) / step).rounded(.toNearestOrEven) * step) : 0
                }
                let name = node.inputs[2] + "@int32"
                biasParams.append((name, Tensor(checkedShape: [bias.count], scalars: q)))
                node.inputs[2] = name
            }
            if case .add = node.op, let t = addTargets[i] {
                for position in 0..<2 {
                    let b = fq("\(node.name)/branch\(position)", node.inputs[position], t, clamp: false)
                    simNodes.append(b); node.inputs[position] = b.outputs[0]
                }
            }
            simNodes.append(node)
            let out = node.outputs[0]
            if let p = gapRounding[i] {
                let r = fq("\(node.name)/round", out, p)
                simNodes.append(r); rename[out] = r.outputs[0]
            }
            if let p = quantizeAt[out] {
                let r = fq("\(node.name)/q", out, p)
                simNodes.append(r); rename[out] = r.outputs[0]
            }
        }
        let finalOutput = rename[folded.output] ?? folded.output
        var params = folded.parameterOrder.map { ($0, simParams[$0] ?? folded.parameters[$0]!) }
        params += biasParams
        simulation = try Model(name: "\(folded.name) (integer simulation)", nodes: simNodes, input: folded.input, output: finalOutput,
                               inputShape: folded.inputShape, parameters: params,
                               buffers: folded.buffers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
    }

    var addTargets: [Int: Point] = [:]
    var gapRounding: [Int: Point] = [:]

    /// A value inside the engine: Int32 accumulators with a scale per channel (dimension 1), or
    /// codes with one scale.
    struct Value {
        var data: [Int32]
        var shape: [Int]
        var scales: [Double]   // per channel; codes have one entry
        var isCodes: Bool
        /// Codes of a signed point (negative codes possible): the GEMM reads them as Int8.
        var signed = false
    }

    /// Logits for a batch, computed in integers.
    public func run(_ x: Tensor) throws -> Tensor {
        guard x.rank == folded.inputShape.count + 1, Array(x.shape.dropFirst()) == folded.inputShape else {
            throw QuantizationError("integer engine: expected input [N, \(folded.inputShape.map(String.init).joined(separator: ", "))], found \(x.shape)")
        }
        guard !x.hasNonFinite else { throw QuantizationError("integer engine: the input holds NaN or infinite values") }
        var values: [String: Value] = [:]
        let p0 = quantizeAt[folded.input]!
        values[folded.input] = Value(data: x.scalars.map { v in
            let q = (Double(v) / p0.scale).rounded(.toNearestOrAwayFromZero)
            return Int32(min(max(q, Double(p0.qmin)), Double(p0.qmax)))
        }, shape: x.shape, scales: [p0.scale], isCodes: true, signed: p0.qmin < 0)
        var remaining: [String: Int] = [:]
        for node in folded.nodes { for v in node.inputs { remaining[v, default: 0] += 1 } }
        for (i, node) in folded.nodes.enumerated() {
            try Interrupt.check()
            let ins = node.inputs.map { values[$0] }
            var out: Value
            switch node.op {
            case .conv(let a):
                out = try conv(ins[0]!, layer: layerOfNode[i]!, a)
            case .gemm:
                out = try linear(ins[0]!, layer: layerOfNode[i]!)
            case .relu:
                out = ins[0]!
                for j in out.data.indices where out.data[j] < 0 { out.data[j] = 0 }
            case .maxPool(let a):
                out = maxPool(ins[0]!, a)
            case .globalAveragePool:
                out = globalAverage(ins[0]!)
            case .identity:
                out = ins[0]!
            case .flatten, .reshape:
                out = ins[0]!
                let n = out.shape[0]
                if out.scales.count > 1, out.shape.count > 1 {
                    // Per-channel scales become per-feature: feature j of channel j / inner.
                    let channels = out.shape[1], inner = out.data.count / max(1, n * channels)
                    out.scales = (0..<(channels * inner)).map { out.scales[$0 / inner] }
                }
                if case .reshape(let s) = node.op {
                    out.shape = s.enumerated().map { j, d in d == 0 && j < ins[0]!.shape.count ? ins[0]!.shape[j] : d }
                    if let k = out.shape.firstIndex(of: -1) { out.shape[k] = out.data.count / max(1, out.shape.filter { $0 != -1 }.reduce(1, *)) }
                } else {
                    out.shape = [n, out.data.count / max(n, 1)]
                }
                guard out.scales.count == 1 || (out.shape.count == 2 && out.shape[0] == n && out.shape[1] == out.scales.count) else {
                    throw QuantizationError("integer engine: node '\(node.name)' reshapes accumulators with per-channel scales to \(out.shape); only flattening to [N, features] is supported")
                }
            case .add:
                out = try add(ins[0]!, ins[1]!, target: addTargets[i]!)
            default:
                throw QuantizationError("integer engine: node '\(node.name)' (\(node.op.onnxName)) has no integer implementation")
            }
            let name = node.outputs[0]
            if let p = quantizeAt[name], !out.isCodes { out = try requantize(out, to: p, clamp: true) }
            values[name] = out
            for v in node.inputs {
                remaining[v]! -= 1
                if remaining[v] == 0 && v != folded.output { values[v] = nil }
            }
        }
        let y = values[folded.output]!
        let channels = y.shape.count > 1 ? y.shape[1] : 1, inner = y.data.count / max(1, y.shape[0] * channels)
        var logits = [Float](repeating: 0, count: y.data.count)
        for j in y.data.indices {
            let c = y.scales.count == 1 ? 0 : (j / inner) % channels
            logits[j] = Float(Double(y.data[j]) * y.scales[c])
        }
        return Tensor(checkedShape: y.shape, scalars: logits)
    }

    /// Accumulators (or codes) to codes at point p: dyadic multiply by s_c/S, round half up,
    /// clamp to the code range.
    func requantize(_ v: Value, to p: Point, clamp: Bool) throws -> Value {
        let channels = v.shape.count > 1 ? v.shape[1] : 1
        let planes = v.shape[0] * channels
        let inner = v.data.count / max(1, planes)
        // A channel whose weights are all zero has scale 0: its values are 0 at any scale.
        let dyadics = try v.scales.map { $0 > 0 ? try Dyadic($0 / p.scale) : Dyadic.zero }
        let lo = clamp ? Int64(p.qmin) : Int64(Int32.min), hi = clamp ? Int64(p.qmax) : Int64(Int32.max)
        var out = [Int32](repeating: 0, count: v.data.count)
        v.data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                let (s0, d0) = (src.baseAddress!, dst.baseAddress!)
                Parallel.forEach(planes, threads: planes * inner >= 65536 ? Parallel.defaultThreads : 1) { plane, _ in
                    let d = dyadics.count == 1 ? dyadics[0] : dyadics[plane % channels]
                    let (m, shift) = (d.multiplier, Int64(d.shift))
                    let half = Int64(1) << (shift - 1)
                    let base = plane * inner
                    for j in 0..<inner {
                        let q = (Int64(s0[base + j]) * m + half) >> shift
                        d0[base + j] = Int32(truncatingIfNeeded: min(max(q, lo), hi))
                    }
                }
            }
        }
        return Value(data: out, shape: v.shape, scales: [p.scale], isCodes: true, signed: clamp && p.qmin < 0)
    }

    func add(_ a: Value, _ b: Value, target: Point) throws -> Value {
        guard a.shape == b.shape else { throw QuantizationError("integer engine: residual add of \(a.shape) and \(b.shape)") }
        let qa = try requantize(a, to: target, clamp: false), qb = try requantize(b, to: target, clamp: false)
        return Value(data: zip(qa.data, qb.data).map { $0 &+ $1 }, shape: a.shape, scales: [target.scale], isCodes: false)
    }

    /// The Int32 bias at scale S_w·S_in, rounded half up (the simulation rounds to even: ties).
    func integerBias(_ l: Int, inputScale: Double) -> [Int32]? {
        guard let bias = layers[l].bias else { return nil }
        return bias.indices.map { c in
            let step = layers[l].scales[c] * inputScale
            return step > 0 ? Int32(clamping: Int64((Double(bias[c]) / step).rounded(.toNearestOrEven))) : 0
        }
    }

    /// C[m × n] = A · Wᵀ through the integer GEMM, A given as UInt8 or (signed) Int8 bytes.
    func gemm(_ a: [UInt8], signed: Bool, m: Int, layer l: Int) -> [Int32] {
        let d = layers[l]
        var c = [Int32](repeating: 0, count: m * d.n)
        a.withUnsafeBufferPointer { ap in
            c.withUnsafeMutableBufferPointer { cp in
                let cBase = cp.baseAddress!, aBase = ap.baseAddress!
                func run(_ w: IGEMM.Weights) {
                    if signed {
                        IGEMM.multiply(m: m, n: d.n, k: d.k, a: UnsafeRawPointer(aBase).assumingMemoryBound(to: Int8.self), lda: d.k,
                                       b: w, c: cBase, ldc: d.n)
                    } else {
                        IGEMM.multiply(m: m, n: d.n, k: d.k, a: aBase, lda: d.k, b: w, c: cBase, ldc: d.n)
                    }
                }
                if d.bits == 8 {
                    d.codes.withUnsafeBufferPointer { run(.int8($0.baseAddress!, ld: d.k, transposed: true)) }
                } else {
                    d.packed.withUnsafeBufferPointer { run(.packed($0.baseAddress!, bits: d.bits, rowBytes: d.rowBytes)) }
                }
            }
        }
        return c
    }

    /// Whether the codes need the signed kernel (their point's range goes below 0).
    func checkCodes(_ x: Value, _ what: String) throws -> Bool {
        guard x.isCodes else { throw QuantizationError("integer engine: \(what) received accumulators, not codes") }
        return x.signed
    }

    func conv(_ x: Value, layer l: Int, _ a: ConvAttributes) throws -> Value {
        let signed = try checkCodes(x, "conv")
        let w = folded.layers[l].weightShape
        let g = ConvGeometry(channels: w[1], height: x.shape[2], width: x.shape[3], kernelHeight: w[2], kernelWidth: w[3],
                             stride: (a.strides[0], a.strides[1]), padding: (a.pads[0], a.pads[1], a.pads[2], a.pads[3]),
                             dilation: (a.dilations[0], a.dilations[1]))
        let n = x.shape[0], c = x.shape[1], h = x.shape[2], wd = x.shape[3]
        let (oh, ow) = (g.outputHeight, g.outputWidth), pixels = oh * ow, k = layers[l].k, cout = layers[l].n
        // Patches, one row per output pixel of every image: [n·pixels][c·kh·kw] (zero code pads).
        var patches = [UInt8](repeating: 0, count: n * pixels * k)
        let (kh, kw) = (w[2], w[3])
        x.data.withUnsafeBufferPointer { xs in
            patches.withUnsafeMutableBufferPointer { ps in
                let (x0, p0) = (xs.baseAddress!, ps.baseAddress!)
                Parallel.forEach(n) { img, _ in
                    for ch in 0..<c {
                        let plane = x0 + (img * c + ch) * h * wd
                        for ky in 0..<kh {
                            for kx in 0..<kw {
                                let col = (ch * kh + ky) * kw + kx
                                for oy in 0..<oh {
                                    let iy = oy * g.strideHeight - g.padTop + ky * g.dilationHeight
                                    guard iy >= 0 && iy < h else { continue }
                                    let src = plane + iy * wd
                                    var dst = p0 + (img * pixels + oy * ow) * k + col
                                    var ix = -g.padLeft + kx * g.dilationWidth
                                    for _ in 0..<ow {
                                        if ix >= 0 && ix < wd { dst.pointee = UInt8(truncatingIfNeeded: src[ix]) }
                                        dst += k
                                        ix += g.strideWidth
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let prod = gemm(patches, signed: signed, m: n * pixels, layer: l)
        let bias = integerBias(l, inputScale: x.scales[0]) ?? [Int32](repeating: 0, count: cout)
        var out = [Int32](repeating: 0, count: n * cout * pixels)
        prod.withUnsafeBufferPointer { ps in
            out.withUnsafeMutableBufferPointer { os in
                let (p0, o0) = (ps.baseAddress!, os.baseAddress!)
                Parallel.forEach(n) { img, _ in
                    for co in 0..<cout {
                        let b = bias[co]
                        let dst = o0 + (img * cout + co) * pixels
                        var src = p0 + img * pixels * cout + co
                        for p in 0..<pixels { dst[p] = src.pointee &+ b; src += cout }
                    }
                }
            }
        }
        return Value(data: out, shape: [n, cout, oh, ow], scales: layers[l].scales.map { $0 * x.scales[0] }, isCodes: false)
    }

    func linear(_ x: Value, layer l: Int) throws -> Value {
        let signed = try checkCodes(x, "linear layer")
        let n = x.shape[0], cout = layers[l].n
        guard x.data.count == n * layers[l].k else { throw QuantizationError("integer engine: linear layer input \(x.shape) does not match \(layers[l].k) features") }
        var prod = gemm(x.data.map { UInt8(truncatingIfNeeded: $0) }, signed: signed, m: n, layer: l)
        if let bias = integerBias(l, inputScale: x.scales[0]) {
            for i in 0..<n { for co in 0..<cout { prod[i * cout + co] &+= bias[co] } }
        }
        return Value(data: prod, shape: [n, cout], scales: layers[l].scales.map { $0 * x.scales[0] }, isCodes: false)
    }

    func maxPool(_ x: Value, _ a: PoolAttributes) -> Value {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (kh, kw, sh, sw) = (a.kernel[0], a.kernel[1], a.strides[0], a.strides[1])
        let oh = (h + a.pads[0] + a.pads[2] - kh) / sh + 1, ow = (w + a.pads[1] + a.pads[3] - kw) / sw + 1
        var out = [Int32](repeating: 0, count: n * c * oh * ow)
        for plane in 0..<(n * c) {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    var m = Int32.min
                    for ky in 0..<kh {
                        let iy = oy * sh - a.pads[0] + ky
                        guard iy >= 0 && iy < h else { continue }
                        for kx in 0..<kw {
                            let ix = ox * sw - a.pads[1] + kx
                            guard ix >= 0 && ix < w else { continue }
                            m = max(m, x.data[(plane * h + iy) * w + ix])
                        }
                    }
                    out[(plane * oh + oy) * ow + ox] = m
                }
            }
        }
        return Value(data: out, shape: [n, c, oh, ow], scales: x.scales, isCodes: x.isCodes, signed: x.signed)
    }

    /// Sum of the integers of each plane divided by its size, rounded half to even (as the
    /// simulation's fake quantization of the mean).
    func globalAverage(_ x: Value) -> Value {
        let (n, c) = (x.shape[0], x.shape[1])
        let inner = x.data.count / max(1, n * c)
        var out = [Int32](repeating: 0, count: n * c)
        for plane in 0..<(n * c) {
            var s: Int64 = 0
            for j in 0..<inner { s += Int64(x.data[plane * inner + j]) }
            let d = Int64(inner)
            var q = s >= 0 ? s / d : -((-s) / d)      // truncate toward zero
            let r = s - q * d                          // same sign as s
            if 2 * abs(r) > d || (2 * abs(r) == d && q % 2 != 0) { q += s >= 0 ? 1 : -1 }
            out[plane] = Int32(q)
        }
        return Value(data: out, shape: [n, c, 1, 1], scales: x.scales, isCodes: x.isCodes, signed: x.signed)
    }

    /// Test accuracy computed by the integer engine, in batches.
    public func accuracy(on data: Dataset, batchSize: Int = 256) throws -> Double {
        guard data.count > 0 else { throw QuantizationError("evaluate: the dataset is empty") }
        var right = 0
        var start = 0
        while start < data.count {
            let end = min(data.count, start + batchSize)
            let logits = try run(try data.images.slice(start..<end))
            let c = logits.shape[1]
            for i in 0..<(end - start) {
                var best = 0
                for k in 1..<c where logits.scalars[i * c + k] > logits.scalars[i * c + best] { best = k }
                if best == data.labels[start + i] { right += 1 }
            }
            start = end
        }
        return Double(right) / Double(data.count)
    }

    /// Per output channel, the logits' step (one unit of the final accumulator).
    public var outputSteps: [Double] {
        let l = layers.count - 1
        return layers[l].scales.map { $0 * inputPoint[l]!.scale }
    }
}
