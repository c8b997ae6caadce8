import Network
import Tensors

/// The fields a person can discover on each kind of value (`m.layers`, `data.test`, `t.shape`).
enum Fields {
    static func names(_ v: Value) -> [String] {
        switch v {
        case .record(let r): return r.keys
        case .tensor: return ["shape", "rank", "count"]
        case .model: return ["name", "layers", "parameters", "input_shape", "weights"]
        case .dataset: return ["name", "images", "labels", "count", "classes"]
        case .list, .range, .string: return ["count"]
        default: return []
        }
    }

    static func get(_ v: Value, _ name: String, at: SourceLocation) throws -> Value? {
        switch (v, name) {
        case (.record(let r), _): return r[name]
        case (.tensor(let t), "shape"): return .list(t.shape.map { .number(Double($0)) })
        case (.tensor(let t), "rank"): return .number(Double(t.rank))
        case (.tensor(let t), "count"): return .number(Double(t.count))
        case (.model(let m), "name"): return .string(m.name)
        case (.model(let m), "layers"): return .list(m.layers.map(layerRecord))
        case (.model(let m), "parameters"):
            return .record(Record(m.parameterOrder.map { ($0, .tensor(m.parameters[$0]!)) }))
        case (.model(let m), "input_shape"): return .list(m.inputShape.map { .number(Double($0)) })
        case (.model(let m), "weights"): return .number(Double(m.weightCount))
        case (.dataset(let d), "name"): return .string(d.name)
        case (.dataset(let d), "images"): return .tensor(d.images)
        case (.dataset(let d), "labels"): return .tensor(Tensor(d.labels.map(Float.init)))
        case (.dataset(let d), "count"): return .number(Double(d.count))
        case (.dataset(let d), "classes"): return .number(Double(d.classes))
        case (.list(let xs), "count"): return .number(Double(xs.count))
        case (.range(let lo, let hi), "count"): return .number(Double(hi - lo))
        case (.string(let s), "count"): return .number(Double(s.count))
        default: return nil
        }
    }

    static func layerRecord(_ l: Layer) -> Value {
        .record(Record([("name", .string(l.name)), ("type", .string(l.kind.rawValue)),
                        ("shape", .list(l.weightShape.map { .number(Double($0)) })),
                        ("params", .number(Double(l.parameterCount))), ("macs", .number(Double(l.macs)))]))
    }

    static func missing(_ v: Value, _ name: String, at: SourceLocation) -> ScriptError {
        let known = names(v)
        if known.isEmpty { return .runtime("a \(v.typeName) has no fields (looked for '\(name)')", at) }
        let near = known.min { editDistance($0, name) < editDistance($1, name) }
        var msg = "\(v.typeName) has no field '\(name)'"
        if let near, editDistance(near, name) <= max(1, name.count / 3) { msg += "; did you mean '\(near)'?" }
        return .runtime(msg + " (fields: \(known.joined(separator: ", ")))", at)
    }
}
