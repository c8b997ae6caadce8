import Foundation

/// Predicts a policy's accuracy from its summed sensitivity Σ_l Ω_l(b_l), calibrated on policies
/// whose accuracy was measured (the uniform baselines a report measures anyway). Accuracy falls
/// along a logistic curve in x = log Σ Ω, from `ceiling` (the FP32 accuracy) to `floor` (chance):
/// acc(x) = floor + (ceiling − floor) / (1 + exp((x − x₀)/w)), with the midpoint x₀ and width
/// w > 0 fitted to the measured points by least squares (a grid, then a finer grid around its
/// best). It only knows what the sensitivity metric knows: interactions between layers that the
/// summed table misses are missed here too, and reports print the measured accuracy beside it.
public struct AccuracyPredictor: Sendable, Equatable {
    public private(set) var midpoint: Double
    public private(set) var width: Double
    public var floor: Double
    public var ceiling: Double
    /// Root-mean-square error of the fit on the calibration points.
    public private(set) var residual: Double

    public init(objectives: [Double], accuracies: [Double], floor: Double = 0, ceiling: Double = 1) throws {
        guard objectives.count == accuracies.count, objectives.count >= 2 else {
            throw MixedPrecisionError("an accuracy predictor needs at least two measured policies, got \(min(objectives.count, accuracies.count))")
        }
        guard objectives.allSatisfy({ $0.isFinite && $0 > 0 }), accuracies.allSatisfy({ $0.isFinite && $0 >= 0 && $0 <= 1 }) else {
            throw MixedPrecisionError("calibration needs positive finite summed sensitivities and accuracies in 0…1")
        }
        guard floor.isFinite, ceiling.isFinite, floor >= 0, ceiling <= 1, floor < ceiling else {
            throw MixedPrecisionError("need 0 ≤ floor < ceiling ≤ 1, got floor \(floor), ceiling \(ceiling)")
        }
        let xs = objectives.map { log($0) }
        let lo = xs.min()!, hi = xs.max()!, span = max(hi - lo, 1)
        func loss(_ x0: Double, _ w: Double) -> Double {
            zip(xs, accuracies).reduce(0.0) { sum, p in
                let y = floor + (ceiling - floor) / (1 + exp((p.0 - x0) / w))
                return sum + (y - p.1) * (y - p.1)
            }
        }
        var best = (x0: (lo + hi) / 2, w: span / 4, loss: Double.infinity)
        func search(x0From: Double, x0To: Double, wFrom: Double, wTo: Double) {
            for i in 0...80 {
                let x0 = x0From + (x0To - x0From) * Double(i) / 80
                for j in 0...40 {
                    let w = exp(log(wFrom) + (log(wTo) - log(wFrom)) * Double(j) / 40)
                    let l = loss(x0, w)
                    if l < best.loss { best = (x0, w, l) }
                }
            }
        }
        search(x0From: lo - 2 * span, x0To: hi + 2 * span, wFrom: span / 200, wTo: span * 4)
        let step = 4 * span / 80
        search(x0From: best.x0 - step, x0To: best.x0 + step, wFrom: best.w / 1.3, wTo: best.w * 1.3)
        midpoint = best.x0; width = best.w
        self.floor = floor; self.ceiling = ceiling
        residual = (best.loss / Double(xs.count)).squareRoot()
    }

    /// The predicted accuracy of a policy whose summed sensitivity is `objective`.
    public func predict(_ objective: Double) -> Double {
        guard objective.isFinite else { return floor }
        let x = log(max(objective, Double.leastNormalMagnitude))
        return floor + (ceiling - floor) / (1 + exp((x - midpoint) / width))
    }
}

extension SensitivityTable {
    /// Σ_l Ω_l(b_l) for the given bits per layer; nil when some width is not in the table.
    public func objective(bits: [Int]) -> Double? {
        guard bits.count == layers.count else { return nil }
        var total = 0.0
        for (l, b) in bits.enumerated() {
            guard let j = self.bits.firstIndex(of: b) else { return nil }
            total += values[l][j]
        }
        return total
    }
}
