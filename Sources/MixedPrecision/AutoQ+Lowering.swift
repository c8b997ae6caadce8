import Foundation
import Network
import Quantization

extension AutoQ {
    /// AutoQ's resource-constrained lowering guided by a kernel-wise sensitivity table (our
    /// addition; HAQ lowers every action alike): while the episode's policy is over budget, the free
    /// kernel whose next step down adds the least sensitivity per unit of cost saved,
    /// (Ω_{l,c}(b − 1) − Ω_{l,c}(b)) / (cost_{l,c}(b) − cost_{l,c}(b − 1)), is lowered one bit — among
    /// equal ratios the one the low-level agent preferred least. The agents' widths are where the
    /// lowering starts: a kernel never ends wider than its agent chose, so the agents decide which
    /// kernels are capped, and the table decides which pay for the budget.
    public struct SensitivityLowering: Sendable {
        /// Ω by layer, kernel and width (index: width − lowest searched width).
        public let omega: [[[Double]]]
        let layers: [Layer]
        let cost: CostModel
        let widths: ClosedRange<Int>
        let pinned: Set<Int>
        /// Identifies the table in a checkpoint's search description.
        public let fingerprint: String

        /// `pinned`: indices of layers never lowered. The table must hold every width of `widths`.
        public init(model: Model, table: KernelWiseTable, cost: CostModel, widths: ClosedRange<Int>, pinned: Set<Int>) throws {
            layers = model.layers
            self.cost = cost
            self.widths = widths
            self.pinned = pinned
            guard table.layers.map(\.name) == layers.map(\.name), zip(table.values, layers).allSatisfy({ $0.count == $1.weightShape[0] }),
                  widths.allSatisfy(table.bits.contains) else {
                throw MixedPrecisionError("autoq: the kernel-wise sensitivity table must be of this model (its \(layers.count) layers and their kernels) at every searched width \(Array(widths)); found \(table.layers.count) layers at widths \(table.bits)")
            }
            let index = widths.map { b in table.bits.firstIndex(of: b)! }
            omega = table.values.map { layer in layer.map { kernel in index.map { kernel[$0] } } }
            guard omega.allSatisfy({ $0.allSatisfy { $0.allSatisfy(\.isFinite) } }) else {
                throw MixedPrecisionError("autoq: the kernel-wise sensitivity table holds a non-finite value")
            }
            var h = FNV1a()
            for layer in omega { for kernel in layer { for v in kernel { h.word(v.bitPattern) } } }
            fingerprint = h.hex
        }

        /// ΣΩ of kernel widths `w` over the free (not pinned) layers.
        public func sensitivity(_ w: [[Int]]) -> Double {
            layers.indices.filter { !pinned.contains($0) }.reduce(0.0) { t, i in
                zip(omega[i], w[i]).reduce(t) { $0 + $1.0[min(max($1.1, widths.lowerBound), widths.upperBound) - widths.lowerBound] }
            }
        }

        /// Lowers `w` (per layer, per kernel) until the policy's cost is within `budget` (or every
        /// free kernel is at the lowest width), updating `costs` (each layer's cost, the cost
        /// model's own figure after every step).
        /// `preference`: the low-level agent's action per kernel (lower is lowered first among equal ratios).
        public func lower(_ w: inout [[Int]], preference: [[[Float]]], activations: [Int?], costs: inout [Double], budget: Double) throws {
            let lo = widths.lowerBound
            // Cost saved by one kernel's step down from width lo + 1 + j, per layer, for the order:
            // the layer's own step (all kernels at once) shared among its kernels — exact for size
            // and BitOps, an estimate for BitFusion's tiles and a measured table's widest-kernel
            // rule (the budget is checked on the model's own cost).
            var step: [[Double]] = []
            for (i, layer) in layers.enumerated() {
                let c = try widths.map { b in
                    try cost.cost(Policy.Entry(layer: layer, weight: .reference(bits: b), activation: activations[i].map { Policy.Activation(bits: $0) }))
                }
                let kernels = Double(max(1, layer.weightShape[0]))
                step.append((1..<c.count).map { max((c[$0] - c[$0 - 1]) / kernels, 1e-12) })
            }
            func ratio(_ i: Int, _ k: Int) -> Double {
                let b = w[i][k] - lo
                guard b > 0 else { return .infinity }
                return (omega[i][k][b - 1] - omega[i][k][b]) / step[i][b - 1]
            }
            var free: [(layer: Int, kernel: Int)] = []
            for i in layers.indices where !pinned.contains(i) { for k in w[i].indices { free.append((i, k)) } }
            var ratios = free.map { ratio($0.layer, $0.kernel) }
            var total = costs.reduce(0, +)
            // One kernel at a time, the layer's cost taken from the model after each step.
            while total > budget {
                var best = -1
                for j in free.indices where ratios[j].isFinite {
                    if best < 0 { best = j; continue }
                    let (a, b) = (free[j], free[best])
                    if (ratios[j], preference[a.layer][a.kernel][0], a.layer, a.kernel)
                        < (ratios[best], preference[b.layer][b.kernel][0], b.layer, b.kernel) { best = j }
                }
                guard best >= 0 else { break }
                let (i, k) = free[best]
                w[i][k] -= 1
                ratios[best] = ratio(i, k)
                let c = try cost.cost(AutoQ.entry(layers[i], widths: w[i], activation: activations[i]))
                total += c - costs[i]; costs[i] = c
            }
            for i in layers.indices { costs[i] = try cost.cost(AutoQ.entry(layers[i], widths: w[i], activation: activations[i])) }
        }
    }
}
