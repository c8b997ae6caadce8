import Quantization
import Foundation
import Network
import Tensors

/// What a builtin's parameter accepts.
public enum ParameterType: Sendable, Equatable {
    case any, number, integer, string, bool, list, record, function, tensor, model, dataset
    /// A tensor, or a number or (nested) list of numbers that becomes one.
    case tensorLike
    /// A list of integers (a shape).
    case shape
    /// One of these strings: binding checks it (with "did you mean"), and help lists them.
    case choice([String])

    /// The choices of an enumeration, by raw value.
    public static func choice<E: CaseIterable & RawRepresentable>(_ type: E.Type) -> ParameterType where E.RawValue == String {
        .choice(type.allCases.map(\.rawValue))
    }

    var name: String {
        switch self {
        case .any: "any value"; case .number: "Number"; case .integer: "integer Number"; case .string: "String"
        case .bool: "Bool"; case .list: "List"; case .record: "Record"; case .function: "Function"; case .tensor: "Tensor"
        case .model: "Model"; case .dataset: "Dataset"; case .tensorLike: "Tensor (or numbers)"; case .shape: "List of integers (a shape)"
        case .choice(let options): "one of " + options.map { "\"\($0)\"" }.joined(separator: ", ")
        }
    }
}

public struct BuiltinParameter: Sendable {
    public var name: String
    public var type: ParameterType
    /// nil: required.
    public var defaultValue: Value?
    /// Takes every remaining positional argument (print's values).
    public var variadic = false
    /// Accepts nil as "not given" even though the type says otherwise.
    public var optional = false

    public static func required(_ name: String, _ type: ParameterType) -> BuiltinParameter {
        BuiltinParameter(name: name, type: type, defaultValue: nil)
    }
    public static func optional(_ name: String, _ type: ParameterType, _ value: Value = .null) -> BuiltinParameter {
        BuiltinParameter(name: name, type: type, defaultValue: value, optional: true)
    }
    public static func variadic(_ name: String, _ type: ParameterType = .any) -> BuiltinParameter {
        BuiltinParameter(name: name, type: type, defaultValue: nil, variadic: true)
    }
}

/// An example in a builtin's help; the example test runs each one and compares what it shows
/// with `result` (nil: it must just run without error).
public struct BuiltinExample: Sendable {
    public var code: String
    public var result: String?
    public init(_ code: String, _ result: String? = nil) { self.code = code; self.result = result }
}

/// The arguments of one call, bound to parameter names and checked against their types.
public struct Arguments {
    public var values: [String: Value]
    public var rest: [Value]
    public var location: SourceLocation?
    public let builtin: String

    public subscript(_ name: String) -> Value { values[name] ?? .null }

    func fail(_ message: String) -> ScriptError { .runtime("\(builtin): \(message)", location) }

    public func number(_ name: String) throws -> Double {
        guard case .number(let x) = self[name] else { throw fail("'\(name)' must be a Number") }
        return x
    }
    public func optionalNumber(_ name: String) throws -> Double? {
        if case .null = self[name] { return nil }
        return try number(name)
    }
    public func int(_ name: String) throws -> Int {
        let x = try number(name)
        guard let i = Convert.whole(x) else { throw fail("'\(name)' must be an integer, got \(Value.format(x))") }
        return i
    }
    public func optionalInt(_ name: String) throws -> Int? {
        if case .null = self[name] { return nil }
        return try int(name)
    }
    /// A `.choice` argument as the enumeration it names (binding already checked the string).
    public func choice<E: RawRepresentable>(_ name: String, as type: E.Type = E.self) throws -> E where E.RawValue == String {
        let s = try string(name)
        guard let v = E(rawValue: s) else { throw fail("'\(name)' must be one of the declared choices, got \"\(s)\"") }
        return v
    }
    public func string(_ name: String) throws -> String {
        guard case .string(let s) = self[name] else { throw fail("'\(name)' must be a String") }
        return s
    }
    public func optionalString(_ name: String) throws -> String? {
        if case .null = self[name] { return nil }
        return try string(name)
    }
    public func bool(_ name: String) throws -> Bool {
        guard case .bool(let b) = self[name] else { throw fail("'\(name)' must be a Bool") }
        return b
    }
    public func tensor(_ name: String) throws -> Tensor {
        try Convert.tensor(self[name], what: "'\(name)' of '\(builtin)'", at: location)
    }
    public func model(_ name: String) throws -> Model {
        guard case .model(let m) = self[name] else { throw fail("'\(name)' must be a Model") }
        return m
    }
    public func dataset(_ name: String) throws -> Dataset {
        guard case .dataset(let d) = self[name] else { throw fail("'\(name)' must be a Dataset") }
        return d
    }
    public func shape(_ name: String) throws -> [Int] { try Convert.shape(self[name], what: "'\(name)' of '\(builtin)'", at: location) }
}

/// One builtin, declared once: dispatch, argument checks, help, completion and the reference
/// page all come from this declaration.
public final class Builtin: @unchecked Sendable {
    public let name: String
    public let category: String
    public let parameters: [BuiltinParameter]
    public let returns: String
    public let summary: String
    public let examples: [BuiltinExample]
    let body: (Arguments, Interpreter) throws -> Value

    public init(_ name: String, category: String, _ parameters: [BuiltinParameter], returns: String, summary: String,
                examples: [BuiltinExample] = [], body: @escaping (Arguments, Interpreter) throws -> Value) {
        self.name = name; self.category = category; self.parameters = parameters; self.returns = returns
        self.summary = summary; self.examples = examples; self.body = body
    }

    /// `quantize(x, bits: 4, scheme: "symmetric")`
    public var signature: String {
        let ps = parameters.map { p -> String in
            if p.variadic { return "\(p.name)…" }
            guard let d = p.defaultValue else { return p.name }
            return "\(p.name): \(d.describe(depth: 1))"
        }
        return "\(name)(\(ps.joined(separator: ", "))) -> \(returns)"
    }

    /// The help text: signature, summary, the choices of string options, examples.
    public var help: String {
        var out = "\(signature)\n  \(summary)"
        for p in parameters { if case .choice = p.type { out += "\n  \(p.name): \(p.type.name)" } }
        if !examples.isEmpty {
            out += "\n  examples:"
            for e in examples { out += "\n    \(e.code)" + (e.result.map { "   # → \($0)" } ?? "") }
        }
        return out
    }

    /// Binds positional and named arguments to parameters, fills defaults and checks types,
    /// with the uniform message `expected Tensor for argument 2 of 'quantize', got Number`.
    func bind(_ positional: [Value], _ named: [(String, Value)], at location: SourceLocation?) throws -> Arguments {
        var values: [String: Value] = [:], rest: [Value] = []
        var p = 0
        for (index, v) in positional.enumerated() {
            guard p < parameters.count else {
                throw ScriptError.runtime("'\(name)' takes at most \(parameters.count) argument\(parameters.count == 1 ? "" : "s"), got \(positional.count)", location)
            }
            if parameters[p].variadic { rest.append(v); continue }
            try check(v, parameters[p], position: index + 1, at: location)
            values[parameters[p].name] = v
            p += 1
        }
        for (label, v) in named {
            guard let param = parameters.first(where: { $0.name == label && !$0.variadic }) else {
                let names = parameters.filter { !$0.variadic }.map(\.name)
                let near = names.min { editDistance($0, label) < editDistance($1, label) }
                throw ScriptError.runtime("'\(name)' has no parameter '\(label)'" + (near.map { "; did you mean '\($0)'?" } ?? ""), location)
            }
            if values[label] != nil { throw ScriptError.runtime("argument '\(label)' of '\(name)' given twice", location) }
            try check(v, param, position: nil, at: location)
            values[label] = v
        }
        for param in parameters where !param.variadic && values[param.name] == nil {
            guard let d = param.defaultValue else {
                throw ScriptError.runtime("missing argument '\(param.name)' in call to \(signature)", location)
            }
            values[param.name] = d
        }
        return Arguments(values: values, rest: rest, location: location, builtin: name)
    }

    func check(_ v: Value, _ p: BuiltinParameter, position: Int?, at location: SourceLocation?) throws {
        if p.optional, case .null = v { return }
        let ok: Bool
        switch (p.type, v) {
        case (.any, _), (.number, .number), (.string, .string), (.bool, .bool), (.list, .list), (.list, .range),
             (.record, .record), (.function, .closure), (.function, .builtin), (.tensor, .tensor), (.model, .model),
             (.dataset, .dataset), (.tensorLike, .tensor), (.tensorLike, .number), (.tensorLike, .list), (.tensorLike, .range), (.shape, .list):
            ok = true
        case (.integer, .number(let x)): ok = Convert.whole(x) != nil
        case (.choice(let options), .string(let x)): ok = options.contains(x)
        default: ok = false
        }
        guard ok else {
            let which = position.map { "argument \($0)" } ?? "argument '\(p.name)'"
            var found = p.type == .integer && v.typeName == "Number" ? v.shown : v.typeName
            if case .choice(let options) = p.type, case .string(let x) = v {
                found = "\"\(x)\""
                if let near = options.min(by: { editDistance($0, x) < editDistance($1, x) }), editDistance(near, x) <= max(1, x.count / 3) {
                    found += " (did you mean \"\(near)\"?)"
                }
            }
            throw ScriptError.runtime("expected \(p.type.name) for \(which) of '\(name)', got \(found)", location)
        }
    }
}

/// Conversions between script values and library types, with uniform errors.
public enum Convert {
    /// The one way a script's number becomes an Int: finite, whole and within `range` (by
    /// default ±2^53, where Doubles still count exactly), or nil. Callers name the argument.
    public static func whole(_ x: Double, in range: ClosedRange<Int> = -(1 << 53)...(1 << 53)) -> Int? {
        guard x.isFinite, x == x.rounded(), x >= Double(range.lowerBound), x <= Double(range.upperBound) else { return nil }
        return Int(x)
    }

    /// Numbers, nested lists of numbers (rectangular) and tensors become tensors.
    public static func tensor(_ v: Value, what: String, at: SourceLocation?) throws -> Tensor {
        switch v {
        case .tensor(let t): return t
        case .number(let x): return Tensor(Float(x))
        case .range(let lo, let hi):
            do { _ = try Tensor.elementCount(of: [hi - lo]) } catch { throw ScriptError.runtime("\(what): \(error)", at) }
            return Tensor((lo..<hi).map(Float.init))
        case .list(let items):
            if items.isEmpty { return try Tensor(shape: [0], scalars: []) }
            if items.allSatisfy({ if case .number = $0 { return true }; return false }) {
                return Tensor(items.map { if case .number(let x) = $0 { return Float(x) }; return 0 })
            }
            let rows = try items.map { try tensor($0, what: what, at: at) }
            guard rows.allSatisfy({ $0.shape == rows[0].shape }) else {
                throw ScriptError.runtime("expected a rectangular list of numbers for \(what), found rows of shapes \(rows.map(\.shape))", at)
            }
            do { return try Tensor.stack(rows.map { try $0.reshaped([1] + $0.shape) }) } catch {
                throw ScriptError.runtime("\(what): \(error)", at)
            }
        default:
            throw ScriptError.runtime("expected Tensor for \(what), got \(v.typeName)", at)
        }
    }

    public static func shape(_ v: Value, what: String, at: SourceLocation?) throws -> [Int] {
        guard case .list(let items) = v else { throw ScriptError.runtime("expected a shape (list of integers) for \(what), got \(v.typeName)", at) }
        return try items.map { item in
            guard case .number(let x) = item, let d = Convert.whole(x) else {
                throw ScriptError.runtime("expected integers in the shape for \(what), found \(item.shown)", at)
            }
            return d
        }
    }

    /// A tensor back to a value: rank 0 becomes a Number.
    public static func value(_ t: Tensor) -> Value {
        t.rank == 0 ? .number(Double(t.scalars[0])) : .tensor(t)
    }
}

extension Arguments {
    func object<T: ScriptObject>(_ name: String, _ type: T.Type, what: String) throws -> T {
        guard case .object(let o) = self[name], let t = o as? T else {
            throw fail("expected \(what) for '\(name)', got \(self[name].typeName)")
        }
        return t
    }

    /// The training and validation splits of a learning builtin: `data` and the `validation`
    /// dataset when given, else `data` split 90/10 with `seed`.
    func trainingSplits(seed: UInt64) throws -> (train: Dataset, validation: Dataset) {
        let data = try dataset("data")
        if case .dataset(let v) = self["validation"] { return (data, v) }
        return try data.split(0.9, seed: seed)
    }

    /// A library error as this builtin's, without the method's own "name: " prefix.
    func fail(_ error: CustomStringConvertible, method: String) -> ScriptError {
        let m = error.description
        return fail(m.hasPrefix("\(method): ") ? String(m.dropFirst(method.count + 2)) : m)
    }

    func bitsList(_ name: String) throws -> [Int] {
        guard case .list(let xs) = self[name], !xs.isEmpty else { throw fail("'\(name)' must be a non-empty List of bit widths") }
        return try xs.map { v in
            guard case .number(let x) = v, let b = Convert.whole(x, in: 1...8) else {
                throw fail("'\(name)' must hold bit widths in 1…8, found \(v.shown)")
            }
            return b
        }
    }

    func granularity(_ name: String = "granularity") throws -> Granularity {
        try choice(name)
    }

    /// A stderr progress line for long work: "label 3/22 · 4 s, about 25 s left" (the time left
    /// from the mean pace so far). With `after`, nothing shows until that many seconds have
    /// passed (work that is usually quick, such as evaluate, stays silent when it is).
    func progress(_ interp: Interpreter, _ label: String, after: TimeInterval = 0) -> (Int, Int) -> Void {
        let start = Date()
        return { done, total in
            let spent = Date().timeIntervalSince(start)
            if spent < after { return }
            var line = "\(label) \(done)/\(total)"
            if spent >= 1 {
                line += " · \(Int(spent.rounded())) s"
                if done > 0 && done < total { line += ", about \(Int((spent / Double(done) * Double(total - done)).rounded())) s left" }
            }
            interp.progress(line, done: done == total)
        }
    }
}
