import Network
import Tensors

/// A mixed-precision policy: for every conv/linear layer of a model (in the model's order), its
/// weight bits and the bits of the activation entering it (nil: float), with one weight
/// granularity. Rules such as "first and last layer at 8 bits" are the solver's pins, made
/// explicit in the bits here.
public struct Policy: Sendable, Equatable {
    public var layers: [String]
    public var weightBits: [Int]
    public var activationBits: [Int?]
    public var granularity: Granularity

    public init(layers: [String], weightBits: [Int], activationBits: [Int?]? = nil, granularity: Granularity = .perChannel) throws {
        guard weightBits.count == layers.count else {
            throw NetworkError("policy: expected \(layers.count) weight bit widths (one per layer), found \(weightBits.count)")
        }
        let acts = activationBits ?? Array(repeating: nil, count: layers.count)
        guard acts.count == layers.count else {
            throw NetworkError("policy: expected \(layers.count) activation bit widths (one per layer), found \(acts.count)")
        }
        for (name, b) in zip(layers, weightBits) where !(1...8).contains(b) {
            throw NetworkError("policy: layer '\(name)' has \(b) weight bits; expected 1…8")
        }
        for (name, a) in zip(layers, acts) {
            if let a, !(1...16).contains(a) { throw NetworkError("policy: layer '\(name)' has \(a) activation bits; expected 1…16 (1: binary, sign(x)·mean|x|)") }
        }
        self.layers = layers; self.weightBits = weightBits; self.activationBits = acts; self.granularity = granularity
    }

    /// Every layer of `model` at the same widths.
    public static func uniform(_ model: Model, bits: Int, activationBits: Int? = nil, granularity: Granularity = .perChannel) throws -> Policy {
        try Policy(layers: model.layers.map(\.name), weightBits: Array(repeating: bits, count: model.layers.count),
                   activationBits: Array(repeating: activationBits, count: model.layers.count), granularity: granularity)
    }

    /// Bits by layer name, as `Model.quantized(bits:)` takes them.
    public var bits: [String: LayerBits] {
        Dictionary(uniqueKeysWithValues: layers.indices.map { (layers[$0], LayerBits(weight: weightBits[$0], activation: activationBits[$0])) })
    }

    /// Checks the policy names exactly the model's layers, in order.
    public func check(against model: Model) throws {
        let names = model.layers.map(\.name)
        guard names == layers else {
            let missing = names.filter { !layers.contains($0) }, extra = layers.filter { !names.contains($0) }
            throw NetworkError("policy: its layers are not model '\(model.name)''s" +
                               (missing.isEmpty ? "" : "; missing \(missing.joined(separator: ", "))") +
                               (extra.isEmpty ? "" : "; unknown \(extra.joined(separator: ", "))"))
        }
    }

    /// Weight bytes under the policy: Σ ⌈P·b/8⌉ per layer (biases not counted).
    public func size(of model: Model) throws -> Int {
        try check(against: model)
        return zip(model.layers, weightBits).reduce(0) { $0 + ($1.0.parameterCount * $1.1 + 7) / 8 }
    }

    /// BitOps per image: Σ MACs·b_w·b_a, with float activations counted at 32 bits.
    public func bitOps(of model: Model) throws -> Double {
        try check(against: model)
        return model.layers.indices.reduce(0.0) { $0 + Double(model.layers[$1].macs) * Double(weightBits[$1]) * Double(activationBits[$1] ?? 32) }
    }

    /// Parameter-weighted mean weight bits.
    public func averageBits(of model: Model) throws -> Double {
        try check(against: model)
        let total = model.layers.reduce(0) { $0 + $1.parameterCount }
        return Double(zip(model.layers, weightBits).reduce(0) { $0 + $1.0.parameterCount * $1.1 }) / Double(max(1, total))
    }
}

extension Model {
    /// The fake-quant simulation of `policy` (see `quantized(bits:)`); activation bits need
    /// calibration data.
    public func quantized(policy: Policy, calibration: Tensor? = nil) throws -> Model {
        try policy.check(against: self)
        return try quantized(bits: policy.bits, granularity: policy.granularity, calibration: calibration)
    }
}
