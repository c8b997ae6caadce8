import Foundation
import Kernels
import Network
import Tensors

/// How the engine runs: the graph compiled once into steps over per-image buffers. Codes are
/// bytes in NHWC order (each pixel's channels contiguous, padded to a multiple of 4), so a
/// convolution's patches are runs of 4-byte channel groups copied straight into the tile
/// kernel's layout, and a layer's requantization (bias, dyadic multiply, ReLU, clamp) happens in
/// the kernel's epilogue as the sums leave the registers. Where a layer's output passes through
/// ReLU, max pooling or flattening before it is quantized, the layer quantizes at once: those
/// commute with a monotone per-channel requantization, so the codes are the same. A layer that
/// feeds a residual add requantizes to the add's scale in its epilogue. Images run in parallel,
/// each worker with its own buffers.
extension IntegerModel {
    /// A value of the plan, per image: codes (bytes, `stride` ≥ c per pixel) or Int32 sums.
    struct Slot {
        var c: Int, h: Int, w: Int
        var codes: Bool
        var signed: Bool
        /// Per channel for sums; one entry for codes.
        var scales: [Double]
        /// Bytes (codes) or Int32s (sums) from one pixel to the next.
        var stride: Int
        /// The buffer holding it (aliases share one).
        var buffer: Int
        /// Zero pixels around codes (so convolutions read padding without bounds checks).
        var pad: Int = 0
        /// Binary codes (±1).
        var binary = false
        var elements: Int { (h + 2 * pad) * (w + 2 * pad) * stride }
        /// Where pixel (y, x) starts, in elements.
        func offset(_ y: Int, _ x: Int) -> Int { ((y + pad) * (w + 2 * pad) + x + pad) * stride }
    }

    /// A convolution or linear layer: a kernel over the input slot's pixels (a linear layer is a
    /// kernel covering the whole input), weights in the input's memory order, read in place.
    final class LayerStep {
        /// The conv/linear layer (index into `layers`), the input and output slots.
        let layer: Int, input: Int, output: Int
        /// Per output pixel: where its receptive field starts in the input (bytes) and where its
        /// outputs go in the output slot (elements); the taps' byte offsets.
        let starts: [Int], outStarts: [Int], taps: [Int64]
        let groupsPerTap: Int, cout: Int
        let weights: IntegerWeights
        let epilogue: IntegerEpilogue
        /// Signed input codes run through the unsigned kernel shifted by 128 (bias corrected).
        let flip: UInt32
        /// A residual branch added in the epilogue: its slot and per-pixel starts (elements).
        var residual: Int? = nil
        var resStarts: [Int] = []
        init(layer: Int, input: Int, output: Int, starts: [Int], outStarts: [Int], taps: [Int64], groupsPerTap: Int, cout: Int,
             weights: IntegerWeights, epilogue: IntegerEpilogue, flip: Bool) {
            self.layer = layer; self.input = input; self.output = output; self.starts = starts; self.outStarts = outStarts; self.taps = taps
            self.groupsPerTap = groupsPerTap; self.cout = cout; self.weights = weights; self.epilogue = epilogue
            self.flip = flip ? 0x8080_8080 : 0
        }
    }

    /// A layer with binary weights reading binary codes: XNOR and popcount over each valid tap
    /// (padding contributes nothing, as zeros do in the float convolution), Int32 sums out.
    final class XnorStep {
        let layer: Int, input: Int, output: Int
        let kh: Int, kw: Int, sh: Int, sw: Int, dh: Int, dw: Int, padTop: Int, padLeft: Int
        let outH: Int, outW: Int, cout: Int, channels: Int, words: Int
        /// Weight sign bits (1 = −1): [cout][tap][words].
        let weights: [UInt64]
        let bias: [Int32]
        init(layer: Int, input: Int, output: Int, kh: Int, kw: Int, sh: Int, sw: Int, dh: Int, dw: Int, padTop: Int, padLeft: Int,
             outH: Int, outW: Int, cout: Int, channels: Int, weights: [UInt64], bias: [Int32]) {
            self.layer = layer; self.input = input; self.output = output; self.kh = kh; self.kw = kw; self.sh = sh; self.sw = sw; self.dh = dh; self.dw = dw
            self.padTop = padTop; self.padLeft = padLeft; self.outH = outH; self.outW = outW; self.cout = cout
            self.channels = channels; words = (channels + 63) / 64; self.weights = weights; self.bias = bias
        }
    }

    enum Step {
        case input(to: Int, point: Point)
        case layer(LayerStep)
        case xnor(XnorStep)
        case relu(from: Int, to: Int)
        /// Sums to codes: per-channel dyadic, clamp; or, binary, the sign.
        case quantize(from: Int, to: Int, dyadics: [Dyadic], lo: Int32, hi: Int32, binary: Bool)
        case maxPool(from: Int, to: Int, PoolAttributes)
        case globalAverage(from: Int, to: Int)
        /// Both branches to the target scale, summed; with `codes`, ReLU and clamp to codes.
        case add(a: Int, b: Int, to: Int, da: [Dyadic]?, db: [Dyadic]?, codes: (lo: Int32, hi: Int32)?)
    }

    struct Plan {
        var slots: [Slot] = []
        var steps: [Step] = []
        var output: Int = 0
        /// Per buffer: element count and whether it holds bytes.
        var buffers: [(count: Int, bytes: Bool)] = []
    }

    /// Compiles the graph (BN folded, quantization points known) into a plan.
    func compilePlan() throws -> Plan {
        var plan = Plan()
        let nodes = folded.nodes
        var consumers: [String: [Int]] = [:]
        for (i, node) in nodes.enumerated() { for v in node.inputs { consumers[v, default: []].append(i) } }
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
            Slot(c: c, h: h, w: w, codes: true, signed: p.qmin < 0, scales: [p.scale], stride: (c + 3) / 4 * 4, buffer: 0, pad: pad,
                 binary: p.binary)
        }
        // Where a layer's output is quantized, if only ReLU, max pooling, flattening or identity
        // lie between them: the point, and whether a ReLU does.
        func fusedPoint(after value: String) -> (Point, relu: Bool)? {
            var v = value, relu = false
            while quantizeAt[v] == nil {
                guard v != folded.output, let readers = consumers[v], readers.count == 1 else { return nil }
                switch nodes[readers[0]].op {
                case .relu: relu = true
                case .maxPool, .flatten, .reshape, .identity: break
                default: return nil
                }
                v = nodes[readers[0]].outputs[0]
            }
            // Binary codes are signs, which the requantizing epilogue does not produce.
            return quantizeAt[v]!.binary ? nil : (quantizeAt[v]!, relu)
        }
        // The add a value feeds (its only reader), and that add's target point.
        func feedsAdd(_ value: String) -> Point? {
            guard value != folded.output, let readers = consumers[value], readers.count == 1, case .add = nodes[readers[0]].op else { return nil }
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

        var skip = Set<Int>()
        for (i, node) in nodes.enumerated() where !skip.contains(i) {
            let out = node.outputs[0]
            guard let x = slotOf[node.inputs[0]] else { throw QuantizationError("integer engine: node '\(node.name)' reads a value computed later") }
            let xs = plan.slots[x]
            var produced: Int
            switch node.op {
            case .conv, .gemm:
                let l = layerOfNode[i]!
                guard xs.codes else { throw QuantizationError("integer engine: layer '\(folded.layers[l].name)' received sums, not codes") }
                let d = layers[l]
                let isConv: Bool = { if case .conv = node.op { return true }; return false }()
                var (kh, kw, sh, sw, dh, dw, pt, pl, pb, pr) = (xs.h, xs.w, 1, 1, 1, 1, 0, 0, 0, 0)
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
                if d.bits == 1 && xs.binary {
                    // XNOR-popcount: weight sign bits per output channel and tap.
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
                    let slot = Slot(c: d.n, h: oh, w: ow, codes: false, signed: true, scales: d.scales.map { $0 * xs.scales[0] }, stride: d.n, buffer: 0)
                    produced = newSlot(slot)
                    plan.steps.append(.xnor(XnorStep(layer: l, input: x, output: produced, kh: kh, kw: kw, sh: sh, sw: sw, dh: dh, dw: dw, padTop: pt, padLeft: pl,
                                                     outH: oh, outW: ow, cout: d.n, channels: xs.c, weights: bits,
                                                     bias: integerBias(l, inputScale: xs.scales[0]) ?? [Int32](repeating: 0, count: d.n))))
                    if let p = quantizeAt[out] {
                        let q = newSlot(codesSlot(c: d.n, h: oh, w: ow, point: p))
                        plan.steps.append(.quantize(from: produced, to: q, dyadics: try dyadics(slot.scales, to: p.scale), lo: p.qmin, hi: p.qmax, binary: p.binary))
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
                let epilogue: IntegerEpilogue
                let slot: Slot
                if let (p, relu) = fusedPoint(after: out) {
                    let dy = try dyadics(sums, to: p.scale)
                    epilogue = IntegerEpilogue(bias: bias, multiplier: dy.map { Int32($0.multiplier) }, shift: dy.map { Int32($0.shift) },
                                               lo: relu ? max(p.qmin, 0) : p.qmin, hi: p.qmax, mode: .codes)
                    slot = codesSlot(c: d.n, h: oh, w: ow, point: Point(scale: p.scale, qmin: relu ? max(p.qmin, 0) : p.qmin, qmax: p.qmax))
                } else if let t = feedsAdd(out) {
                    let dy = try dyadics(sums, to: t.scale)
                    epilogue = IntegerEpilogue(bias: bias, multiplier: dy.map { Int32($0.multiplier) }, shift: dy.map { Int32($0.shift) },
                                               lo: Int32.min, hi: Int32.max, mode: .scaledSums)
                    slot = Slot(c: d.n, h: oh, w: ow, codes: false, signed: true, scales: [t.scale], stride: d.n, buffer: 0)
                } else {
                    epilogue = IntegerEpilogue(bias: bias, multiplier: bias.map { _ in 0 }, shift: bias.map { _ in 1 }, lo: 0, hi: 0, mode: .sums)
                    slot = Slot(c: d.n, h: oh, w: ow, codes: false, signed: true, scales: sums, stride: d.n, buffer: 0)
                }
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
                plan.steps.append(.layer(LayerStep(layer: l, input: x, output: produced, starts: starts, outStarts: outStarts, taps: taps,
                                                   groupsPerTap: xs.stride / 4, cout: d.n, weights: weights, epilogue: epilogue,
                                                   flip: xs.signed)))
            case .relu:
                if xs.codes && !xs.signed {
                    produced = newSlot(xs, alias: x)
                } else {
                    var s = xs
                    s.signed = false
                    produced = newSlot(s)
                    plan.steps.append(.relu(from: x, to: produced))
                }
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
                    plan.steps.append(.quantize(from: x, to: q, dyadics: try dyadics(xs.scales, to: p.scale), lo: p.qmin, hi: p.qmax, binary: p.binary))
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
                throw QuantizationError("integer engine: node '\(node.name)' flattens sums with per-channel scales; quantize before flattening")
            case .maxPool(let a):
                let oh = (xs.h + a.pads[0] + a.pads[2] - a.kernel[0]) / a.strides[0] + 1
                let ow = (xs.w + a.pads[1] + a.pads[3] - a.kernel[1]) / a.strides[1] + 1
                var s = xs
                (s.h, s.w) = (oh, ow)
                produced = newSlot(s)
                plan.steps.append(.maxPool(from: x, to: produced, a))
            case .globalAveragePool:
                guard xs.codes else { throw QuantizationError("integer engine: average pooling received sums, not codes") }
                var s = xs
                (s.h, s.w) = (1, 1)
                produced = newSlot(s)
                plan.steps.append(.globalAverage(from: x, to: produced))
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
                // A ReLU reading only the add, its output quantized at the add's target: fused.
                if let readers = consumers[out], readers.count == 1, case .relu = nodes[readers[0]].op,
                   let p = quantizeAt[nodes[readers[0]].outputs[0]], p.scale == t.scale {
                    let lo = max(p.qmin, 0)
                    produced = newSlot(codesSlot(c: xs.c, h: xs.h, w: xs.w, point: Point(scale: p.scale, qmin: lo, qmax: p.qmax)))
                    // A branch a layer scaled in its epilogue takes the other branch, the ReLU and
                    // the clamp there too (the layer moves here, after both branches exist).
                    func producer(_ slot: Int) -> Int? {
                        plan.steps.firstIndex { if case .layer(let l) = $0 { return l.output == slot && l.epilogue.mode == .scaledSums }; return false }
                    }
                    let pick: (Int, Int, [Dyadic]?)? = producer(x) != nil ? (x, y, db) : producer(y) != nil ? (y, x, da) : nil
                    if let (m, other, dOther) = pick, let at = producer(m), case .layer(let l) = plan.steps[at] {
                        let os = plan.slots[other]
                        var residual: IntegerEpilogue.Residual? = nil
                        if os.codes, let d = dOther, d.count == 1 {
                            residual = .codes(signed: os.signed, multiplier: Int32(d[0].multiplier), shift: Int32(d[0].shift))
                        } else if !os.codes, dOther == nil {
                            residual = .sums
                        }
                        if let residual {
                            let e = l.epilogue, target = plan.slots[produced]
                            let fused = LayerStep(layer: l.layer, input: l.input, output: produced, starts: l.starts,
                                                  outStarts: (0..<target.h).flatMap { oy in (0..<target.w).map { target.offset(oy, $0) } },
                                                  taps: l.taps, groupsPerTap: l.groupsPerTap, cout: l.cout, weights: l.weights,
                                                  epilogue: IntegerEpilogue(bias: e.bias, multiplier: e.multiplier, shift: e.shift, lo: lo, hi: p.qmax,
                                                                            mode: .codes, residual: residual),
                                                  flip: l.flip != 0)
                            fused.residual = other
                            fused.resStarts = (0..<os.h).flatMap { oy in (0..<os.w).map { os.offset(oy, $0) } }
                            plan.steps.remove(at: at)
                            plan.steps.append(.layer(fused))
                            slotOf[out] = produced
                            slotOf[nodes[readers[0]].outputs[0]] = produced
                            skip.insert(readers[0])
                            continue
                        }
                    }
                    plan.steps.append(.add(a: x, b: y, to: produced, da: da, db: db, codes: (lo, p.qmax)))

                    slotOf[out] = produced
                    // The ReLU and its quantization are done.
                    slotOf[nodes[readers[0]].outputs[0]] = produced
                    skip.insert(readers[0])
                    continue
                }
                produced = newSlot(Slot(c: xs.c, h: xs.h, w: xs.w, codes: false, signed: true, scales: [t.scale], stride: xs.c, buffer: 0))
                plan.steps.append(.add(a: x, b: y, to: produced, da: da, db: db, codes: nil))
            default:
                throw QuantizationError("integer engine: node '\(node.name)' (\(node.op.onnxName)) has no integer implementation")
            }
            // Values the static walk quantizes when produced (sums not already turned to codes).
            if let p = quantizeAt[out], !plan.slots[produced].codes {
                let s = plan.slots[produced]
                let q = newSlot(codesSlot(c: s.c, h: s.h, w: s.w, point: p))
                plan.steps.append(.quantize(from: produced, to: q, dyadics: try dyadics(s.scales, to: p.scale), lo: p.qmin, hi: p.qmax, binary: p.binary))
                produced = q
            }
            slotOf[out] = produced
        }
        guard let y = slotOf[folded.output] else { throw QuantizationError("integer engine: the output is never computed") }
        plan.output = y
        return plan
    }
}

extension IntegerModel {
    /// One worker's buffers: every slot's storage for one image, and the patch sliver.
    final class Workspace {
        let bytes: [UnsafeMutablePointer<UInt8>?]
        let ints: [UnsafeMutablePointer<Int32>?]
        let rowsIn = UnsafeMutablePointer<UnsafePointer<UInt8>>.allocate(capacity: IGEMM.tileRows)
        let rowsOut = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: IGEMM.tileRows)
        let rowsRes = UnsafeMutablePointer<UnsafeRawPointer>.allocate(capacity: IGEMM.tileRows)
        init(_ plan: Plan) {
            bytes = plan.buffers.map { $0.bytes ? UnsafeMutablePointer<UInt8>.allocate(capacity: max($0.count, 1)) : nil }
            ints = plan.buffers.map { $0.bytes ? nil : UnsafeMutablePointer<Int32>.allocate(capacity: max($0.count, 1)) }
            for (b, info) in zip(bytes, plan.buffers) { b?.initialize(repeating: 0, count: max(info.count, 1)) }
            for (b, info) in zip(ints, plan.buffers) { b?.initialize(repeating: 0, count: max(info.count, 1)) }
        }
        deinit {
            bytes.forEach { $0?.deallocate() }
            ints.forEach { $0?.deallocate() }
            rowsIn.deallocate(); rowsOut.deallocate(); rowsRes.deallocate()
        }
    }

    /// Runs the plan on one image (NCHW floats), writing its logits.
    func execute(_ plan: Plan, _ ws: Workspace, image: UnsafePointer<Float>, logits: UnsafeMutablePointer<Float>) {
        func bytes(_ s: Int) -> UnsafeMutablePointer<UInt8> { ws.bytes[plan.slots[s].buffer]! }
        func ints(_ s: Int) -> UnsafeMutablePointer<Int32> { ws.ints[plan.slots[s].buffer]! }
        /// Element e of a slot (a code or a sum) as a signed integer.
        @inline(__always) func read(_ s: Slot, _ b: UnsafeMutablePointer<UInt8>?, _ i: UnsafeMutablePointer<Int32>?, _ e: Int) -> Int64 {
            if let b { return s.signed ? Int64(Int8(bitPattern: b[e])) : Int64(b[e]) }
            return Int64(i![e])
        }
        for step in plan.steps {
            switch step {
            case let .input(to, p):
                let s = plan.slots[to], out = bytes(to)
                for ch in 0..<s.c {
                    for y in 0..<s.h {
                        for x in 0..<s.w {
                            let v = image[(ch * s.h + y) * s.w + x]
                            if p.binary { out[s.offset(y, x) + ch] = v >= 0 ? 1 : 0xFF; continue }
                            let q = (Double(v) / p.scale).rounded(.toNearestOrAwayFromZero)
                            out[s.offset(y, x) + ch] = UInt8(truncatingIfNeeded: Int32(min(max(q, Double(p.qmin)), Double(p.qmax))))
                        }
                    }
                }
            case .layer(let l):
                runLayer(l, plan, ws)
            case .xnor(let l):
                runXnor(l, plan, ws)
            case let .relu(from, to):
                let (s, t) = (plan.slots[from], plan.slots[to])
                for y in 0..<s.h {
                    for x in 0..<s.w {
                        let (a, b) = (s.offset(y, x), t.offset(y, x))
                        if s.codes {
                            let (src, dst) = (bytes(from), bytes(to))
                            for ch in 0..<s.c { dst[b + ch] = Int8(bitPattern: src[a + ch]) < 0 ? 0 : src[a + ch] }
                        } else {
                            let (src, dst) = (ints(from), ints(to))
                            for ch in 0..<s.c { dst[b + ch] = max(src[a + ch], 0) }
                        }
                    }
                }
            case let .quantize(from, to, dyadics, lo, hi, binary):
                let s = plan.slots[from], t = plan.slots[to]
                let (a, b) = (ints(from), bytes(to))
                for y in 0..<s.h {
                    for x in 0..<s.w {
                        for ch in 0..<s.c {
                            if binary { b[t.offset(y, x) + ch] = a[s.offset(y, x) + ch] >= 0 ? 1 : 0xFF; continue }
                            let d = dyadics.count == 1 ? dyadics[0] : dyadics[ch]
                            let q = min(max(d.apply(Int64(a[s.offset(y, x) + ch])), Int64(lo)), Int64(hi))
                            b[t.offset(y, x) + ch] = UInt8(truncatingIfNeeded: q)
                        }
                    }
                }
            case let .maxPool(from, to, a):
                let s = plan.slots[from], t = plan.slots[to]
                let (sb, si) = (s.codes ? bytes(from) : nil, s.codes ? nil : ints(from))
                let (tb, ti) = (t.codes ? bytes(to) : nil, t.codes ? nil : ints(to))
                for oy in 0..<t.h {
                    for ox in 0..<t.w {
                        for ch in 0..<s.c {
                            var m = Int64.min
                            for ky in 0..<a.kernel[0] {
                                let iy = oy * a.strides[0] - a.pads[0] + ky
                                guard iy >= 0 && iy < s.h else { continue }
                                for kx in 0..<a.kernel[1] {
                                    let ix = ox * a.strides[1] - a.pads[1] + kx
                                    guard ix >= 0 && ix < s.w else { continue }
                                    m = max(m, read(s, sb, si, s.offset(iy, ix) + ch))
                                }
                            }
                            let e = t.offset(oy, ox) + ch
                            if let tb { tb[e] = UInt8(truncatingIfNeeded: m) } else { ti![e] = Int32(truncatingIfNeeded: m) }
                        }
                    }
                }
            case let .globalAverage(from, to):
                let (s, t) = (plan.slots[from], plan.slots[to])
                let (a, b) = (bytes(from), bytes(to))
                let d = Int64(s.h * s.w)
                for ch in 0..<s.c {
                    var sum: Int64 = 0
                    for y in 0..<s.h { for x in 0..<s.w { sum += read(s, a, nil, s.offset(y, x) + ch) } }
                    // Divide rounding half to even, as the simulation's fake quantization does.
                    var q = sum >= 0 ? sum / d : -((-sum) / d)
                    let r = sum - q * d
                    if 2 * abs(r) > d || (2 * abs(r) == d && q % 2 != 0) { q += sum >= 0 ? 1 : -1 }
                    b[t.offset(0, 0) + ch] = UInt8(truncatingIfNeeded: q)
                }
            case let .add(x, y, to, da, db, codes):
                let (xs, ys, t) = (plan.slots[x], plan.slots[y], plan.slots[to])
                let (xb, xi) = (xs.codes ? bytes(x) : nil, xs.codes ? nil : ints(x))
                let (yb, yi) = (ys.codes ? bytes(y) : nil, ys.codes ? nil : ints(y))
                let (tb, ti) = (t.codes ? bytes(to) : nil, t.codes ? nil : ints(to))
                @inline(__always) func scaled(_ v: Int64, _ d: [Dyadic]?, _ ch: Int) -> Int32 {
                    guard let d else { return Int32(truncatingIfNeeded: v) }
                    return Int32(truncatingIfNeeded: min(max((d.count == 1 ? d[0] : d[ch]).apply(v), Int64(Int32.min)), Int64(Int32.max)))
                }
                for py in 0..<t.h {
                    for px in 0..<t.w {
                        for ch in 0..<t.c {
                            let sum = scaled(read(xs, xb, xi, xs.offset(py, px) + ch), da, ch) &+ scaled(read(ys, yb, yi, ys.offset(py, px) + ch), db, ch)
                            if let (lo, hi) = codes {
                                tb![t.offset(py, px) + ch] = UInt8(truncatingIfNeeded: min(max(sum, lo), hi))
                            } else {
                                ti![t.offset(py, px) + ch] = sum
                            }
                        }
                    }
                }
            }
        }
        let s = plan.slots[plan.output]
        let (b, i) = (s.codes ? bytes(plan.output) : nil, s.codes ? nil : ints(plan.output))
        for ch in 0..<s.c {
            let scale = s.scales.count == 1 ? s.scales[0] : s.scales[ch]
            for y in 0..<s.h {
                for x in 0..<s.w {
                    logits[(ch * s.h + y) * s.w + x] = Float(Double(read(s, b, i, s.offset(y, x) + ch)) * scale)
                }
            }
        }
    }

    /// A convolution or linear layer on one image, 12 output pixels at a time, each read in place
    /// from the (padded) input, 32 output channels per kernel call.
    func runLayer(_ l: LayerStep, _ plan: Plan, _ ws: Workspace) {
        let input = UnsafePointer(ws.bytes[plan.slots[l.input].buffer]!)
        let outSlot = plan.slots[l.output]
        let output = outSlot.codes ? UnsafeMutableRawPointer(ws.bytes[outSlot.buffer]!) : UnsafeMutableRawPointer(ws.ints[outSlot.buffer]!)
        let elementBytes = outSlot.codes ? 1 : 4
        var residual: UnsafeRawPointer? = nil, residualBytes = 1
        if let r = l.residual {
            let rs = plan.slots[r]
            residual = rs.codes ? UnsafeRawPointer(ws.bytes[rs.buffer]!) : UnsafeRawPointer(ws.ints[rs.buffer]!)
            residualBytes = rs.codes ? 1 : 4
        }
        let pixels = l.starts.count
        l.weights.data.withUnsafeBufferPointer { w in
            l.taps.withUnsafeBufferPointer { taps in
                var p0 = 0
                while p0 < pixels {
                    let rows = min(IGEMM.tileRows, pixels - p0)
                    for i in 0..<rows {
                        ws.rowsIn[i] = input + l.starts[p0 + i]
                        ws.rowsOut[i] = output + l.outStarts[p0 + i] * elementBytes
                        ws.rowsRes[i] = residual.map { $0 + l.resStarts[p0 + i] * residualBytes } ?? UnsafeRawPointer(input)
                    }
                    var column = 0
                    while column < l.cout {
                        let cols = min(32, l.cout - column)
                        IGEMM.convTile(rows: rows, cols: cols, a: ws.rowsIn, taps: taps.baseAddress!, ntaps: taps.count, gpp: l.groupsPerTap,
                                       flip: l.flip, weights: l.weights, base: w.baseAddress!, column: column, epilogue: l.epilogue,
                                       out: ws.rowsOut, res: ws.rowsRes)
                        column += cols
                    }
                    p0 += rows
                }
            }
        }
    }

    /// A binary layer on one image: each input pixel's signs packed into words, then per output
    /// pixel and channel Σ over valid taps of (C − 2·popcount(x XOR w)), plus the bias.
    func runXnor(_ l: XnorStep, _ plan: Plan, _ ws: Workspace) {
        let s = plan.slots[l.input], t = plan.slots[l.output]
        let input = ws.bytes[s.buffer]!, output = ws.ints[t.buffer]!
        var packed = [UInt64](repeating: 0, count: s.h * s.w * l.words)
        for y in 0..<s.h {
            for x in 0..<s.w {
                let base = s.offset(y, x)
                for ch in 0..<l.channels where Int8(bitPattern: input[base + ch]) < 0 {
                    packed[(y * s.w + x) * l.words + ch / 64] |= 1 << UInt64(ch % 64)
                }
            }
        }
        let taps = l.kh * l.kw
        for oy in 0..<l.outH {
            for ox in 0..<l.outW {
                let dst = t.offset(oy, ox)
                for co in 0..<l.cout {
                    var dot = 0
                    for ky in 0..<l.kh {
                        let iy = oy * l.sh - l.padTop + ky * l.dh
                        guard iy >= 0 && iy < s.h else { continue }
                        for kx in 0..<l.kw {
                            let ix = ox * l.sw - l.padLeft + kx * l.dw
                            guard ix >= 0 && ix < s.w else { continue }
                            let a = (iy * s.w + ix) * l.words, w = ((co * taps) + ky * l.kw + kx) * l.words
                            var differing = 0
                            for word in 0..<l.words { differing += (packed[a + word] ^ l.weights[w + word]).nonzeroBitCount }
                            dot += l.channels - 2 * differing
                        }
                    }
                    output[dst + co] = Int32(truncatingIfNeeded: dot) &+ l.bias[co]
                }
            }
        }
    }

    /// Milliseconds per image of each conv/linear layer as the engine runs it — its kernel with
    /// requantization (and any residual add) in the epilogue, on one core — by layer name: the
    /// best of repeats lasting at least `minimumTime` seconds, on buffers one image filled.
    public func layerMilliseconds(minimumTime: Double = 0.02) throws -> [String: Double] {
        let ws = Workspace(plan)
        var rng = RandomGenerator(seed: 9)
        let image = (0..<folded.inputShape.reduce(1, *)).map { _ in rng.normal() }
        let out = plan.slots[plan.output]
        var logits = [Float](repeating: 0, count: out.c * out.h * out.w)
        image.withUnsafeBufferPointer { x in logits.withUnsafeMutableBufferPointer { execute(plan, ws, image: x.baseAddress!, logits: $0.baseAddress!) } }
        var times: [String: Double] = [:]
        for step in plan.steps {
            try Interrupt.check()
            switch step {
            case .layer(let l): times[folded.layers[l.layer].name] = Stopwatch.best(budget: minimumTime) { runLayer(l, plan, ws) } * 1000
            case .xnor(let l): times[folded.layers[l.layer].name] = Stopwatch.best(budget: minimumTime) { runXnor(l, plan, ws) } * 1000
            default: continue
            }
        }
        return times
    }
}
