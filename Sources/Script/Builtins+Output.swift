import Foundation
import Network

extension Builtins {
    static let output: [Builtin] = [
        Builtin("print", category: "output", [.variadic("values")], returns: "nil",
                summary: "Writes the values separated by spaces, then a new line (strings without quotes).",
                examples: [BuiltinExample("print(\"acc\", 0.5)")]) { args, interp in
            interp.output(args.rest.map(\.printed).joined(separator: " "))
            return .null
        },
        Builtin("show", category: "output", [.required("value", .any)], returns: "nil",
                summary: "Writes a value as the prompt shows it (strings quoted inside lists, tensors by shape).",
                examples: [BuiltinExample("show([1, \"a\"])")]) { args, interp in
            interp.output(args["value"].shown)
            return .null
        },
        Builtin("help", category: "output", [.optional("name", .any)], returns: "nil",
                summary: "Shows a builtin's signature, summary and examples; without an argument, every builtin by category.",
                examples: [BuiltinExample("help(\"zeros\")")]) { args, interp in
            interp.output(try interp.helpText(for: args["name"], at: args.location))
            return .null
        },
        Builtin("type", category: "output", [.required("value", .any)], returns: "String",
                summary: "The name of a value's type.",
                examples: [BuiltinExample("type(3)", "Number"), BuiltinExample("type([1])", "List")]) { args, _ in
            .string(args["value"].typeName)
        },
        Builtin("len", category: "output", [.required("value", .any)], returns: "Number",
                summary: "Items in a list, range, record or string; examples in a dataset; first dimension of a tensor.",
                examples: [BuiltinExample("len([4, 5, 6])", "3"), BuiltinExample("len(0..<10)", "10")]) { args, _ in
            switch args["value"] {
            case .list(let xs): return .number(Double(xs.count))
            case .range(let lo, let hi): return .number(Double(hi - lo))
            case .record(let r): return .number(Double(r.keys.count))
            case .string(let s): return .number(Double(s.count))
            case .dataset(let d): return .number(Double(d.count))
            case .tensor(let t): return .number(Double(t.rank == 0 ? 1 : t.shape[0]))
            case let v: throw args.fail("expected a List, Range, Record, String, Dataset or Tensor, got \(v.typeName)")
            }
        },
        Builtin("list", category: "output", [.required("value", .any)], returns: "List",
                summary: "A range, string, record (its keys) or tensor (its first axis) as a list.",
                examples: [BuiltinExample("list(1...3)", "[1, 2, 3]")]) { args, interp in
            switch args["value"] {
            case .list(let xs): return .list(xs)
            case .range(let lo, let hi):
                guard hi - lo <= interp.maxListLength else { throw args.fail("a list of \(hi - lo) items is too long (limit \(interp.maxListLength))") }
                return .list((lo..<hi).map { .number(Double($0)) })
            case .string(let s): return .list(s.map { .string(String($0)) })
            case .record(let r): return .list(r.keys.map { .string($0) })
            case .tensor(let t):
                guard t.rank >= 1 else { return .list([.number(Double(t.scalars[0]))]) }
                return .list(try (0..<t.shape[0]).map { Convert.value(try t.slice($0)) })
            case let v: throw args.fail("cannot make a list from \(v.typeName)")
            }
        },
        Builtin("map", category: "output", [.required("items", .list), .required("f", .function)], returns: "List",
                summary: "Applies f to every item.",
                examples: [BuiltinExample("map([1, 2, 3], fn(x) { x * 10 })", "[10, 20, 30]")]) { args, interp in
            .list(try listItems(args["items"]).map { try interp.apply(args["f"], [$0], at: args.location) })
        },
        Builtin("filter", category: "output", [.required("items", .list), .required("keep", .function)], returns: "List",
                summary: "The items for which keep(item) is true, in order.",
                examples: [BuiltinExample("filter([1, 2, 3, 4], fn(x) { x % 2 == 0 })", "[2, 4]")]) { args, interp in
            .list(try listItems(args["items"]).filter { try interp.apply(args["keep"], [$0], at: args.location).isTruthy })
        },
        Builtin("contains", category: "output", [.required("items", .any), .required("item", .any)], returns: "Bool",
                summary: "Whether a list (or range) holds the item, a record has the field, or a string the substring.",
                examples: [BuiltinExample("contains([2, 4, 8], 4)", "true"), BuiltinExample("contains({a: 1}, \"b\")", "false"),
                           BuiltinExample("contains(\"int8\", \"8\")", "true")]) { args, _ in
            let item = args["item"]
            switch args["items"] {
            case .list(let xs): return .bool(xs.contains { Operations.equal($0, item) })
            case .range(let lo, let hi):
                guard case .number(let x) = item else { return .bool(false) }
                return .bool(x == x.rounded() && x >= Double(lo) && x < Double(hi))
            case .record(let r):
                guard case .string(let k) = item else { throw args.fail("a record's fields are named by Strings, got \(item.typeName)") }
                return .bool(r[k] != nil)
            case .string(let str):
                guard case .string(let sub) = item else { throw args.fail("a string contains Strings, got \(item.typeName)") }
                return .bool(str.contains(sub))
            case let v: throw args.fail("expected a List, Range, Record or String, got \(v.typeName)")
            }
        },
        Builtin("append", category: "output", [.required("items", .list), .required("item", .any)], returns: "List",
                summary: "A new list: the items, then one more (lists combine elementwise under +, so this is how to grow one).",
                examples: [BuiltinExample("append([1, 2], 3)", "[1, 2, 3]")]) { args, _ in
            guard case .list(let xs) = args["items"] else { throw args.fail("expected a List") }
            return .list(xs + [args["item"]])
        },
        Builtin("keys", category: "output", [.required("record", .record)], returns: "List",
                summary: "A record's field names, in order.", examples: [BuiltinExample("keys({a: 1, b: 2})", "[\"a\", \"b\"]")]) { args, _ in
            guard case .record(let r) = args["record"] else { throw args.fail("expected a Record") }
            return .list(r.keys.map { .string($0) })
        },
        plotBuiltin("plot", .line, "A line plot of ys (against 0, 1, … or against xs); a list of lists draws several lines. Drawn in the terminal, as SVG in notebooks."),
        plotBuiltin("scatter", .scatter, "A scatter plot of ys against xs (or against 0, 1, …); lists of lists for ys and xs draw one labelled series each (labels:), e.g. one point per method. Drawn in the terminal, as SVG in notebooks.",
                    example: "scatter([[0.93], [0.91]], xs: [[33.3], [12.1]], labels: [\"HAWQ-V3\", \"XNOR-Net\"], xlabel: \"µJ\")"),
        Builtin("table", category: "output", [.required("rows", .list)], returns: "nil",
                summary: "Writes a list of records as an aligned table, one column per field.",
                examples: [BuiltinExample("table([{bits: 8, acc: 0.92}, {bits: 4, acc: 0.91}])")]) { args, interp in
            guard case .list(let rows) = args["rows"] else { return .null }
            interp.output(try TableFormat.render(rows, at: args.location))
            return .null
        },
        Builtin("time", category: "output", [.required("f", .function)], returns: "Record",
                summary: "Calls f() and returns {value, seconds}.",
                examples: [BuiltinExample("time(fn() { 1 + 1 }).value", "2")]) { args, interp in
            let start = Date()
            let v = try interp.apply(args["f"], [], at: args.location)
            return .record(Record([("value", v), ("seconds", .number(Date().timeIntervalSince(start)))]))
        },
    ]
}

extension Builtins {
    static func numbers(_ v: Value, _ what: String, at: SourceLocation?) throws -> [Double] {
        switch v {
        case .list(let xs):
            return try xs.map { x in
                guard case .number(let d) = x else { throw ScriptError.runtime("\(what): expected numbers, found \(x.typeName)", at) }
                return d
            }
        case .range(let lo, let hi): return (lo..<hi).map(Double.init)
        case .tensor(let t): return t.scalars.map(Double.init)
        default: throw ScriptError.runtime("\(what): expected a List or Tensor of numbers, got \(v.typeName)", at)
        }
    }

    static func plotBuiltin(_ name: String, _ style: Plot.Style, _ summary: String, example: String? = nil) -> Builtin {
        Builtin(name, category: "output",
                [.required("ys", .any), .optional("xs", .any), .optional("title", .string, .string("")),
                 .optional("xlabel", .string, .string("")), .optional("ylabel", .string, .string("")),
                 .optional("labels", .list)], returns: "Plot", summary: summary,
                examples: [BuiltinExample("\(name)([1, 4, 9, 16], title: \"squares\")")] + (example.map { [BuiltinExample($0)] } ?? [])) { args, _ in
            if case .object(let o) = args["ys"], var p = o.plot {
                if style == .scatter { p.style = .scatter }
                if !(try args.string("title")).isEmpty { p.title = try args.string("title") }
                return .plot(p)
            }
            var ysList: [[Double]]
            if case .list(let items) = args["ys"], let first = items.first, case .list = first {
                ysList = try items.map { try numbers($0, "\(name) ys", at: args.location) }
            } else {
                ysList = [try numbers(args["ys"], "\(name) ys", at: args.location)]
            }
            // xs: one list for every series, or a list per series.
            var xsList: [[Double]]? = nil
            if case .list(let items) = args["xs"], let first = items.first, case .list = first {
                xsList = try items.map { try numbers($0, "\(name) xs", at: args.location) }
                guard xsList!.count == ysList.count else { throw args.fail("xs has \(xsList!.count) lists but ys has \(ysList.count)") }
            } else if case .null = args["xs"] {} else {
                let xs = try numbers(args["xs"], "\(name) xs", at: args.location)
                xsList = ysList.map { _ in xs }
            }
            var labels: [String] = []
            if case .list(let ls) = args["labels"] { labels = ls.map(\.printed) }
            let series = try ysList.enumerated().map { i, ys -> Plot.Series in
                let x = xsList?[i] ?? ys.indices.map(Double.init)
                guard x.count == ys.count else { throw args.fail("xs has \(x.count) values but ys has \(ys.count)") }
                return Plot.Series(x: x, y: ys, label: i < labels.count ? labels[i] : "series \(i + 1)")
            }
            guard series.contains(where: { !$0.y.isEmpty }) else { throw args.fail("nothing to plot: ys is empty") }
            return .plot(Plot(series: series, style: style, title: try args.string("title"),
                              xLabel: try args.string("xlabel"), yLabel: try args.string("ylabel")))
        }
    }
}

/// Aligned text tables from lists of records.
enum TableFormat {
    static func render(_ rows: [Value], at: SourceLocation?) throws -> String {
        var columns: [String] = []
        for r in rows {
            guard case .record(let rec) = r else { throw ScriptError.runtime("table: expected a list of records, found a \(r.typeName)", at) }
            for k in rec.keys where !columns.contains(k) { columns.append(k) }
        }
        var cells = [columns]
        for r in rows {
            guard case .record(let rec) = r else { continue }
            cells.append(columns.map { rec[$0].map { v in if case .number(let x) = v { return Value.format(x) }; return v.printed } ?? "" })
        }
        let widths = columns.indices.map { c in cells.map { $0[c].count }.max() ?? 0 }
        var lines = cells.map { row in row.enumerated().map { c, s in s.padding(toLength: widths[c], withPad: " ", startingAt: 0) }.joined(separator: "  ") }
        lines.insert(widths.map { String(repeating: "─", count: $0) }.joined(separator: "  "), at: 1)
        return lines.map { $0.replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression) }.joined(separator: "\n")
    }
}

extension Interpreter {
    /// `help(name)`, `?name` and `:help`.
    public func helpText(for target: Value, at: SourceLocation?) throws -> String {
        switch target {
        case .null:
            var out = "Builtins by category (help(\"name\") or ?name for one):"
            for c in Builtins.categories {
                let names = declarations.filter { $0.category == c }.map(\.name)
                if !names.isEmpty { out += "\n  \(c): \(names.joined(separator: ", "))" }
            }
            for file in Set(stdlibFunctions.map(\.file)).sorted() {
                out += "\n  stdlib/\(file): " + stdlibFunctions.filter { $0.file == file }.map(\.name).joined(separator: ", ")
            }
            return out
        case .builtin(let b): return b.help
        case .string(let name):
            if let b = builtins[name] { return b.help }
            if let f = stdlibFunctions.first(where: { $0.name == name }) { return f.help }
            let near = (Array(builtins.keys) + stdlibFunctions.map(\.name)).min { editDistance($0, name) < editDistance($1, name) } ?? ""
            throw ScriptError.runtime("no builtin or stdlib function named '\(name)'; did you mean '\(near)'?", at)
        case .closure(let c):
            if let f = stdlibFunctions.first(where: { $0.name == c.function.name }), globals.values[f.name].map({
                if case .closure(let g) = $0 { return g === c }; return false }) == true {
                return f.help
            }
            return "fn \(c.function.name)(\(c.function.parameters.map(\.name).joined(separator: ", "))) — defined at line \(c.function.location.line)"
        default:
            return "a \(target.typeName): \(target.shown)"
        }
    }
}

/// The items of a List, or the numbers of a Range (the argument checks admit nothing else).
private func listItems(_ v: Value) -> [Value] {
    switch v {
    case .list(let xs): xs
    case .range(let lo, let hi): (lo..<hi).map { .number(Double($0)) }
    default: []
    }
}
