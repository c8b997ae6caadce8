/// What APQ's search and the prompt ask of an accuracy predictor: the accuracy of policies given
/// as weight widths per layer. `AccuracyMLP` (APQ's MLP over the one-hot encoding, microseconds
/// per policy) and `DivergencePredictor` (a fitted curve in the whole policy's output divergence,
/// one forward pass of the calibration images per policy) are the two.
public protocol PolicyPredictor {
    /// Layers of the model the policies are for.
    var layers: Int { get }
    /// The widths the predictor knows; evolve() searches over these.
    var choices: [Int] { get }
    /// What its predictions score: accuracy (fractions), or −log output divergence.
    var target: PredictionTarget { get }
    /// Predicted scores of `policies` (higher is better; accuracies for an accuracy target).
    func predict(_ policies: [[Int]]) throws -> [Double]
    /// Predicted accuracies of points of APQ's joint space (widths and keep ratios).
    func predict(points: [Evolution.Point]) throws -> [Double]
    /// The predictor taught `measured` as well (search rounds; samples carrying the figure its
    /// target names); one that cannot learn refuses.
    func refined(with measured: [PolicySamples.Sample]) throws -> any PolicyPredictor
}

extension PolicyPredictor {
    public var target: PredictionTarget { .accuracy }

    /// A predictor of widths alone takes points that prune nothing.
    public func predict(points: [Evolution.Point]) throws -> [Double] {
        guard points.allSatisfy(\.keep.isEmpty) else { throw MixedPrecisionError("predictor: this predictor knows widths only, not pruned layers") }
        return try predict(points.map(\.bits))
    }

    public func refined(with measured: [PolicySamples.Sample]) throws -> any PolicyPredictor {
        throw MixedPrecisionError("predictor: a \(Self.self) is not refined by search rounds; use rounds: 1, or a predictor from predictor(samples)")
    }
}

extension AccuracyMLP: PolicyPredictor {}
