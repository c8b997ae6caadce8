import Foundation
import Kernels
import Tensors

/// Float inference compiled once, as the integer engine is: batch norms folded into the
/// convolutions before them, every value of one image stored channels-last (NHWC, each pixel's
/// channels contiguous) with a border of zeros as wide as its widest reader's padding, so a
/// convolution reads its receptive fields in place (no im2col, no padded copy); weights packed
/// once for the tile kernel (`FloatTile`); bias, ReLU / Clip and a residual add applied in the
/// tile's epilogue as the sums leave the registers; a max pooling whose windows tile its input
/// runs inside the convolution before it (FloatPlan+Pooled). A worker runs a micro-batch of images
/// through every step, so a layer's tiles take pixels of several images at once (a linear
/// layer's rows are images) and the activations stay in cache from one layer to the next.
///
/// Covers Conv (dense or depthwise), BatchNormalization after a Conv, Relu, Clip, Add,
/// MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape to [N, features], Gemm and
/// Identity; `init` throws `FloatPlan.Unsupported` for anything else (the graph interpreter
/// runs such models).
public final class FloatPlan: @unchecked Sendable {
    /// Why a model has no plan: the first node (or input) the plan cannot run.
    public struct Unsupported: Error, CustomStringConvertible {
        public let description: String
    }

    /// One value of one image: c channels × h × w, channels-last, `pad` zero pixels around.
    struct Slot {
        var c: Int, h: Int, w: Int, pad: Int
        var buffer = -1
        var elements: Int { (h + 2 * pad) * (w + 2 * pad) * c }
        /// Where pixel (y, x) starts, in floats; y and x may reach into the border.
        func offset(_ y: Int, _ x: Int) -> Int { ((y + pad) * (w + 2 * pad) + x + pad) * c }
        var layout: [Int] { [c, h, w, pad] }
        /// Copies `images` NCHW images from `src` into the interiors of the slot's images at `base`.
        func load(planes src: UnsafePointer<Float>, into base: UnsafeMutablePointer<Float>, images: Int) {
            let plane = h * w
            for i in 0..<images {
                for y in 0..<h {
                    let d = base + i * elements + offset(y, 0), row = src + i * c * plane + y * w
                    if c == 1 { d.update(from: row, count: w); continue }
                    for x in 0..<w { for ch in 0..<c { d[x * c + ch] = row[ch * plane + x] } }
                }
            }
        }
        /// Calls `body(image, y, x, pixel)` for every pixel of `images` images stored from
        /// `base`, `pixel` pointing at its channels.
        @inline(__always)
        func forEachPixel(_ base: UnsafeMutablePointer<Float>, images: Int, _ body: (Int, Int, Int, UnsafeMutablePointer<Float>) -> Void) {
            for i in 0..<images { for y in 0..<h { for x in 0..<w { body(i, y, x, base + i * elements + offset(y, x)) } } }
        }
    }

    /// A convolution or linear layer through the tile kernel, or a depthwise convolution.
    final class LayerStep {
        let input: Int, output: Int
        var residual: Int? = nil
        /// Per output pixel: where its receptive field starts in the input, where its outputs go,
        /// where its residual is read (floats, within one image).
        let starts: [Int]
        var outStarts: [Int]
        var resStarts: [Int] = []
        let taps: [Int64]
        let cout: Int
        /// Dense layers: the tile's weights. Depthwise: tap t's weight for channel c at t·ldw + c.
        let tile: FloatTileWeights?
        /// Floats from one output pixel's receptive field to the next along an output row, and
        /// per output pixel whether the 12 from it lie that far apart (one tile along one row).
        var rowStep = 0
        var runs: [Bool] = []
        /// Whether the layer runs output row by output row (`FloatTile.runLine`; `rowStep` is
        /// then one of `FloatTile.rowSteps`), not in tiles of 12 pixels taken across rows and images.
        var lines = false
        /// A max pooling fused in (`fusePools`): the layer computes only the pixels its windows
        /// read, row of windows by row of windows, and writes their maxima to slot `to`; its own
        /// output slot then has no buffer.
        var pooled: Pooled? = nil
        struct Pooled { let to: Int, kh: Int, kw: Int }
        let depthwise: [Float], ldw: Int, bias: [Float]
        var lo = -Float.infinity, hi = Float.infinity
        init(input: Int, output: Int, starts: [Int], outStarts: [Int], taps: [Int64], cout: Int,
             tile: FloatTileWeights?, depthwise: [Float] = [], ldw: Int = 0, bias: [Float] = []) {
            self.input = input; self.output = output; self.starts = starts; self.outStarts = outStarts; self.taps = taps
            self.cout = cout; self.tile = tile; self.depthwise = depthwise; self.ldw = ldw; self.bias = bias
        }
    }

    enum Step {
        /// The image (NCHW floats) into its slot.
        case input(to: Int)
        case layer(LayerStep)
        case clamp(from: Int, to: Int, lo: Float, hi: Float)
        case add(a: Int, b: Int, to: Int, lo: Float, hi: Float)
        case maxPool(from: Int, to: Int, PoolAttributes)
        case averagePool(from: Int, to: Int, PoolAttributes)
        case globalAverage(from: Int, to: Int)
        /// Softmax over each image's features (a flattened value).
        case softmax(from: Int, to: Int)

        /// The slots the step reads, and the one it writes.
        var reads: [Int] {
            switch self {
            case .input: []
            case .layer(let l): [l.input] + (l.residual.map { [$0] } ?? [])
            case let .clamp(from, _, _, _), let .maxPool(from, _, _), let .averagePool(from, _, _), let .globalAverage(from, _),
                 let .softmax(from, _): [from]
            case let .add(a, b, _, _, _): [a, b]
            }
        }
        var writes: Int {
            switch self {
            case .input(let to), .clamp(_, let to, _, _), .add(_, _, let to, _, _), .maxPool(_, let to, _),
                 .averagePool(_, let to, _), .globalAverage(_, let to), .softmax(_, let to): to
            case .layer(let l): l.pooled?.to ?? l.output
            }
        }
    }

    let inputShape: [Int]
    var slots: [Slot] = []
    var steps: [Step] = []
    /// The slot holding the network's output, and whether the graph flattened it (its values
    /// then leave in NCHW order as one row per image).
    var output = 0, outputFlat = false
    /// Per buffer: floats per image.
    var buffers: [Int] = []
    /// Workspaces of finished runs, reused by the next (allocating and zeroing one per run cost
    /// more than a batch-1 ResNet-50's convolutions).
    var pool: [Workspace] = []
    let poolLock = NSLock()
    /// Images a worker runs through the plan at once.
    public private(set) var microBatch = 1

    /// Floats of scratch a lane needs for the fused poolings' convolution rows (`fusePools`).
    var pooledScratch = 0

    /// Compiles `model` (its batch norms folded first). Throws `Unsupported` naming the first
    /// node the plan cannot run. `fusingPools` false keeps each max pooling a step of its own
    /// (tests hold the fused layers to it).
    public init(_ model: Model, fusingPools: Bool = true) throws {
        inputShape = model.inputShape
        let m = try model.foldingBatchNorm()
        try compile(m)
        if fusingPools { fusePools() }
        assignBuffers()
        // Enough images that a micro-batch's largest value fills about 1 MB (L2), and that a
        // layer whose weights do not fit there (over 1 MB) has 64 rows to share each read of
        // them (ResNet-18's last stage: 9 pixels an image, 9.4 MB a layer); at most 256.
        let largest = slots.map(\.elements).max() ?? 1
        var images = 262_144 / max(1, largest)
        for case .layer(let l) in steps where (l.tile?.data.count ?? 0) > 262_144 {
            images = max(images, (64 + l.starts.count - 1) / l.starts.count)
        }
        // Every buffer of a micro-batch within the memory budget.
        var perImage = 0
        for b in buffers {
            let (sum, overflow) = perImage.addingReportingOverflow(b)
            guard !overflow, sum <= Tensor.maxElementCount else {
                throw Unsupported(description: "the values of one image take more than \(Tensor.maxElementCount) floats")
            }
            perImage = sum
        }
        microBatch = max(1, min(256, images, Tensor.maxElementCount / max(1, perImage)))
    }

    /// The output shape for a batch of n images.
    func outputShape(_ n: Int) -> [Int] {
        let s = slots[output]
        return outputFlat ? [n, s.c * s.h * s.w] : [n, s.c, s.h, s.w]
    }

    // MARK: compiling

    /// A value of the graph: its slot, and whether it was flattened (NCHW order across c, h, w).
    private struct Value { var slot: Int; var flat: Bool }

    private func compile(_ m: Model) throws {
        // Values computed from constants alone (weights made by ConstantOfShape, shapes, casts)
        // are computed once here.
        var folded: [String: Tensor] = [:]
        func constant(_ name: String) -> Tensor? { m.parameters[name] ?? m.buffers[name] ?? folded[name] }
        var readers: [String: [Int]] = [:]
        for (i, node) in m.nodes.enumerated() { for name in node.inputs where !name.isEmpty { readers[name, default: []].append(i) } }
        readers[m.output, default: []].append(m.nodes.count)
        /// The single reader of `name` (nil when several nodes, or the output, read it).
        func onlyReader(_ name: String) -> Int? {
            guard let r = readers[name], r.count == 1, r[0] < m.nodes.count else { return nil }
            return r[0]
        }
        // The border each value needs: its widest convolution reader's padding.
        var padNeeded: [String: Int] = [:]
        for node in m.nodes {
            if case .conv(let a) = node.op, let x = node.inputs.first, a.pads.count == 4 {
                padNeeded[x] = max(padNeeded[x] ?? 0, a.pads.max() ?? 0)
            }
        }
        // An Identity's output is its input's slot: the input takes the border.
        for node in m.nodes.reversed() {
            if case .identity = node.op, let x = node.inputs.first, let need = padNeeded[node.outputs[0]] {
                padNeeded[x] = max(padNeeded[x] ?? 0, need)
            }
        }
        var values: [String: Value] = [:]
        var shapeOf: [String: Value] = [:]
        // A value too large for memory (an absurd input shape) stops the compilation after the
        // node (the interpreter then names the problem); it stands in as one float meanwhile.
        var oversized: String? = nil
        func newSlot(_ name: String, c: Int, h: Int, w: Int) -> Int {
            let pad = padNeeded[name] ?? 0
            do { _ = try Tensor.elementCount(of: [c, h + 2 * pad, w + 2 * pad]) } catch {
                oversized = oversized ?? "value '\(name)' of [\(c), \(h), \(w)]: \(error)"
                slots.append(Slot(c: 1, h: 1, w: 1, pad: 0))
                return slots.count - 1
            }
            slots.append(Slot(c: c, h: h, w: w, pad: pad))
            return slots.count - 1
        }
        // The input: [C, H, W] or [F] (a vector of F channels at one pixel).
        let shape = m.inputShape
        guard shape.count == 3 || shape.count == 1, shape.allSatisfy({ $0 > 0 }) else {
            throw Unsupported(description: "input shape \(shape) (the plan takes [C, H, W] or [features])")
        }
        let inSlot = shape.count == 3 ? newSlot(m.input, c: shape[0], h: shape[1], w: shape[2]) : newSlot(m.input, c: shape[0], h: 1, w: 1)
        values[m.input] = Value(slot: inSlot, flat: shape.count == 1)
        steps.append(.input(to: inSlot))

        var done = Set<Int>()
        for (i, node) in m.nodes.enumerated() where !done.contains(i) {
            if let oversized { throw Unsupported(description: oversized) }
            func input(_ k: Int) throws -> Value {
                guard k < node.inputs.count, let v = values[node.inputs[k]] else {
                    throw Unsupported(description: "node '\(node.name)' (\(node.op.onnxName)) reads '\(k < node.inputs.count ? node.inputs[k] : "")', which is not an activation")
                }
                return v
            }
            let out = node.outputs[0]
            if !node.inputs.isEmpty, node.outputs.count == 1, node.inputs.allSatisfy({ $0.isEmpty || constant($0) != nil }) {
                do {
                    folded[out] = try node.forward(node.inputs.map { $0.isEmpty ? nil : constant($0) }, training: false, keepState: false).output
                } catch { throw Unsupported(description: "node '\(node.name)' (\(node.op.onnxName)) on constants: \(error)") }
                continue
            }
            switch node.op {
            case .conv(let a):
                let x = try input(0)
                guard !x.flat, node.inputs.count >= 2, let w = constant(node.inputs[1]), w.rank == 4 else {
                    throw Unsupported(description: "node '\(node.name)' (Conv): a constant 4-D weight on an image")
                }
                let bias = node.inputs.count > 2 && !node.inputs[2].isEmpty ? constant(node.inputs[2]) : nil
                let step = try convolution(node, a, input: x.slot, weight: w, bias: bias, output: { c, h, ww in newSlot(out, c: c, h: h, w: ww) })
                var last = out
                // ReLU / Clip, or a residual Add (then ReLU / Clip), fused into the epilogue.
                if let r = onlyReader(last), let (lo, hi) = Self.clampRange(m.nodes[r].op) {
                    step.lo = lo; step.hi = hi; done.insert(r); last = m.nodes[r].outputs[0]
                } else if let r = onlyReader(last), case .add = m.nodes[r].op, m.nodes[r].inputs.count == 2, step.tile != nil {
                    let other = m.nodes[r].inputs[0] == last ? m.nodes[r].inputs[1] : m.nodes[r].inputs[0]
                    if let o = values[other], !o.flat, slots[o.slot].layout.dropLast() == slots[step.output].layout.dropLast(), other != last {
                        step.residual = o.slot
                        step.resStarts = step.outStarts.indices.map { p in
                            let s = slots[step.output], (y, xx) = (p / s.w, p % s.w)
                            return slots[o.slot].offset(y, xx)
                        }
                        done.insert(r); last = m.nodes[r].outputs[0]
                        if let r2 = onlyReader(last), let (lo, hi) = Self.clampRange(m.nodes[r2].op) {
                            step.lo = lo; step.hi = hi; done.insert(r2); last = m.nodes[r2].outputs[0]
                        }
                    }
                }
                if last != out {
                    // The fused result takes the last node's name (and its border).
                    slots[step.output].pad = padNeeded[last] ?? 0
                    step.relocate(slots: slots)
                }
                values[last] = Value(slot: step.output, flat: false)
                steps.append(.layer(step))
            case .gemm(let a):
                let x = try input(0)
                guard node.inputs.count >= 2, let w = constant(node.inputs[1]), w.rank == 2, !a.transA else {
                    throw Unsupported(description: "node '\(node.name)' (Gemm): a constant 2-D weight, A not transposed")
                }
                let s = slots[x.slot]
                let k = s.c * s.h * s.w, n = a.transB ? w.shape[0] : w.shape[1]
                guard (a.transB ? w.shape[1] : w.shape[0]) == k, n > 0 else {
                    throw Unsupported(description: "node '\(node.name)' (Gemm): weight \(w.shape) for \(k) inputs")
                }
                var bias: [Float]? = nil
                if node.inputs.count > 2, !node.inputs[2].isEmpty {
                    guard let b = constant(node.inputs[2]), b.count == n else {
                        throw Unsupported(description: "node '\(node.name)' (Gemm): a constant bias of \(n)")
                    }
                    bias = b.scalars.map { $0 * a.beta }
                }
                let o = newSlot(out, c: n, h: 1, w: 1)
                let step = linear(input: x.slot, output: o, weight: w, transB: a.transB, alpha: a.alpha, bias: bias)
                var last = out
                if let r = onlyReader(last), let (lo, hi) = Self.clampRange(m.nodes[r].op) {
                    step.lo = lo; step.hi = hi; done.insert(r); last = m.nodes[r].outputs[0]
                    slots[o].pad = padNeeded[last] ?? 0
                    step.relocate(slots: slots)
                }
                // A Gemm's result is [N, features]: flat.
                values[last] = Value(slot: o, flat: true)
                steps.append(.layer(step))
            case .relu, .clip:
                let x = try input(0)
                let (lo, hi) = Self.clampRange(node.op)!
                let s = slots[x.slot]
                let o = newSlot(out, c: s.c, h: s.h, w: s.w)
                steps.append(.clamp(from: x.slot, to: o, lo: lo, hi: hi))
                values[out] = Value(slot: o, flat: x.flat)
            case .add:
                let (x, y) = (try input(0), try input(1))
                let (s, t) = (slots[x.slot], slots[y.slot])
                guard s.c == t.c, s.h == t.h, s.w == t.w, x.flat == y.flat else {
                    throw Unsupported(description: "node '\(node.name)' (Add): operands of different shapes (broadcasting)")
                }
                var (lo, hi, last) = (-Float.infinity, Float.infinity, out)
                if let r = onlyReader(out), let range = Self.clampRange(m.nodes[r].op) {
                    (lo, hi) = range; done.insert(r); last = m.nodes[r].outputs[0]
                }
                let o = newSlot(last, c: s.c, h: s.h, w: s.w)
                steps.append(.add(a: x.slot, b: y.slot, to: o, lo: lo, hi: hi))
                values[last] = Value(slot: o, flat: x.flat)
            case .maxPool(let a), .averagePool(let a):
                let x = try input(0)
                guard !x.flat else { throw Unsupported(description: "node '\(node.name)': pooling a flattened value") }
                let s = slots[x.slot]
                let probe = try Tensor.zeros([1, s.c, s.h, s.w])
                let g = try PoolOp.geometry(probe, a)
                let o = newSlot(out, c: s.c, h: g.oh, w: g.ow)
                if case .maxPool = node.op { steps.append(.maxPool(from: x.slot, to: o, a)) } else { steps.append(.averagePool(from: x.slot, to: o, a)) }
                values[out] = Value(slot: o, flat: false)
            case .globalAveragePool:
                let x = try input(0)
                guard !x.flat else { throw Unsupported(description: "node '\(node.name)': pooling a flattened value") }
                let o = newSlot(out, c: slots[x.slot].c, h: 1, w: 1)
                steps.append(.globalAverage(from: x.slot, to: o))
                values[out] = Value(slot: o, flat: false)
            case .flatten(let axis) where axis == 1:
                let x = try input(0)
                values[out] = Value(slot: x.slot, flat: true)
            case .shape(let start, let end) where start == 0 && end == nil:
                // The shape of an activation, for a Reshape that gives it back (ONNX Softmax
                // before opset 13, imported as Shape, Flatten, Softmax, Reshape).
                shapeOf[out] = try input(0)
            case .reshape where node.inputs.count == 2 && shapeOf[node.inputs[1]] != nil:
                let x = try input(0), v = shapeOf[node.inputs[1]]!
                guard slots[x.slot].c * slots[x.slot].h * slots[x.slot].w == slots[v.slot].c * slots[v.slot].h * slots[v.slot].w else {
                    throw Unsupported(description: "node '\(node.name)' (Reshape): to the shape of a value of another size")
                }
                guard x.flat || !v.flat else { throw Unsupported(description: "node '\(node.name)' (Reshape): a flat value back to an image") }
                values[out] = Value(slot: x.slot, flat: v.flat)
            case .reshape(let given) where (node.inputs.count == 1 ? given : constant(node.inputs[1]).map { $0.scalars.map { Int($0) } } ?? []).count == 2:
                let target = node.inputs.count == 1 ? given : constant(node.inputs[1])!.scalars.map { Int($0) }
                let x = try input(0), s = slots[x.slot]
                // [N, features]: the batch kept (0 or −1) or fixed at 1 by an exporter.
                guard [0, -1, 1].contains(target[0]) else {
                    throw Unsupported(description: "node '\(node.name)' (Reshape): \(target) does not keep the batch")
                }
                guard [-1, s.c * s.h * s.w].contains(target[1]) else {
                    throw Unsupported(description: "node '\(node.name)' (Reshape): \(target) of a [\(s.c), \(s.h), \(s.w)] value")
                }
                values[out] = Value(slot: x.slot, flat: true)
            case .identity:
                values[out] = try input(0)
            case .softmax(let axis) where [1, -1].contains(axis):
                let x = try input(0)
                guard x.flat else { throw Unsupported(description: "node '\(node.name)' (Softmax): a softmax over an image's channels") }
                let s = slots[x.slot]
                let o = newSlot(out, c: s.c, h: s.h, w: s.w)
                steps.append(.softmax(from: x.slot, to: o))
                values[out] = Value(slot: o, flat: true)
            default:
                throw Unsupported(description: "node '\(node.name)' (\(node.op.onnxName))")
            }
            // A flattened value whose slot has a border (or several channels per pixel) is read
            // in NCHW order by the steps that support it; nothing else needs to know.
        }
        if let oversized { throw Unsupported(description: oversized) }
        guard let v = values[m.output] else { throw Unsupported(description: "the output '\(m.output)' is not produced by a supported node") }
        output = v.slot
        outputFlat = v.flat
    }

    /// ReLU's and Clip's bounds.
    static func clampRange(_ op: Op) -> (Float, Float)? {
        switch op {
        case .relu: (0, .infinity)
        case .clip(let lo, let hi): (lo, hi)
        default: nil
        }
    }

    /// A Conv node: dense (one group) through the tile kernel, or depthwise.
    private func convolution(_ node: Node, _ a: ConvAttributes, input: Int, weight w: Tensor, bias: Tensor?,
                             output: (Int, Int, Int) -> Int) throws -> LayerStep {
        let s = slots[input]
        let (cout, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
        guard a.strides.count == 2, a.pads.count == 4, a.dilations.count == 2, a.groups >= 1 else {
            throw Unsupported(description: "node '\(node.name)' (Conv): 2-D strides, pads and dilations")
        }
        let depthwise = a.groups > 1 && a.groups == s.c && cout == s.c && cg == 1
        guard a.groups == 1 && cg == s.c || depthwise else {
            throw Unsupported(description: "node '\(node.name)' (Conv): \(a.groups) groups (dense and depthwise only)")
        }
        if let bias, bias.count != cout { throw Unsupported(description: "node '\(node.name)' (Conv): bias of \(bias.count) for \(cout) channels") }
        guard cout > 0 else { throw Unsupported(description: "node '\(node.name)' (Conv): no output channels") }
        // The input's border must hold the padding (a value reached through Identity keeps the
        // border of the name it was made under).
        guard s.pad >= a.pads.max() ?? 0 else {
            throw Unsupported(description: "node '\(node.name)' (Conv): padding \(a.pads) on a value with a border of \(s.pad)")
        }
        let g = ConvGeometry(channels: s.c, height: s.h, width: s.w, kernelHeight: kh, kernelWidth: kw,
                             stride: (a.strides[0], a.strides[1]), padding: (a.pads[0], a.pads[1], a.pads[2], a.pads[3]),
                             dilation: (a.dilations[0], a.dilations[1]))
        guard g.isValid, g.outputHeight > 0, g.outputWidth > 0 else { throw Unsupported(description: "node '\(node.name)' (Conv): no output") }
        let o = output(cout, g.outputHeight, g.outputWidth)
        let t = slots[o]
        let rowFloats = (s.w + 2 * s.pad) * s.c
        var taps: [Int64] = []
        for u in 0..<kh { for v in 0..<kw { taps.append(Int64(u * a.dilations[0] * rowFloats + v * a.dilations[1] * s.c)) } }
        var starts: [Int] = [], outStarts: [Int] = []
        for y in 0..<t.h {
            for x in 0..<t.w {
                starts.append(s.offset(y * a.strides[0] - a.pads[0], x * a.strides[1] - a.pads[1]))
                outStarts.append(t.offset(y, x))
            }
        }
        let ws = w.scalars, ntaps = kh * kw
        if depthwise {
            let ldw = (cout + 15) / 16 * 16
            var packed = [Float](repeating: 0, count: ntaps * ldw)
            for c in 0..<cout { for tap in 0..<ntaps { packed[tap * ldw + c] = ws[c * ntaps + tap] } }
            var b = [Float](repeating: 0, count: ldw)
            for c in 0..<cout { b[c] = bias?.scalars[c] ?? 0 }
            return LayerStep(input: input, output: o, starts: starts, outStarts: outStarts, taps: taps, cout: cout, tile: nil,
                             depthwise: packed, ldw: ldw, bias: b)
        }
        let tile = FloatTileWeights(n: cout, taps: ntaps, cin: s.c, bias: bias?.scalars) { j, tap, ci in ws[(j * s.c + ci) * ntaps + tap] }
        let step = LayerStep(input: input, output: o, starts: starts, outStarts: outStarts, taps: taps, cout: cout, tile: tile)
        step.rowStep = a.strides[1] * s.c
        let full = FloatTile.rows
        step.runs = starts.indices.map { p in p + full <= starts.count && (1..<full).allSatisfy { starts[p + $0] - starts[p + $0 - 1] == step.rowStep } }
        // A small receptive field (a first layer on one or three channels): a tile's set-up weighs
        // as much as its few multiply-adds, so such a layer runs output row by output row, each
        // row's tiles addressed from one register (CNN's first layer: 0.12 s in place of 0.18 s
        // of a 1 s run); deeper layers keep tiles of 12 pixels across rows, which fill every tile.
        step.lines = ntaps * s.c <= 32 && t.w >= full && FloatTile.rowSteps.contains(step.rowStep)
        return step
    }

    /// A Gemm on a flattened (NCHW order) or one-pixel value: a tile whose taps are the input's
    /// pixels and whose channels are its channels, the weight's columns permuted to match.
    private func linear(input: Int, output: Int, weight w: Tensor, transB: Bool, alpha: Float, bias: [Float]?) -> LayerStep {
        let s = slots[input], n = slots[output].c, k = s.c * s.h * s.w, plane = s.h * s.w
        let ws = w.scalars
        func weight(_ j: Int, _ f: Int) -> Float { alpha * (transB ? ws[j * k + f] : ws[f * n + j]) }
        let tile: FloatTileWeights, taps: [Int64]
        if s.pad == 0 {
            // No border: the whole value is one run of k floats (pixel by pixel, channels inside).
            taps = [0]
            tile = FloatTileWeights(n: n, taps: 1, cin: k, bias: bias) { j, _, e in weight(j, e % s.c * plane + e / s.c) }
        } else {
            taps = (0..<plane).map { Int64(s.offset($0 / s.w, $0 % s.w) - s.offset(0, 0)) }
            tile = FloatTileWeights(n: n, taps: plane, cin: s.c, bias: bias) { j, tap, ci in weight(j, ci * plane + tap) }
        }
        return LayerStep(input: input, output: output, starts: [s.offset(0, 0)], outStarts: [slots[output].offset(0, 0)], taps: taps,
                         cout: n, tile: tile)
    }

    /// Buffers by liveness: a slot takes a free buffer of exactly its layout (so a border of
    /// zeros is never written by another value) or a new one; a buffer is freed after the last
    /// step that reads its slot.
    private func assignBuffers() {
        var lastRead = [Int](repeating: -1, count: slots.count)
        for (i, step) in steps.enumerated() { for r in step.reads { lastRead[r] = i } }
        lastRead[output] = steps.count
        var free: [[Int]: [Int]] = [:]
        for (i, step) in steps.enumerated() {
            let o = step.writes
            if slots[o].buffer < 0 {
                let key = slots[o].layout
                if let b = free[key]?.popLast() {
                    slots[o].buffer = b
                } else {
                    slots[o].buffer = buffers.count
                    buffers.append(slots[o].elements)
                }
            }
            for r in Set(step.reads) where lastRead[r] == i { free[slots[r].layout, default: []].append(slots[r].buffer) }
        }
    }
}

extension FloatPlan.LayerStep {
    /// Recomputes the output starts after the output slot's border changed.
    func relocate(slots: [FloatPlan.Slot]) {
        let t = slots[output]
        outStarts = (0..<outStarts.count).map { p in t.offset(p / t.w, p % t.w) }
    }
}
