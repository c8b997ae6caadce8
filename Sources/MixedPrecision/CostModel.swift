import Foundation
import Network
import Quantization

/// What a layer costs at a weight bit width: the budgets of a bit allocation.
/// (METHODS.md §0 has the definitions; every figure is per image.)
public enum CostModel: Sendable, Equatable {
    /// Weight bytes: P·b/8 (biases stay FP32 and are not counted).
    case size
    /// BitOps: MACs·b_w·b_a. With `activationBits` nil the activation entering the layer takes
    /// the layer's weight bits (HAWQ-V3's rule); otherwise that fixed width. Raw counts: divide
    /// by MACs·32·32 for HAWQ's FP32 normalisation.
    case bitOps(activationBits: Int?)
    /// BitFusion cycles on an N×M array of fused 2-bit bricks (Sharma et al., as APQ and AutoQ
    /// cost with): speed-up over 8×8 = ⌊8/max(a,2)⌋·⌊8/max(w,2)⌋, so 6 bits run as 8;
    /// cycles = ⌈Cout/M⌉·Hout·Wout·kh·kw·⌈(Cin/groups)/(N·speed-up)⌉. Defaults N = 16, M = 32.
    case bitFusion(activationBits: Int?, rows: Int, columns: Int)
    /// BitFusion energy in µJ per image: compute cycles (as `bitFusion`) × rows·columns fusion
    /// units × the unit's energy per cycle, plus SRAM traffic × pJ/bit (every (pixel, kernel tap,
    /// input channel) activation streamed into the array once per tile of `columns` output
    /// channels at the activation bits, every output written once as a 32-bit sum), plus DRAM
    /// traffic × pJ/bit (the weights fetched once at their bits).
    case bitFusionEnergy(activationBits: Int?, rows: Int, columns: Int, constants: EnergyConstants)
    /// A measured lookup table: cost[layer name][bits] (latency in ms, energy, ...).
    case table(name: String, values: [String: [Int: Double]])

    /// What BitFusion's energy model charges, in pJ.
    public struct EnergyConstants: Sendable, Equatable {
        /// One fused 8×8 unit for one cycle (a multiply and an accumulate).
        public var core: Double
        /// On-chip buffer traffic, per bit.
        public var sram: Double
        /// Off-chip memory traffic, per bit.
        public var dram: Double
        public init(core: Double, sram: Double, dram: Double) { self.core = core; self.sram = sram; self.dram = dram }
        /// 45 nm figures (Horowitz, ISSCC 2014, as Han et al. and BitFusion's authors cite them):
        /// 8-bit multiply 0.2 pJ + 32-bit add 0.1 pJ; 32-bit SRAM read 5 pJ; 32-bit DRAM read 640 pJ.
        public static let horowitz45nm = EnergyConstants(core: 0.3, sram: 5.0 / 32, dram: 640.0 / 32)
    }

    public var name: String {
        switch self {
        case .size: "size"
        case .bitOps: "bitops"
        case .bitFusion: "bitfusion"
        case .bitFusionEnergy: "energy"
        case .table(let name, _): name
        }
    }

    public var unit: String {
        switch self {
        case .size: "bytes"
        case .bitOps: "BitOps"
        case .bitFusion: "cycles"
        case .bitFusionEnergy: "µJ"
        case .table: ""
        }
    }

    /// The cost of one layer at `bits` weight bits.
    public func cost(_ layer: Layer, bits: Int) throws -> Double {
        try cost(layer, weightBits: bits, activationBits: nil)
    }

    /// One layer at `weightBits`, reading activations of `activationBits` (nil: the model's own
    /// rule — its fixed width, or the weight bits).
    func cost(_ layer: Layer, weightBits bits: Int, activationBits: Int?) throws -> Double {
        switch self {
        case .size:
            return Double(layer.parameterCount * bits) / 8
        case .bitOps(let a):
            return Double(layer.macs) * Double(bits) * Double(activationBits ?? a ?? bits)
        case let .bitFusion(a, rows, columns):
            return Self.bitFusionCycles(layer, weightBits: bits, activationBits: activationBits ?? a ?? bits, rows: rows, columns: columns)
        case let .bitFusionEnergy(a, rows, columns, e):
            let act = activationBits ?? a ?? bits
            let cycles = Self.bitFusionCycles(layer, weightBits: bits, activationBits: act, rows: rows, columns: columns)
            let s = layer.weightShape, cout = s[0]
            let pixels = Double(layer.macs / max(1, layer.parameterCount))
            let tiles = Double((cout + columns - 1) / columns)
            let streamed = Double(layer.macs / max(1, cout)) * tiles * Double(act) + pixels * Double(cout) * 32
            let fetched = Double(layer.parameterCount * bits)
            return (cycles * Double(rows * columns) * e.core + streamed * e.sram + fetched * e.dram) * 1e-6
        case let .table(name, values):
            guard let row = values[layer.name], let v = row[bits] else {
                throw MixedPrecisionError("cost table '\(name)' has no entry for layer '\(layer.name)' at \(bits) bits")
            }
            return v
        }
    }

    /// The cost of one policy entry, the one formula every report, budget and builtin uses:
    /// the layer at its weight widths — kernel-wise, each set of output channels sharing a width
    /// costed as a layer of those channels — reading its activation width. A float activation
    /// counts 32 bits for BitOps and size; on BitFusion (no float unit) it runs at the weight
    /// width. Float weights count 32 bits for size and BitOps; BitFusion refuses them, and a
    /// measured table has no float column. A measured table costs a kernel-wise layer at its
    /// widest kernel's width (the engine stores and runs the layer at that width).
    public func cost(_ entry: Policy.Entry) throws -> Double {
        let layer = entry.layer
        var activation = entry.activation?.bits
        switch self {
        case .size, .bitOps: if activation == nil { activation = 32 }
        default: break
        }
        guard let weight = entry.weight else {
            switch self {
            case .size, .bitOps: return try cost(layer, weightBits: 32, activationBits: activation)
            default: throw MixedPrecisionError("cost: layer '\(layer.name)' keeps float weights, which the \(name) cost model does not cover")
            }
        }
        if let b = weight.uniformBits { return try cost(layer, weightBits: b, activationBits: activation) }
        if case .table = self {
            // The engine stores a layer at the width its widest kernel needs, and runs it at that
            // width's speed: a measured table costs the layer there.
            return try cost(layer, weightBits: weight.widths(channels: layer.weightShape[0]).max()!, activationBits: activation)
        }
        let channels = layer.weightShape[0], widths = weight.widths(channels: channels)
        return try Set(widths).sorted().reduce(0.0) { total, b in
            let n = widths.filter { $0 == b }.count
            var part = layer
            part.weightShape[0] = n
            part.macs = layer.macs / channels * n
            return total + (try cost(part, weightBits: b, activationBits: activation))
        }
    }

    /// Cycles of one layer on an N×M BitFusion array (see `bitFusion`).
    static func bitFusionCycles(_ layer: Layer, weightBits: Int, activationBits: Int, rows: Int, columns: Int) -> Double {
        let speedup = (8 / max(activationBits, 2)) * (8 / max(weightBits, 2))
        let s = layer.weightShape
        let cout = s[0], cinG = s.count > 1 ? s[1] : 1
        let kernel = s.count == 4 ? s[2] * s[3] : 1
        let pixels = layer.macs / max(1, layer.parameterCount)
        let columnsNeeded = (cout + columns - 1) / columns
        let depth = (cinG + rows * speedup - 1) / (rows * speedup)
        return Double(columnsNeeded * pixels * kernel * depth)
    }

    /// A policy's cost: the sum of its entries' (see `cost(_ entry:)`).
    public func cost(_ policy: Policy) throws -> Double {
        try policy.entries.reduce(0.0) { $0 + (try cost($1)) }
    }

    /// The whole model's cost with every layer at `bits`.
    public func uniformCost(_ model: Model, bits: Int) throws -> Double {
        try model.layers.reduce(0.0) { $0 + (try cost($1, bits: bits)) }
    }
}

extension Model {
    /// Groups of layers that read the same value (a downsampling block's first conv and its
    /// 1×1 shortcut): they see one quantized activation, so bit allocations tie them.
    public var layersSharingInputs: [[Int]] {
        var byInput: [String: [Int]] = [:]
        for (i, layer) in layers.enumerated() { byInput[nodes[layer.node].inputs[0], default: []].append(i) }
        return byInput.values.filter { $0.count > 1 }.map { $0.sorted() }.sorted { $0[0] < $1[0] }
    }
}

extension BitAllocation {
    /// The problem for a model: the table's bits are every layer's choices and its values the
    /// objective; each budget is a cost model and a limit. Layers that share an input are tied
    /// unless `tieSharedInputs` is false; `pinned` fixes layers by name (first/last-layer rules).
    public init(model: Model, table: SensitivityTable, budgets: [(CostModel, Double)],
                tieSharedInputs: Bool = true, pinned: [String: Int] = [:]) throws {
        guard table.layers == model.layers.map(\.name) else {
            throw MixedPrecisionError("bit allocation: the sensitivity table's layers (\(table.layers.count)) are not the model's (\(model.layers.count))")
        }
        var pins: [Int: Int] = [:]
        for (name, b) in pinned {
            guard let i = table.layers.firstIndex(of: name) else {
                throw MixedPrecisionError("bit allocation: no layer named '\(name)' to pin; layers are \(table.layers.joined(separator: ", "))")
            }
            guard table.bits.contains(b) else {
                throw MixedPrecisionError("bit allocation: layer '\(name)' is pinned at \(b) bits, which is not a candidate (\(table.bits.map(String.init).joined(separator: ", ")))")
            }
            pins[i] = b
        }
        let costs = try budgets.map { costModel, limit in
            Budget(name: costModel.name, cost: try model.layers.map { layer in try table.bits.map { try costModel.cost(layer, bits: $0) } },
                   limit: limit)
        }
        self.init(layers: table.layers, choices: Array(repeating: table.bits, count: table.layers.count), objective: table.values,
                  budgets: costs, ties: tieSharedInputs ? model.layersSharingInputs : [], pinned: pins)
    }
}
