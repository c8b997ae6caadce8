import Network
import Tensors

/// Bits for one layer: weights, and the activation entering it (nil: float).
public struct LayerBits: Sendable, Equatable {
    public var weight: Int
    public var activation: Int?
    public init(weight: Int, activation: Int? = nil) { self.weight = weight; self.activation = activation }
}

extension Model {
    /// The same network with every conv/linear weight replaced by its quantized value
    /// (simulated quantization: weights stay Float32 but take only 2^b values per channel).
    /// With `activationBits`, the input of every conv/linear layer (including the image fed to
    /// the first) is quantized per tensor, calibrated by min/max over `calibration` on the
    /// weight-quantized model, as the reference figures define. Biases stay FP32.
    public func quantized(weightBits: Int, granularity: Granularity = .perChannel, activationBits: Int? = nil,
                          calibration: Tensor? = nil) throws -> Model {
        try quantized(policy: try Policy.uniform(self, bits: weightBits, activationBits: activationBits, granularity: granularity),
                      calibration: calibration)
    }

    /// Per-layer bits by name with the reference quantizers; layers missing from `bits` stay
    /// in float (the policy this builds says so explicitly).
    public func quantized(bits: [String: LayerBits], granularity: Granularity = .perChannel,
                          calibration: Tensor? = nil) throws -> Model {
        let unknown = bits.keys.filter { name in !layers.contains { $0.name == name } }
        guard unknown.isEmpty else {
            throw QuantizationError("quantize: no layer named \(unknown.sorted().map { "'\($0)'" }.joined(separator: ", ")) in model '\(name)'; layers are \(layers.map(\.name).joined(separator: ", "))")
        }
        let policy = try Policy(model: self, weightBits: layers.map { bits[$0.name]?.weight }, activationBits: layers.map { bits[$0.name]?.activation },
                                granularity: granularity)
        return try quantized(policy: policy, calibration: calibration)
    }
}
