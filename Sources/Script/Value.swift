import Foundation
import Network
import Tensors

/// A record: fields in the order they were written.
public struct Record: Sendable {
    public private(set) var keys: [String] = []
    public private(set) var values: [String: Value] = [:]
    public init() {}
    public init(_ pairs: [(String, Value)]) { for (k, v) in pairs { self[k] = v } }
    public subscript(key: String) -> Value? {
        get { values[key] }
        set {
            if values[key] == nil, newValue != nil { keys.append(key) }
            if newValue == nil { keys.removeAll { $0 == key } }
            values[key] = newValue
        }
    }
}

/// A user function together with the scope it was defined in.
public final class Closure: @unchecked Sendable {
    let code: CompiledFunction
    public let scope: Environment
    public var function: Function { code.function }
    init(_ code: CompiledFunction, _ scope: Environment) { self.code = code; self.scope = scope }
}

/// Every value a script can hold.
public enum Value: @unchecked Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case list([Value])
    /// lo..<hi, not materialised.
    case range(Int, Int)
    case record(Record)
    case closure(Closure)
    case builtin(Builtin)
    case tensor(Tensor)
    case model(Model)
    // Boxed, so that every Value stays small to copy.
    indirect case dataset(Dataset)
    indirect case plot(Plot)
    /// A library value with discoverable fields (sensitivity table, policy, frontier, ...).
    case object(any ScriptObject)

    /// The type's name as messages show it.
    public var typeName: String {
        switch self {
        case .null: "Nil"; case .bool: "Bool"; case .number: "Number"; case .string: "String"; case .list: "List"
        case .range: "Range"; case .record: "Record"; case .closure, .builtin: "Function"; case .tensor: "Tensor"
        case .model: "Model"; case .dataset: "Dataset"; case .plot: "Plot"
        case .object(let o): o.typeName
        }
    }

    public var isTruthy: Bool {
        switch self {
        case .null: false
        case .bool(let b): b
        default: true
        }
    }
}

extension Value {
    /// Numbers print without a trailing ".0" when integral, otherwise in the shortest form that
    /// reads back exactly (as Python does).
    static func format(_ x: Double) -> String {
        if x.isNaN { return "nan" }
        if x.isInfinite { return x > 0 ? "inf" : "-inf" }
        if x == x.rounded(), abs(x) < 1e15 { return String(Int64(x)) }
        return "\(x)"
    }

    /// The text `print` writes: strings bare, everything else as `show` writes it.
    public var printed: String {
        if case .string(let s) = self { return s }
        return shown
    }

    /// The text `show` (and the prompt) writes.
    public var shown: String { describe(depth: 0) }

    func describe(depth: Int) -> String {
        if depth > 8 { return "…" }
        switch self {
        case .null: return "nil"
        case .bool(let b): return b ? "true" : "false"
        case .number(let x): return Value.format(x)
        case .string(let s): return depth == 0 ? s : "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        case .list(let xs):
            let shownItems = xs.prefix(100).map { $0.describe(depth: depth + 1) }
            return "[" + shownItems.joined(separator: ", ") + (xs.count > 100 ? ", … (\(xs.count) items)" : "") + "]"
        case .range(let lo, let hi): return "\(lo)..<\(hi)"
        case .record(let r):
            return "{" + r.keys.map { k in "\(Value.fieldName(k)): \(r[k]!.describe(depth: depth + 1))" }.joined(separator: ", ") + "}"
        case .closure(let c): return "fn \(c.function.name)(\(c.function.parameters.map(\.name).joined(separator: ", ")))"
        case .builtin(let b): return "builtin \(b.signature)"
        case .tensor(let t): return TensorFormat.describe(t)
        case .model(let m):
            return "Model \(m.name): \(m.layers.count) conv/linear layers, \(m.weightCount) weights, input [N, \(m.inputShape.map(String.init).joined(separator: ", "))]"
        case .dataset(let d):
            return "Dataset \(d.name): \(d.count) examples \(d.exampleShape), \(d.classes) classes"
        case .plot(let p): return depth == 0 ? p.text() : "Plot(\(p.style.rawValue), \(p.series.count) series)"
        case .object(let o): return depth == 0 ? o.text : o.summary
        }
    }

    static func fieldName(_ k: String) -> String {
        let plain = k.first.map { $0.isLetter || $0 == "_" } ?? false && k.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" }
        return plain ? k : "\"\(k)\""
    }
}

/// How tensors print: shape, then values nested by axis, long axes elided.
enum TensorFormat {
    static func describe(_ t: Tensor) -> String {
        if t.rank == 0 { return "Tensor[] \(Value.format(Double(t.scalars[0])))" }
        var out = "Tensor\(t.shape) "
        func walk(_ axis: Int, _ offset: Int, _ stride: Int) -> String {
            let n = t.shape[axis]
            let inner = stride / max(n, 1)
            let show = n <= 8 ? Array(0..<n) : Array(0..<3) + [-1] + Array((n - 3)..<n)
            let parts: [String] = show.map { i in
                if i < 0 { return "…" }
                if axis == t.rank - 1 { return short(t.scalars[offset + i]) }
                return walk(axis + 1, offset + i * inner, inner)
            }
            return "[" + parts.joined(separator: ", ") + "]"
        }
        out += walk(0, 0, t.count)
        return out
    }

    static func short(_ x: Float) -> String {
        if x == x.rounded(), abs(x) < 1e7 { return String(Int(x)) }
        return String(format: "%.4g", Double(x))
    }
}
