import Foundation
import Kernels
import Network
import Tensors
import Runtime

/// ZeroQ's distilled data: synthetic images whose statistics match what the network's batch
/// norms remember, so sensitivities and ranges can be measured without any real data.
public enum Distillation {
    public struct Options: Sendable {
        public var count = 32
        public var iterations = 500
        public var learningRate: Float = 0.5
        /// Images start as N(0, std²) in the normalised input space (the paper's N(0, 1); the
        /// reference code starts much narrower).
        public var initialStd: Float = 1
        public var seed: UInt64 = 0
        public init() {}
    }

    public struct Result: Sendable {
        public var images: Tensor
        public var initialLoss: Double
        public var loss: Double
    }

    /// Optimises the pixels with Adam so that, for every batch norm, the batch mean and
    /// standard deviation of its input (per channel, over the batch and spatial positions) match
    /// the running mean and √(running variance + ε); plus a term pulling the image batch to
    /// mean 0 and standard deviation 1 per channel. Loss = Σ ‖μ − μ_BN‖² + ‖σ − σ_BN‖².
    /// `progress` sees (iteration, loss).
    public static func distill(_ model: Model, options: Options = Options(),
                               progress: ((Int, Double) -> Void)? = nil) throws -> Result {
        guard options.count >= 2, options.count <= 4096 else {
            throw MixedPrecisionError("distill: expected 2…4096 images, found \(options.count)")
        }
        guard options.iterations >= 0, options.iterations <= 100_000 else {
            throw MixedPrecisionError("distill: expected 0…100000 iterations, found \(options.iterations)")
        }
        let norms: [(input: String, mean: [Float], std: [Float])] = model.nodes.compactMap { node in
            guard case .batchNorm(let eps, _) = node.op, let m = model.buffers[node.inputs[3]], let v = model.buffers[node.inputs[4]] else { return nil }
            return (node.inputs[0], m.scalars, v.scalars.map { ($0 + eps).squareRoot() })
        }
        guard !norms.isEmpty else {
            throw MixedPrecisionError("distill: model '\(model.name)' has no batch norm whose statistics the data could match (fold_bn removes them)")
        }
        var rng = RandomGenerator(seed: options.seed)
        let shape = [options.count] + model.inputShape
        var x = try Tensor.random(shape, .normal(mean: 0, std: options.initialStd), using: &rng)
        var m1 = [Float](repeating: 0, count: x.count), m2 = m1
        let (beta1, beta2): (Float, Float) = (0.9, 0.999)
        var initial = 0.0, last = 0.0
        for step in 0...options.iterations {
            try Interrupt.check()
            let (out, trace) = try model.run(x, keepTrace: true)
            var seeds: [String: Tensor] = [:]
            var loss = 0.0
            for bn in norms {
                let (l, g) = try statisticsLoss(trace!.values[bn.input]!, mean: bn.mean, std: bn.std)
                loss += l
                seeds[bn.input] = try seeds[bn.input].map { try $0 + g } ?? g
            }
            let channels = model.inputShape.first ?? 1
            let (li, gi) = try statisticsLoss(x, mean: [Float](repeating: 0, count: channels), std: [Float](repeating: 1, count: channels))
            loss += li
            if step == 0 { initial = loss }
            last = loss
            progress?(step, loss)
            if step == options.iterations { break }
            var grads = try model.gradients(trace!, outputGradient: Tensor.zeros(out.shape), inputGradient: true, seeds: seeds)
            let g = try (grads.removeValue(forKey: model.input) ?? Tensor.zeros(shape)) + gi
            // Adam.
            let t = Float(step + 1)
            let c1 = 1 - pow(beta1, t), c2 = 1 - pow(beta2, t)
            x.withUnsafeMutableScalars { xs in
                for i in 0..<xs.count {
                    let gv = g.scalars[i]
                    m1[i] = beta1 * m1[i] + (1 - beta1) * gv
                    m2[i] = beta2 * m2[i] + (1 - beta2) * gv * gv
                    xs[i] -= options.learningRate * (m1[i] / c1) / ((m2[i] / c2).squareRoot() + 1e-8)
                }
            }
        }
        return Result(images: x, initialLoss: initial, loss: last)
    }

    /// ‖μ − target μ‖² + ‖σ − target σ‖² over channels (dimension 1), with its gradient.
    public static func statisticsLoss(_ x: Tensor, mean: [Float], std: [Float]) throws -> (Double, Tensor) {
        guard x.rank >= 2, x.shape[1] == mean.count else {
            throw MixedPrecisionError("distill: a batch norm expects \(mean.count) channels, its input has shape \(x.shape)")
        }
        let n = x.shape[0], c = x.shape[1], inner = x.count / (n * c)
        let count = Double(n * inner)
        var grad = [Float](repeating: 0, count: x.count)
        var loss = 0.0
        for ch in 0..<c {
            var s = 0.0, s2 = 0.0
            for i in 0..<n { let base = (i * c + ch) * inner; for j in 0..<inner { let v = Double(x.scalars[base + j]); s += v; s2 += v * v } }
            let mu = s / count
            let variance = max(s2 / count - mu * mu, 0)
            let sigma = (variance + 1e-5).squareRoot()
            let dm = mu - Double(mean[ch]), ds = sigma - Double(std[ch])
            loss += dm * dm + ds * ds
            // ∂/∂x: 2·dm/M + 2·ds·(x − μ)/(M·σ).
            let a = 2 * dm / count, b = 2 * ds / (count * sigma)
            for i in 0..<n { let base = (i * c + ch) * inner; for j in 0..<inner { grad[base + j] = Float(a + b * (Double(x.scalars[base + j]) - mu)) } }
        }
        return (loss, Tensor(checkedShape: x.shape, scalars: grad))
    }
}
