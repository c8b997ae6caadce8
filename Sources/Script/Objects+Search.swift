import Foundation
import MixedPrecision
import Network
import Quantization

/// A sensitivity table with the model it measured (its layers' sizes give the costs).
public final class SensitivityObject: ScriptObject, @unchecked Sendable {
    public let table: SensitivityTable
    public let model: Model
    public let detail: String
    init(_ table: SensitivityTable, model: Model, detail: String) { self.table = table; self.model = model; self.detail = detail }

    public var typeName: String { "Sensitivity" }
    public var fieldNames: [String] { ["metric", "layers", "bits", "values", "params", "model", "rows"] }
    public func field(_ name: String) -> Value? {
        switch name {
        case "metric": return .string(table.metric.rawValue)
        case "layers": return .list(table.layers.map { .string($0) })
        case "bits": return .list(table.bits.map { .number(Double($0)) })
        case "values": return .list(table.values.map { .list($0.map { .number($0) }) })
        case "params": return .list(model.layers.map { .number(Double($0.parameterCount)) })
        case "model": return .model(model)
        case "rows": return .list(rows)
        default: return nil
        }
    }
    var rows: [Value] {
        table.layers.indices.map { l in
            .record(Record([("layer", .string(table.layers[l])), ("params", .number(Double(model.layers[l].parameterCount)))] +
                           table.bits.indices.map { ("\(table.bits[$0])-bit", .number(table.values[l][$0])) }))
        }
    }
    public var summary: String { "Sensitivity(\(table.metric.rawValue), \(table.layers.count) layers × bits \(table.bits))" }
    public var text: String {
        let header = "Sensitivity \(table.metric.rawValue) (\(detail)): \(table.layers.count) layers × \(table.bits.count) widths"
        let cells = table.layers.indices.map { l in
            Record([("layer", .string(table.layers[l])), ("params", .number(Double(model.layers[l].parameterCount)))] +
                   table.bits.indices.map { ("\(table.bits[$0])-bit", .string(String(format: "%.4g", table.values[l][$0]))) })
        }
        return header + "\n" + ((try? TableFormat.render(cells.map { .record($0) }, at: nil)) ?? "")
    }
}

/// A policy with the model it is for, and how it was found.
public final class PolicyObject: ScriptObject, @unchecked Sendable {
    public let policy: Policy
    public let model: Model
    /// Solver, objective and costs when a search produced it.
    public let origin: Record
    init(_ policy: Policy, model: Model, origin: Record = Record()) { self.policy = policy; self.model = model; self.origin = origin }

    public var typeName: String { "Policy" }
    public var fieldNames: [String] {
        ["layers", "bits", "activation_bits", "schemes", "activation_schemes", "params", "macs", "average_bits", "size", "bitops", "rows"] + origin.keys
    }
    /// A layer's weight width as the language shows it: a Number, 32 for float weights, or a
    /// List of one width per output channel.
    static func bits(_ e: Policy.Entry) -> Value {
        guard let w = e.weight else { return .number(32) }
        if let c = w.channelBits, w.uniformBits == nil { return .list(c.map { .number(Double($0)) }) }
        return .number(Double(w.uniformBits!))
    }
    public func field(_ name: String) -> Value? {
        switch name {
        case "layers": return .list(policy.layerNames.map { .string($0) })
        case "bits": return .list(policy.entries.map(Self.bits))
        case "activation_bits": return .list(policy.activationBits.map { $0.map { .number(Double($0)) } ?? .null })
        case "schemes": return .list(policy.entries.map { .string($0.weight?.quantizer.scheme.rawValue ?? "float") })
        case "activation_schemes": return .list(policy.entries.map { .string($0.activation?.scheme.rawValue ?? "float") })
        case "params": return .list(model.layers.map { .number(Double($0.parameterCount)) })
        case "macs": return .list(model.layers.map { .number(Double($0.macs)) })
        case "average_bits": return .number(policy.averageBits)
        case "size": return (try? CostModel.size.cost(policy)).map { .number($0) }
        case "bitops": return (try? CostModel.bitOps(activationBits: nil).cost(policy)).map { .number($0) }
        case "rows": return .list(rows)
        default: return origin[name]
        }
    }
    var rows: [Value] {
        policy.entries.map { e in
            var bits = Self.bits(e)
            if case .list(let c) = bits { bits = .string("\(c.count) channels, \(Value.format(Double(e.weight!.storedBits(for: e.layer)) / Double(e.layer.parameterCount))) avg") }
            if e.weight == nil { bits = .string("float") }
            return .record(Record([("layer", .string(e.layer.name)), ("params", .number(Double(e.layer.parameterCount))),
                                   ("bits", bits), ("scheme", .string(e.weight?.quantizer.scheme.rawValue ?? "float")),
                                   ("activation_bits", e.activation.map { .number(Double($0.bits)) } ?? .string("float")),
                                   ("activation_scheme", .string(e.activation?.scheme.rawValue ?? "float"))]))
        }
    }
    public var summary: String {
        "Policy(\(policy.entries.count) layers, average \(String(format: "%.2f", policy.averageBits)) bits)"
    }
    public var text: String {
        var head = summary.dropLast() + ", \(Value.format((try? CostModel.size.cost(policy)) ?? 0)) bytes"
        for k in origin.keys { head += ", \(k) \(origin[k]!.describe(depth: 1))" }
        return head + ")\n" + ((try? TableFormat.render(rows, at: nil)) ?? "")
    }
}

/// The Pareto frontier of a sensitivity table under one cost.
public final class FrontierObject: ScriptObject, @unchecked Sendable {
    public let points: [BitAllocation.Solution]
    public let cost: CostModel
    public let sensitivity: SensitivityObject
    init(_ points: [BitAllocation.Solution], cost: CostModel, sensitivity: SensitivityObject) {
        self.points = points; self.cost = cost; self.sensitivity = sensitivity
    }

    public var typeName: String { "Frontier" }
    public var fieldNames: [String] { ["costs", "objectives", "count", "cost", "policies"] }
    public func field(_ name: String) -> Value? {
        switch name {
        case "costs": return .list(points.map { .number($0.costs[0]) })
        case "objectives": return .list(points.map { .number($0.objective) })
        case "count": return .number(Double(points.count))
        case "cost": return .string(cost.name)
        case "policies": return .list(points.compactMap { policy($0).map(Value.object) })
        default: return nil
        }
    }
    func policy(_ s: BitAllocation.Solution) -> PolicyObject? {
        let m = sensitivity.model
        guard let p = try? sensitivity.table.policy(bits: s.bits, model: m) else { return nil }
        return PolicyObject(p, model: m, origin: Record([("objective", .number(s.objective)), (cost.name, .number(s.costs[0]))]))
    }
    public var summary: String { "Frontier(\(points.count) points, \(cost.name) vs \(sensitivity.table.metric.rawValue))" }
    public var text: String {
        // About a dozen points spread along the frontier.
        let step = max(1, points.count / 12)
        let shown = Array(stride(from: 0, to: points.count, by: step)) + (points.count % step == 1 || step == 1 ? [] : [points.count - 1])
        let rows: [Value] = shown.map { i in
            let p = points[i]
            let avg = (try? sensitivity.table.policy(bits: p.bits, model: sensitivity.model).averageBits) ?? 0
            return .record(Record([("point", .number(Double(i))), (cost.name, .string(String(format: "%.6g", p.costs[0]))),
                                   ("average_bits", .string(String(format: "%.2f", avg))),
                                   ("objective", .string(String(format: "%.4g", p.objective)))]))
        }
        return "\(summary)\n" + ((try? TableFormat.render(rows, at: nil)) ?? "")
    }
    public var plot: Plot? {
        Plot(series: [Plot.Series(x: points.map { $0.costs[0] }, y: points.map(\.objective), label: "frontier")], style: .line,
             title: "Pareto frontier", xLabel: "\(cost.name) (\(cost.unit))", yLabel: "\(sensitivity.table.metric.rawValue) sensitivity")
    }
}

/// The integer-only engine of a model under a policy.
public final class IntegerModelObject: ScriptObject, @unchecked Sendable {
    public let engine: IntegerModel
    init(_ engine: IntegerModel) { self.engine = engine }
    public var typeName: String { "IntegerModel" }
    public var fieldNames: [String] { ["simulation", "dyadic_simulation", "folded", "bytes", "bits", "activation_bits"] }
    public func field(_ name: String) throws -> Value? {
        switch name {
        case "simulation": return .model(engine.simulation)
        case "dyadic_simulation": return .model(try engine.dyadicSimulation)
        case "folded": return .model(engine.folded)
        case "bytes": return .number(Double(engine.storedBytes))
        case "bits": return .list(engine.policy.entries.map(PolicyObject.bits))
        case "activation_bits": return .list(engine.policy.activationBits.map { $0.map { .number(Double($0)) } ?? .null })
        default: return nil
        }
    }
    public var summary: String {
        "IntegerModel(\(engine.folded.name), \(engine.policy.entries.count) layers, \(engine.storedBytes) bytes stored)"
    }
    public var text: String {
        summary + ": int32 accumulation, dyadic requantization; evaluate(q, data) runs it; q.simulation is its fake-quant twin with exact scales, q.dyadic_simulation HAWQ-V3's (integer codes in floats, dyadic requantization), whose logits equal the engine's"
    }
}

/// A packed quantized tensor.
public final class PackedTensorObject: ScriptObject, @unchecked Sendable {
    public let packed: PackedTensor
    init(_ packed: PackedTensor) { self.packed = packed }
    public var typeName: String { "PackedTensor" }
    public var fieldNames: [String] { ["shape", "bits", "scheme", "bytes", "code_bytes", "scales", "zero_points"] }
    public func field(_ name: String) -> Value? {
        switch name {
        case "shape": return .list(packed.shape.map { .number(Double($0)) })
        case "bits": return .number(Double(packed.bits))
        case "scheme": return .string(packed.header.scheme)
        case "bytes": return .number(Double(packed.byteCount))
        case "code_bytes": return .number(Double(packed.bytes.count))
        case "scales": return .list(packed.header.scales.map { .number(Double($0)) })
        case "zero_points": return .list(packed.header.zeroPoints.map { .number(Double($0)) })
        default: return nil
        }
    }
    public var summary: String {
        "PackedTensor\(packed.shape) \(packed.bits)-bit \(packed.header.scheme), \(packed.byteCount) bytes (float: \(4 * packed.count))"
    }
    public var text: String { summary }
}
