import Foundation

/// What a measured policy is judged by, as a score where higher is better: its validation
/// accuracy (APQ as published), or its output divergence from the float model on the same images
/// (`OutputReference`; our addition), scored as −log divergence. The divergence sees every image's
/// output shift where the accuracy moves only with the few predictions that flip, so near-equal
/// policies are told apart with less noise (scripts/apq-selection.mpq). APQ's MLP learns one of
/// these (`AccuracyMLP.Options.target`), and the search returns the measured policy best by one
/// (`Evolution.run(_:predictor:measure:select:progress:)`).
public enum PredictionTarget: String, Sendable, CaseIterable, Codable {
    case accuracy, divergence

    /// The sample's score: its accuracy, or −log of its divergence (which must have been measured).
    public func score(_ s: PolicySamples.Sample) throws -> Double {
        switch self {
        case .accuracy: return s.accuracy
        case .divergence:
            guard let d = s.divergence, d.isFinite, d >= 0 else {
                throw MixedPrecisionError("the policy \(s.bits) has no measured output divergence (measure it with samples(..., divergence: true))")
            }
            return -log(max(d, 1e-30))
        }
    }

    /// The figure a score stands for: the accuracy itself, or the divergence exp(−score).
    public func figure(score: Double) -> Double { self == .accuracy ? score : exp(-score) }

    /// A score as a person reads it: "93.41%" or "divergence 0.0031".
    public func shown(score: Double) -> String {
        self == .accuracy ? String(format: "%.2f%%", 100 * score) : String(format: "divergence %.3g", figure(score: score))
    }
}
