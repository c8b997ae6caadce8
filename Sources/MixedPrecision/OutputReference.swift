import Foundation
import Network
import Tensors

/// A float model's softmax outputs on a set of images: the reference a quantized policy's output
/// divergence is taken from, mean KL(softmax(float) ‖ softmax(quantized)) over the images. Unlike
/// top-1 accuracy, which moves only where a prediction flips (a few dozen images of thousands at
/// 4 bits), it sees every image's output shift, so two near-equal policies are told apart by it
/// with far less sampling noise. Shared by `PolicyDivergence` (calibration images, no labels) and
/// `PolicySamples` (the validation split, beside the accuracy).
public struct OutputReference: Sendable {
    /// Row-major [images, classes] float probabilities.
    let probabilities: [Double]
    public let classes: Int
    public var images: Int { probabilities.count / max(classes, 1) }

    public init(model: Model, images: Tensor, what: String = "divergence") throws {
        guard images.shape.first ?? 0 > 0 else { throw MixedPrecisionError("\(what): the reference images are none") }
        try model.checkFinite(for: what, data: images)
        let logits = try model.predict(images)
        guard logits.rank == 2, logits.shape[1] > 0 else { throw MixedPrecisionError("\(what): expected the model to give [N, classes] logits, found \(logits.shape)") }
        classes = logits.shape[1]
        probabilities = try CrossEntropy.softmax(logits).scalars.map(Double.init)
    }

    /// The mean KL divergence of `logits` (a quantized model's, on the same images) from the
    /// reference outputs.
    public func divergence(_ logits: Tensor) throws -> Double {
        guard logits.shape == [images, classes] else {
            throw MixedPrecisionError("divergence: expected [\(images), \(classes)] logits on the reference images, found \(logits.shape)")
        }
        let q = try CrossEntropy.softmax(logits).scalars
        var s = 0.0
        for (i, p) in probabilities.enumerated() where p > 0 { s += p * (log(p) - log(max(Double(q[i]), 1e-30))) }
        return s / Double(images)
    }
}
