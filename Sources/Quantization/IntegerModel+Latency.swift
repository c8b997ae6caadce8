import Foundation
import Kernels
import Network
import Tensors
import Runtime

// Per-layer timing of the engine's kernels, for latency tables.
extension IntegerModel {
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
            case .depthwise(let l): times[folded.layers[l.layer].name] = Stopwatch.best(budget: minimumTime) { runDepthwise(l, plan, ws) } * 1000
            default: continue
            }
        }
        return times
    }

    /// For each layer the engine runs as a matrix–vector product (one output pixel: see
    /// `LayerStep.vector`), milliseconds per image with its weights stored at 8, 4 and 2 bits —
    /// gather, product and epilogue as the engine runs them, random codes of each width, one
    /// core, best of repeats lasting at least `minimumTime` seconds — by layer name and width.
    /// Other layers are absent: their kernel multiplies every width as int8.
    public func vectorLayerMilliseconds(minimumTime: Double = 0.02) throws -> [String: [Int: Double]] {
        let ws = Workspace(plan)
        var rng = RandomGenerator(seed: 13)
        var times: [String: [Int: Double]] = [:]
        for step in plan.steps {
            guard case .layer(let l) = step, let v = l.vector else { continue }
            for bits in [8, 4, 2] {
                try Interrupt.check()
                let span = UInt64(1 << bits), lo = -(1 << (bits - 1))
                let codes = (0..<(v.n * v.k)).map { _ in Int8(lo + Int(rng.next() % span)) }
                let timed = LayerStep(layer: l.layer, input: l.input, output: l.output, starts: l.starts, outStarts: l.outStarts, taps: l.taps,
                                      groupsPerTap: l.groupsPerTap, cout: l.cout, weights: l.weights, epilogue: l.epilogue, flip: l.flip != 0)
                timed.residual = l.residual; timed.resStarts = l.resStarts
                timed.vector = GEMV.Weights(codes: codes, n: v.n, k: v.k, bits: bits)
                times[folded.layers[l.layer].name, default: [:]][bits] = Stopwatch.best(budget: minimumTime) { runLayer(timed, plan, ws) } * 1000
            }
        }
        return times
    }
}

extension IntegerModel {
    /// Milliseconds per image of each conv/linear layer run as W1A1 — XNOR-popcount over its input
    /// as packed signs (`BinaryConv.layer`), its sums with a bias and packed into the signs the
    /// next binary layer reads (the binary counterpart of requantizing to codes) — with this
    /// engine's geometry, on one core, the best of repeats lasting at least `minimumTime` seconds.
    /// Whatever the layer's weights: binary speed does not depend on them.
    public func binaryLayerMilliseconds(minimumTime: Double = 0.02) throws -> [String: Double] {
        var times: [String: Double] = [:]
        var rng = RandomGenerator(seed: 11)
        for step in plan.steps {
            try Interrupt.check()
            let (l, g): (Int, BinaryConv.Geometry)
            switch step {
            case .layer(let s): (l, g) = (s.layer, geometry(of: s.layer, input: plan.slots[s.input]))
            case .xnor(let s): (l, g) = (s.layer, s.geometry)
            default: continue
            }
            let layer = folded.layers[l]
            // Random signs, the bits past the channels clear.
            let tail: UInt64 = g.channels % 64 == 0 ? ~0 : (1 << UInt64(g.channels % 64)) - 1
            let input = (0..<(g.height * g.width * g.words)).map { i in rng.next() & (i % g.words == g.words - 1 ? tail : ~0) }
            let signs = (0..<(g.cout * g.taps * g.words)).map { i in rng.next() & (i % g.words == g.words - 1 ? tail : ~0) }
            let weights = BinaryConv.Weights(signs: signs, cout: g.cout, taps: g.taps, words: g.words,
                                             channels: g.channels)
            let epilogue = IntegerEpilogue(bias: [Int32](repeating: 3, count: g.cout), multiplier: [Int32](repeating: 0, count: g.cout),
                                           shift: [Int32](repeating: 1, count: g.cout), lo: 0, hi: 0, mode: .sums)
            let layout = BinaryConv.Layout(g), pixels = g.outH * g.outW, outStarts = (0..<pixels).map { $0 * g.cout }
            var sums = [Int32](repeating: 0, count: pixels * g.cout)
            var next = [UInt64](repeating: 0, count: pixels * ((g.cout + 63) / 64))
            input.withUnsafeBufferPointer { x in
                sums.withUnsafeMutableBytes { s in
                    next.withUnsafeMutableBufferPointer { n in
                        times[layer.name] = Stopwatch.best(budget: minimumTime) {
                            BinaryConv.layer(layout, input: x.baseAddress!, weights: weights, shift: 0, epilogue: epilogue, output: s.baseAddress!,
                                             outStarts: outStarts, residual: nil, resStarts: [], signs: n.baseAddress!)
                        } * 1000
                    }
                }
            }
        }
        return times
    }
}
