import Foundation
import Network
import Quantization
import Tensors

/// A whole policy's label-free score: the mean KL(softmax(float) ‖ softmax(quantized)) of the
/// model's outputs on calibration images, every layer at its policy width at once, bias-corrected
/// on the same images as PolicySamples does before it measures. Unlike a sensitivity table's
/// Σ Ω, which adds up one layer at a time, it sees how low widths in several layers compound —
/// the part of the accuracy surface an additive proxy misses. One forward pass of the
/// calibration images per policy, no labels and no validation data: the cheap samples of APQ's
/// transfer recipe (`AccuracyMLP.Transfer`).
public struct PolicyDivergence {
    public let model: Model
    public let calibration: Tensor
    let reference: OutputReference
    let patches: [String: [Double]]

    public init(model: Model, calibration: Tensor) throws {
        guard calibration.shape.first ?? 0 > 0 else { throw MixedPrecisionError("divergence: the calibration data holds no images") }
        reference = try OutputReference(model: model, images: calibration)
        self.model = model
        self.calibration = calibration
        patches = try BiasCorrection.meanPatches(model, calibration: calibration)
    }

    /// The mean KL divergence of the policy's bias-corrected outputs from the float model's.
    public func divergence(bits: [Int]) throws -> Double {
        guard bits.count == model.layers.count, bits.allSatisfy({ (1...8).contains($0) }) else {
            throw MixedPrecisionError("divergence: a policy needs \(model.layers.count) widths in 1…8 (one per layer), found \(bits)")
        }
        let policy = try Policy(model: model, weightBits: bits)
        let corrected = try model.biasCorrected(for: policy, patches: patches)
        return try reference.divergence(try corrected.quantized(policy: try policy.moved(to: corrected)).predict(calibration))
    }
}
