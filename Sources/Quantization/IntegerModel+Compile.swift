import Foundation
import Kernels
import Network
import Tensors

// Compiling the graph into the engine's plan (see IntegerModel+Plan.swift for the plan's types).
extension IntegerModel {
    /// Layer l's geometry over an input slot: a convolution's kernel, strides, dilations and
    /// padding; a linear layer as a kernel covering the whole input.
    func geometry(of l: Int, input xs: Slot) -> BinaryConv.Geometry {
        let layer = folded.layers[l]
        var g = BinaryConv.Geometry(height: xs.h, width: xs.w, channels: xs.c, kernelH: xs.h, kernelW: xs.w, outH: 1, outW: 1, cout: layers[l].n)
        if case .conv(let a) = folded.nodes[layer.node].op {
            (g.kernelH, g.kernelW) = (layer.weightShape[2], layer.weightShape[3])
            (g.strideH, g.strideW, g.dilationH, g.dilationW) = (a.strides[0], a.strides[1], a.dilations[0], a.dilations[1])
            (g.padTop, g.padLeft) = (a.pads[0], a.pads[1])
            g.outH = (xs.h + a.pads[0] + a.pads[2] - g.dilationH * (g.kernelH - 1) - 1) / g.strideH + 1
            g.outW = (xs.w + a.pads[1] + a.pads[3] - g.dilationW * (g.kernelW - 1) - 1) / g.strideW + 1
        }
        return g
    }

    /// Compiles the graph (BN folded, quantization points known) into a plan.
    func compilePlan() throws -> Plan {
        var plan = Plan()
        let nodes = folded.nodes
        // The head (a trailing Softmax) runs after the engine, on its logits.
        let headNodes = self.headNodes, logits = self.logits
        var consumers: [String: [Int]] = [:]
        for (i, node) in nodes.enumerated() where !headNodes.contains(i) { for v in node.inputs { consumers[v, default: []].append(i) } }
        var slotOf: [String: Int] = [:]
        func newSlot(_ s: Slot, alias: Int? = nil) -> Int {
            var s = s
            if let alias { s.buffer = plan.slots[alias].buffer } else {
                s.buffer = plan.buffers.count
                plan.buffers.append((s.elements, s.codes))
            }
            plan.slots.append(s)
            return plan.slots.count - 1
        }
        // Every code slot gets the widest padding any convolution asks for.
        var pad = 0
        for node in nodes { if case .conv(let a) = node.op { pad = max(pad, a.pads.max() ?? 0) } }
        func codesSlot(c: Int, h: Int, w: Int, point p: Point) -> Slot {
            // Binary codes are packed signs, 64 channels per word (BinaryConv's layout), no padding.
            if p.binary { return Slot(c: c, h: h, w: w, codes: true, signed: true, scales: [p.scale], stride: (c + 63) / 64 * 8, buffer: 0, binary: true) }
            return Slot(c: c, h: h, w: w, codes: true, signed: p.qmin < 0, scales: [p.scale], stride: (c + 3) / 4 * 4, buffer: 0, pad: pad)
        }
        // Where a layer's output is quantized, if only ReLU, ReLU6-style clips, max pooling,
        // flattening or identity lie between them: the point, whether a ReLU (or clip) does, and
        // the clip's top as a code (the point's qmax when there is none).
        func fusedPoint(after value: String) -> (Point, relu: Bool, hi: Int32)? {
            var v = value, relu = false, top: Float? = nil
            while quantizeAt[v] == nil {
                guard v != logits, let readers = consumers[v], readers.count == 1 else { return nil }
                switch nodes[readers[0]].op {
                case .relu: relu = true
                case .clip(let lo, let hi) where lo == 0: relu = true; top = min(top ?? hi, hi)
                case .maxPool, .flatten, .reshape, .identity: break
                default: return nil
                }
                v = nodes[readers[0]].outputs[0]
            }
            // Binary codes are signs, which the requantizing epilogue does not produce.
            let p = quantizeAt[v]!
            return p.binary ? nil : (p, relu, top.map { Self.clipCode($0, p) } ?? p.qmax)
        }
        var producer: [String: Int] = [:]
        for (i, node) in nodes.enumerated() { for o in node.outputs { producer[o] = i } }
        /// Whether the clip node `clip` lies between a layer and the point its epilogue
        /// requantizes to (fusedPoint), so the layer clamped its codes at the clip's top.
        func clippedInEpilogue(_ clip: Int) -> Bool {
            var v = nodes[clip].inputs[0]
            while let i = producer[v] {
                switch nodes[i].op {
                case .conv, .gemm:
                    guard fusedPoint(after: v) != nil else { return false }
                    // Walk the fused path forward: the clip must come before the point.
                    var u = v
                    while quantizeAt[u] == nil, let readers = consumers[u], readers.count == 1 {
                        if readers[0] == clip { return true }
                        u = nodes[readers[0]].outputs[0]
                    }
                    return false
                case .relu, .clip, .maxPool, .flatten, .reshape, .identity: v = nodes[i].inputs[0]
                default: return false
                }
            }
            return false
        }
        // How a layer's sums leave it: requantized to codes where its output is quantized (ReLU
        // and clip fused), scaled to the add it feeds, or as raw sums at scale `sums`.
        func finishing(bias: [Int32], sums: [Double], n: Int, oh: Int, ow: Int, out: String) throws -> (IntegerEpilogue, Slot) {
            if let (p, relu, hi) = fusedPoint(after: out) {
                let dy = try dyadics(sums, to: p.scale)
                let lo = relu ? max(p.qmin, 0) : p.qmin
                return (IntegerEpilogue(bias: bias, multiplier: dy.map { Int32($0.multiplier) }, shift: dy.map { Int32($0.shift) }, lo: lo, hi: hi, mode: .codes),
                        codesSlot(c: n, h: oh, w: ow, point: Point(scale: p.scale, qmin: lo, qmax: p.qmax)))
            }
            if let t = feedsAdd(out) {
                let dy = try dyadics(sums, to: t.scale)
                return (IntegerEpilogue(bias: bias, multiplier: dy.map { Int32($0.multiplier) }, shift: dy.map { Int32($0.shift) },
                                        lo: Int32.min, hi: Int32.max, mode: .scaledSums),
                        Slot(c: n, h: oh, w: ow, codes: false, signed: true, scales: [t.scale], stride: n, buffer: 0))
            }
            return (IntegerEpilogue(bias: bias, multiplier: bias.map { _ in 0 }, shift: bias.map { _ in 1 }, lo: 0, hi: 0, mode: .sums),
                    Slot(c: n, h: oh, w: ow, codes: false, signed: true, scales: sums, stride: n, buffer: 0))
        }
        // The add a value feeds (its only reader), and that add's target point.
        func feedsAdd(_ value: String) -> Point? {
            guard value != logits, let readers = consumers[value], readers.count == 1, case .add = nodes[readers[0]].op else { return nil }
            return addTargets[readers[0]]
        }

        let shape = folded.inputShape
        guard shape.count == 3 || shape.count == 1 else {
            throw QuantizationError("integer engine: inputs of shape \(shape) are not supported; [C, H, W] or [features]")
        }
        let (c0, h0, w0) = shape.count == 3 ? (shape[0], shape[1], shape[2]) : (shape[0], 1, 1)
        let p0 = quantizeAt[folded.input]!
        slotOf[folded.input] = newSlot(codesSlot(c: c0, h: h0, w: w0, point: p0))
        plan.steps.append(.input(to: slotOf[folded.input]!, point: p0))

        var skip = headNodes
        for (i, node) in nodes.enumerated() where !skip.contains(i) {
            let out = node.outputs[0]
            guard var x = slotOf[node.inputs[0]] else { throw QuantizationError("integer engine: node '\(node.name)' reads a value computed later") }
            var xs = plan.slots[x]
            var produced: Int
            if xs.binary {
                switch node.op {
                case .conv, .gemm, .flatten, .reshape, .identity, .binarize: break
                default: throw QuantizationError("integer engine: node '\(node.name)' (\(node.op.onnxName)) reads binary codes; only layers (and flattening) read them")
                }
            }
            switch node.op {
            case .conv, .gemm:
                let l = layerOfNode[i]!
                guard xs.codes else { throw QuantizationError("integer engine: layer '\(folded.layers[l].name)' received sums, not codes") }
                let d = layers[l]
                let isConv: Bool = { if case .conv = node.op { return true }; return false }()
                var (kh, kw, sh, sw, dh, dw, pt, pl, pb, pr) = (xs.h, xs.w, 1, 1, 1, 1, 0, 0, 0, 0)
                if case .conv(let a) = node.op, a.groups > 1 {
                    guard !xs.binary, xs.c == a.groups else {
                        throw QuantizationError("integer engine: depthwise conv '\(node.name)' expects \(a.groups) channels of byte codes, found \(xs.c)\(xs.binary ? " binary" : "")")
                    }
                    let ws = folded.layers[l].weightShape
                    let (kh, kw) = (ws[2], ws[3])
                    let oh = (xs.h + a.pads[0] + a.pads[2] - a.dilations[0] * (kh - 1) - 1) / a.strides[0] + 1
                    let ow = (xs.w + a.pads[1] + a.pads[3] - a.dilations[1] * (kw - 1) - 1) / a.strides[1] + 1
                    let ldw = (d.n + 15) / 16 * 16
                    var weights = [Int32](repeating: 0, count: kh * kw * ldw)
                    for ch in 0..<d.n { for t in 0..<(kh * kw) { weights[t * ldw + ch] = Int32(d.codes[ch * kh * kw + t]) } }
                    let sIn = xs.scales[0]
                    let (epilogue, slot) = try finishing(bias: integerBias(l, inputScale: sIn) ?? [Int32](repeating: 0, count: d.n),
                                                         sums: d.scales.map { $0 * sIn }, n: d.n, oh: oh, ow: ow, out: out)
                    produced = newSlot(slot)
                    let os = plan.slots[produced]
                    var starts: [Int] = [], outStarts: [Int] = []
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            starts.append(xs.offset(oy * a.strides[0] - a.pads[0], ox * a.strides[1] - a.pads[1]))
                            outStarts.append(os.offset(oy, ox))
                        }
                    }
                    let rowBytes = (xs.w + 2 * xs.pad) * xs.stride
                    var taps: [Int] = []
                    for ky in 0..<kh { for kx in 0..<kw { taps.append(ky * a.dilations[0] * rowBytes + kx * a.dilations[1] * xs.stride) } }
                    plan.depthwiseChannels = max(plan.depthwiseChannels, ldw)
                    let grid = DepthwiseConv.PairGrid(taps: taps, starts: starts, rows: xs.h + 2 * xs.pad, cols: xs.w + 2 * xs.pad, pixelBytes: xs.stride,
                                                      weights: weights, ldw: ldw)
                    plan.depthwisePairs = max(plan.depthwisePairs, grid?.count ?? 0)
                    plan.steps.append(.depthwise(DepthwiseStep(layer: l, input: x, output: produced, starts: starts, outStarts: outStarts, taps: taps,
                                                               weights: weights, ldw: ldw, channels: d.n, signed: xs.signed, epilogue: epilogue, grid: grid)))
                    // The loop's tail quantizes sums where the static walk asks and records the slot.
                    break
                }
                if case .conv(let a) = node.op {
                    let ws = folded.layers[l].weightShape
                    guard ws[1] == xs.c else { throw QuantizationError("integer engine: conv '\(node.name)' expects \(ws[1]) channels, found \(xs.c)") }
                    (kh, kw, sh, sw, dh, dw) = (ws[2], ws[3], a.strides[0], a.strides[1], a.dilations[0], a.dilations[1])
                    (pt, pl, pb, pr) = (a.pads[0], a.pads[1], a.pads[2], a.pads[3])
                } else {
                    guard d.k == xs.c * xs.h * xs.w else {
                        throw QuantizationError("integer engine: linear layer '\(node.name)' expects \(d.k) features, found \(xs.c * xs.h * xs.w)")
                    }
                }
                let oh = (xs.h + pt + pb - dh * (kh - 1) - 1) / sh + 1, ow = (xs.w + pl + pr - dw * (kw - 1) - 1) / sw + 1
                if xs.binary && d.bits != 1 {
                    // Wider weights multiply the signs as ±1 bytes in the int8 kernel.
                    let bytes = newSlot(codesSlot(c: xs.c, h: xs.h, w: xs.w, point: Point(scale: xs.scales[0], qmin: -1, qmax: 1)))
                    plan.steps.append(.unpack(from: x, to: bytes))
                    (x, xs) = (bytes, plan.slots[bytes])
                }
                if d.bits == 1 && xs.binary {
                    // XNOR-popcount on the packed signs: weight sign bits per output channel and tap.
                    let words = (xs.c + 63) / 64
                    var bits = [UInt64](repeating: 0, count: d.n * kh * kw * words)
                    for co in 0..<d.n {
                        for ch in 0..<xs.c {
                            for ky in 0..<kh {
                                for kx in 0..<kw {
                                    let src = isConv ? ((co * xs.c + ch) * kh + ky) * kw + kx : co * d.k + (ch * xs.h + ky) * xs.w + kx
                                    if d.codes[src] < 0 { bits[(co * kh * kw + ky * kw + kx) * words + ch / 64] |= 1 << UInt64(ch % 64) }
                                }
                            }
                        }
                    }
                    // The sums leave through the epilogue an 8-bit layer's would (`finishing`).
                    let sIn = sumInputScale(l)
                    let zeros = [Int32](repeating: 0, count: d.n)
                    let (epilogue, slot) = try finishing(bias: integerBias(l, inputScale: sIn) ?? zeros, sums: d.scales.map { $0 * sIn },
                                                         n: d.n, oh: oh, ow: ow, out: out)
                    produced = newSlot(slot)
                    let os = plan.slots[produced]
                    let weights = BinaryConv.Weights(signs: bits, cout: d.n, taps: kh * kw, words: words,
                                                     live: d.scales.map { $0 > 0 }, channels: xs.c)
                    plan.steps.append(.xnor(XnorStep(layer: l, input: x, output: produced, geometry: self.geometry(of: l, input: xs), weights: weights,
                                                     shift: refinement(l), epilogue: epilogue,
                                                     outStarts: (0..<oh).flatMap { oy in (0..<ow).map { os.offset(oy, $0) } })))
                    // Raw sums are quantized where the walk says, as after an 8-bit layer.
                    if epilogue.mode == .sums, let p = quantizeAt[out] {
                        let q = newSlot(codesSlot(c: d.n, h: oh, w: ow, point: p))
                        plan.steps.append(.quantize(from: produced, to: q, scales: .init(try dyadics(slot.scales, to: p.scale), channels: slot.c), lo: p.qmin, hi: p.qmax, binary: p.binary))
                        produced = q
                    }
                    slotOf[out] = produced
                    continue
                }
                // Weights in the input's memory order: (ky, kx, channel padded to the stride).
                let k = kh * kw * xs.stride
                var codes = [Int8](repeating: 0, count: d.n * k)
                for co in 0..<d.n {
                    for ch in 0..<xs.c {
                        for ky in 0..<kh {
                            for kx in 0..<kw {
                                let src = isConv ? ((co * xs.c + ch) * kh + ky) * kw + kx : co * d.k + (ch * xs.h + ky) * xs.w + kx
                                codes[co * k + (ky * kw + kx) * xs.stride + ch] = d.codes[src]
                            }
                        }
                    }
                }
                let weights = IntegerWeights(codes: codes, n: d.n, k: k)
                let sIn = xs.scales[0]
                let sums = d.scales.map { $0 * sIn }
                var bias = integerBias(l, inputScale: sIn) ?? [Int32](repeating: 0, count: d.n)
                if xs.signed { for j in 0..<d.n { bias[j] &-= 128 &* weights.columnSums[j] } }
                let (epilogue, slot) = try finishing(bias: bias, sums: sums, n: d.n, oh: oh, ow: ow, out: out)
                produced = newSlot(slot)
                let os = plan.slots[produced]
                var starts: [Int] = [], outStarts: [Int] = []
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        starts.append(xs.offset(oy * sh - pt, ox * sw - pl))
                        outStarts.append(os.offset(oy, ox))
                    }
                }
                let rowBytes = (xs.w + 2 * xs.pad) * xs.stride
                var taps: [Int64] = []
                for ky in 0..<kh { for kx in 0..<kw { taps.append(Int64(ky * dh * rowBytes + kx * dw * xs.stride)) } }
                let step = LayerStep(layer: l, input: x, output: produced, starts: starts, outStarts: outStarts, taps: taps,
                                     groupsPerTap: xs.stride / 4, cout: d.n, weights: weights, epilogue: epilogue, flip: xs.signed)
                if starts.count == 1 {
                    let v = GEMV.Weights(codes: codes, n: d.n, k: k, bits: GEMV.Weights.width(of: codes))
                    step.vector = v
                    // Room for the widest padding (2-bit blocks of 256 codes), so the layer can
                    // also be timed at every width (`vectorLayerMilliseconds`).
                    plan.vectorLength = max(plan.vectorLength, (k + 255) / 256 * 256)
                    plan.vectorOutputs = max(plan.vectorOutputs, d.n)
                }
                plan.steps.append(.layer(step))
            case .relu:
                if xs.codes && !xs.signed {
                    produced = newSlot(xs, alias: x)
                } else {
                    var s = xs
                    s.signed = false
                    produced = newSlot(s)
                    plan.steps.append(.relu(from: x, to: produced))
                }
            case .clip(let lo, _) where lo == 0 && xs.codes && !xs.signed && clippedInEpilogue(i):
                // The layer before clamped its codes at the clip's top in its epilogue
                // (fusedPoint): they are already clipped.
                produced = newSlot(xs, alias: x)
            case .clip:
                throw QuantizationError("integer engine: node '\(node.name)' (Clip) runs only as a ReLU6-style clip (min 0) right after a layer whose output it clips before it is quantized")
            case .identity:
                produced = newSlot(xs, alias: x)
            case .flatten, .reshape:
                if case .reshape(let spec) = node.op {
                    let total = xs.c * xs.h * xs.w
                    let known = spec.dropFirst().filter { $0 > 0 }.reduce(1, *)
                    guard spec.count == 2, spec[1] == -1 || spec[1] == total || (spec[1] == 0 && known == total) else {
                        throw QuantizationError("integer engine: node '\(node.name)' reshapes to \(spec); only flattening to [N, features] is supported")
                    }
                }
                if !xs.codes, xs.h * xs.w > 1, let p = quantizeAt[out] {
                    // Quantizing commutes with flattening: quantize the sums where they are.
                    let q = newSlot(codesSlot(c: xs.c, h: xs.h, w: xs.w, point: p))
                    plan.steps.append(.quantize(from: x, to: q, scales: .init(try dyadics(xs.scales, to: p.scale), channels: xs.c), lo: p.qmin, hi: p.qmax, binary: p.binary))
                    slotOf[out] = newSlot(plan.slots[q], alias: q)
                    continue
                }
                if xs.h * xs.w == 1 || xs.codes {
                    // Codes keep their pixel layout: the linear layer reading them takes its
                    // weights in that order.
                    produced = newSlot(xs, alias: x)
                    slotOf[out] = produced
                    continue
                }
                if let readers = consumers[out], !readers.isEmpty, readers.allSatisfy({ if case .binarize = nodes[$0].op { return true }; return false }) {
                    // Only signs read it: they are taken channel by channel where the sums are.
                    produced = newSlot(xs, alias: x)
                    slotOf[out] = produced
                    continue
                }
                throw QuantizationError("integer engine: node '\(node.name)' flattens sums with per-channel scales; quantize before flattening")
            case .binarize(let scale):
                let s = codesSlot(c: xs.c, h: xs.h, w: xs.w, point: Point(scale: Double(scale), qmin: -1, qmax: 1, binary: true))
                if xs.binary {
                    // sign(sign x) = sign x: the same bits at the new scale.
                    produced = newSlot(s, alias: x)
                } else if let at = plan.steps.lastIndex(where: { if case .xnor(let l) = $0 { return l.output == x && l.signs == nil }; return false }),
                          case .xnor(let l) = plan.steps[at] {
                    // A binary layer made x: it packs the signs as it writes x.
                    produced = newSlot(s)
                    l.signs = produced
                } else {
                    produced = newSlot(s)
                    plan.steps.append(.sign(from: x, to: produced))
                }
            case .maxPool(let a):
                let oh = (xs.h + a.pads[0] + a.pads[2] - a.kernel[0]) / a.strides[0] + 1
                let ow = (xs.w + a.pads[1] + a.pads[3] - a.kernel[1]) / a.strides[1] + 1
                var s = xs
                (s.h, s.w) = (oh, ow)
                produced = newSlot(s)
                plan.steps.append(.maxPool(from: x, to: produced, a))
            case .averagePool(let a):
                guard xs.codes else { throw QuantizationError("integer engine: average pooling received sums, not codes") }
                var s = xs
                s.h = (xs.h + a.pads[0] + a.pads[2] - a.kernel[0]) / a.strides[0] + 1
                s.w = (xs.w + a.pads[1] + a.pads[3] - a.kernel[1]) / a.strides[1] + 1
                produced = newSlot(s)
                plan.steps.append(.averagePool(from: x, to: produced, a))
            case .globalAveragePool:
                guard xs.codes else { throw QuantizationError("integer engine: average pooling received sums, not codes") }
                var s = xs
                (s.h, s.w) = (1, 1)
                produced = newSlot(s)
                plan.steps.append(.globalAverage(from: x, to: produced))
            case .pointwise(let f):
                guard xs.codes, !xs.binary, let (pin, pout) = lookups[i] else {
                    throw QuantizationError("integer engine: \(f.onnxName) '\(node.name)' received sums, not codes")
                }
                produced = newSlot(codesSlot(c: xs.c, h: xs.h, w: xs.w, point: pout))
                plan.steps.append(.lookup(from: x, to: produced, table: Self.lookupTable(f, from: pin, to: pout), lowest: pin.qmin))
            case .concat:
                let inputs = try node.inputs.map { v -> Int in
                    guard let s = slotOf[v] else { throw QuantizationError("integer engine: node '\(node.name)' reads a value computed later") }
                    return s
                }
                let parts = inputs.map { plan.slots[$0] }
                guard parts.allSatisfy({ ($0.h, $0.w) == (xs.h, xs.w) && !$0.binary }) else {
                    throw QuantizationError("integer engine: concatenation '\(node.name)' joins \(parts.map { $0.binary ? "binary codes" : "[\($0.c), \($0.h), \($0.w)]" }.joined(separator: " and ")); the engine joins codes or sums of one height and width")
                }
                let p = quantizeAt[out]!
                produced = newSlot(codesSlot(c: parts.reduce(0) { $0 + $1.c }, h: xs.h, w: xs.w, point: p))
                plan.steps.append(.concat(from: inputs, to: produced, dyadics: try parts.map { try dyadics($0.scales, to: p.scale) }, lo: p.qmin, hi: p.qmax))
            case .add:
                guard let y = slotOf[node.inputs[1]] else { throw QuantizationError("integer engine: node '\(node.name)' reads a value computed later") }
                let ys = plan.slots[y]
                guard (xs.c, xs.h, xs.w) == (ys.c, ys.h, ys.w) else {
                    throw QuantizationError("integer engine: residual add of [\(xs.c), \(xs.h), \(xs.w)] and [\(ys.c), \(ys.h), \(ys.w)]")
                }
                let t = addTargets[i]!
                func toTarget(_ s: Slot) throws -> [Dyadic]? {
                    s.scales.count == 1 && s.scales[0] == t.scale && !s.codes ? nil : try dyadics(s.scales, to: t.scale)
                }
                let (da, db) = (try toTarget(xs), try toTarget(ys))
                /// A branch's scaling as the add step runs it (nil: as it is).
                func scales(_ d: [Dyadic]?) -> Requantize.Scales { d.map { .init($0, channels: xs.c) } ?? .identity(channels: xs.c) }
                // The add's output quantized at its target — through a ReLU that alone reads it, or
                // at once — is fused: the sum is clamped to codes where it is made.
                var fusion: (p: Point, lo: Int32, relu: Int?)? = nil
                if let readers = consumers[out], readers.count == 1, case .relu = nodes[readers[0]].op,
                   let p = quantizeAt[nodes[readers[0]].outputs[0]], p.scale == t.scale {
                    fusion = (p, max(p.qmin, 0), readers[0])
                } else if let p = quantizeAt[out], p.scale == t.scale, !p.binary {
                    fusion = (p, p.qmin, nil)
                }
                produced = newSlot(fusion.map { codesSlot(c: xs.c, h: xs.h, w: xs.w, point: Point(scale: $0.p.scale, qmin: $0.lo, qmax: $0.p.qmax)) }
                                   ?? Slot(c: xs.c, h: xs.h, w: xs.w, codes: false, signed: true, scales: [t.scale], stride: xs.c, buffer: 0))
                let (lo, hi) = fusion.map { ($0.lo, $0.p.qmax) } ?? (Int32.min, Int32.max)
                // A branch a layer (of any weights) scaled to this add in its epilogue takes the
                // other branch there too, and the ReLU and clamp: the layer moves here, after
                // both branches exist. (A step that already took a branch was scaled to an
                // earlier add.)
                func producer(_ slot: Int) -> Int? {
                    plan.steps.firstIndex {
                        switch $0 {
                        case .layer(let l): return l.output == slot && l.epilogue.mode == .scaledSums && l.residual == nil
                        case .xnor(let l): return l.output == slot && l.epilogue.mode == .scaledSums && l.residual == nil
                        default: return false
                        }
                    }
                }
                let pick: (Int, Int, [Dyadic]?)? = producer(x) != nil ? (x, y, db) : producer(y) != nil ? (y, x, da) : nil
                var tookBranch = false
                if let (m, other, dOther) = pick, let at = producer(m) {
                    let os = plan.slots[other]
                    var residual: IntegerEpilogue.Residual? = nil
                    if let d = dOther, d.count == 1 {
                        let (dm, ds) = (Int32(d[0].multiplier), Int32(d[0].shift))
                        residual = os.codes ? .codes(signed: os.signed, multiplier: dm, shift: ds) : .rescaledSums(multiplier: dm, shift: ds)
                    } else if !os.codes, dOther == nil {
                        residual = .sums
                    }
                    if let residual {
                        let target = plan.slots[produced]
                        let outStarts = (0..<target.h).flatMap { oy in (0..<target.w).map { target.offset(oy, $0) } }
                        let resStarts = (0..<os.h).flatMap { oy in (0..<os.w).map { os.offset(oy, $0) } }
                        func moved(_ e: IntegerEpilogue) -> IntegerEpilogue {
                            IntegerEpilogue(bias: e.bias, multiplier: e.multiplier, shift: e.shift, lo: lo, hi: hi,
                                            mode: fusion == nil ? .scaledSums : .codes, residual: residual)
                        }
                        switch plan.steps.remove(at: at) {
                        case .layer(let l):
                            let fused = LayerStep(layer: l.layer, input: l.input, output: produced, starts: l.starts, outStarts: outStarts,
                                                  taps: l.taps, groupsPerTap: l.groupsPerTap, cout: l.cout, weights: l.weights,
                                                  epilogue: moved(l.epilogue), flip: l.flip != 0)
                            (fused.residual, fused.resStarts, fused.vector) = (other, resStarts, l.vector)
                            plan.steps.append(.layer(fused))
                        case .xnor(let l):
                            let fused = XnorStep(layer: l.layer, input: l.input, output: produced, geometry: l.geometry, weights: l.weights,
                                                 shift: l.shift, epilogue: moved(l.epilogue), outStarts: outStarts)
                            (fused.residual, fused.resStarts) = (other, resStarts)
                            plan.steps.append(.xnor(fused))
                        default: preconditionFailure("producer() finds layers only")
                        }
                        tookBranch = true
                    }
                }
                if !tookBranch {
                    plan.steps.append(.add(a: x, b: y, to: produced, da: scales(da), db: scales(db), codes: fusion.map { ($0.lo, $0.p.qmax) }))
                }
                if let (_, _, relu) = fusion {
                    slotOf[out] = produced
                    // The ReLU and its quantization are done.
                    if let relu { slotOf[nodes[relu].outputs[0]] = produced; skip.insert(relu) }
                    continue
                }
            default:
                throw QuantizationError("integer engine: node '\(node.name)' (\(node.op.onnxName)) has no integer implementation")
            }
            // Values the static walk quantizes when produced (sums not already turned to codes).
            if let p = quantizeAt[out], !plan.slots[produced].codes {
                let s = plan.slots[produced]
                let q = newSlot(codesSlot(c: s.c, h: s.h, w: s.w, point: p))
                plan.steps.append(.quantize(from: produced, to: q, scales: .init(try dyadics(s.scales, to: p.scale), channels: s.c), lo: p.qmin, hi: p.qmax, binary: p.binary))
                produced = q
            }
            slotOf[out] = produced
        }
        guard let y = slotOf[logits] else { throw QuantizationError("integer engine: the output is never computed") }
        plan.output = y
        return plan
    }

    /// The table of `f` from codes at `input` to codes at `output`, computed as the dyadic
    /// simulation does: each code times its scale (in Double, stored as Float), `f` in Float,
    /// divided by the output scale, rounded half to even and clamped.
    static func lookupTable(_ f: Pointwise, from input: Point, to output: Point) -> [UInt8] {
        (input.qmin...input.qmax).map { c in
            let x = Float(Double(c) * input.scale)
            let q = min(max((Double(f.value(x)) / output.scale).rounded(.toNearestOrEven), Double(output.qmin)), Double(output.qmax))
            return UInt8(truncatingIfNeeded: Int32(q))
        }
    }
}
