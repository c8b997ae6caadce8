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
            default: continue
            }
        }
        return times
    }
}
