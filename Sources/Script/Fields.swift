import Network
import Tensors

/// The fields a person can discover on each kind of value (`m.layers`, `data.test`, `t.shape`).
enum Fields {
    static func names(_ v: Value) -> [String] {
        switch v {
        case .record(let r): return r.keys
        case .tensor: return ["shape", "rank", "count"]
        case .model: return ["name", "layers", "parameters", "input_shape", "weights", "prunable"]
        case .dataset: return ["name", "images", "labels", "count", "classes", "preprocessing", "class_names", "shape"]
        case .list, .range, .string: return ["count"]
        case .object(let o): return o.fieldNames
        default: return []
        }
    }

    static func get(_ v: Value, _ name: String, at: SourceLocation) throws -> Value? {
        switch (v, name) {
        case (.record(let r), _): return r[name]
        case (.object(let o), _):
            do { return try o.field(name) } catch let e as ScriptError { throw e } catch { throw ScriptError.runtime("\(v.typeName).\(name): \(error)", at) }
        case (.tensor(let t), "shape"): return .list(t.shape.map { .number(Double($0)) })
        case (.tensor(let t), "rank"): return .number(Double(t.rank))
        case (.tensor(let t), "count"): return .number(Double(t.count))
        case (.model(let m), "name"): return .string(m.name)
        case (.model(let m), "layers"): return .list(m.layers.map(layerRecord))
        case (.model(let m), "prunable"): return .list(m.prunableLayers.map { .string($0) })
        case (.model(let m), "parameters"):
            return .record(Record(m.parameterOrder.map { ($0, .tensor(m.parameters[$0]!)) }))
        case (.model(let m), "input_shape"): return .list(m.inputShape.map { .number(Double($0)) })
        case (.model(let m), "weights"): return .number(Double(m.weightCount))
        case (.dataset(let d), "name"): return .string(d.name)
        case (.dataset(let d), "images"): return .tensor(d.images)
        case (.dataset(let d), "labels"): return .tensor(Tensor(d.labels.map(Float.init)))
        case (.dataset(let d), "count"): return .number(Double(d.count))
        case (.dataset(let d), "classes"): return .number(Double(d.classes))
        case (.dataset(let d), "preprocessing"): return .string(d.preprocessing)
        case (.dataset(let d), "class_names"): return .list((d.classNames ?? (0..<d.classes).map(String.init)).map { .string($0) })
        case (.dataset(let d), "shape"): return .list(d.exampleShape.map { .number(Double($0)) })
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

extension Interpreter {
    /// What Tab completes for `text`: builtins, variables and `:commands`, or, after a dot, the
    /// fields of the value named before it (`m.lay` → `m.layers`; `data.test.co` → `data.test.count`).
    public func completions(for text: String, commands: [String] = []) -> [String] {
        if let dot = text.lastIndex(of: ".") {
            let base = String(text[..<dot]), prefix = String(text[text.index(after: dot)...])
            let path = base.split(separator: ".").map(String.init)
            guard let first = path.first, var value = globals.lookup(first) else { return [] }
            for field in path.dropFirst() {
                guard let next = try? Fields.get(value, field, at: SourceLocation(line: 0, column: 0, offset: 0)) else { return [] }
                value = next
            }
            return Fields.names(value).filter { $0.hasPrefix(prefix) }.map { base + "." + $0 }
        }
        let names = Set(builtins.keys).union(globals.values.keys).union(commands)
        return names.filter { $0.hasPrefix(text) }.sorted()
    }

    /// Tab inside a string argument of a builtin whose parameter takes one of several strings:
    /// `line` is the text before the cursor (`search(s, solver: "gr`); the options of that
    /// parameter starting with what is typed after the quote (`["greedy"]`), or nil when the
    /// cursor is not in such an argument. The options come from the builtin's declaration.
    public func choiceCompletions(before line: String) -> [String]? {
        let chars = Array(line)
        guard let quote = chars.lastIndex(of: "\""), chars.filter({ $0 == "\"" }).count % 2 == 1 else { return nil }
        let typed = String(chars[(quote + 1)...])
        var i = quote - 1
        while i >= 0, chars[i] == " " { i -= 1 }
        guard i >= 0, chars[i] == ":" else { return nil }
        i -= 1
        while i >= 0, chars[i] == " " { i -= 1 }
        var end = i
        while i >= 0, chars[i].isLetter || chars[i].isNumber || chars[i] == "_" { i -= 1 }
        guard i < end else { return nil }
        let argument = String(chars[(i + 1)...end])
        // The innermost call still open before the argument.
        var depth = 0, inString = false
        while i >= 0 {
            switch chars[i] {
            case "\"": inString.toggle()
            case ")", "]", "}" where !inString: depth += 1
            case "[", "{" where !inString: depth -= 1
            case "(" where !inString:
                if depth == 0 {
                    end = i - 1
                    var j = end
                    while j >= 0, chars[j].isLetter || chars[j].isNumber || chars[j] == "_" { j -= 1 }
                    guard j < end, let builtin = builtins[String(chars[(j + 1)...end])],
                          let parameter = builtin.parameters.first(where: { $0.name == argument }),
                          case .choice(let options) = parameter.type else { return nil }
                    return options.filter { $0.hasPrefix(typed) }
                }
                depth -= 1
            default: break
            }
            i -= 1
        }
        return nil
    }
}
