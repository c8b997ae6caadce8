import Foundation

/// A stdlib function's documentation, written once, in the `#` comment block right above its
/// top-level `fn` line: the text up to an `Examples:` line is its summary, and each comment line
/// after it one example, `CODE` or `CODE   # → RESULT`. Help (`?name`, `help`, `:help`), the
/// reference (`mpq doc`) and the example tests read it from there, as they read builtins'
/// declarations.
public struct StdlibFunction: Sendable {
    public var name: String
    /// The `fn` line's name and parameters, e.g. `hawq_v3(model, data, size: nil, …)`.
    public var signature: String
    public var summary: String
    public var examples: [BuiltinExample]
    /// The file it is defined in (`methods.mpq`).
    public var file: String

    /// The help text: signature, summary, examples (as a builtin's).
    public var help: String {
        var out = "\(signature)   (stdlib/\(file))\n  \(summary)"
        if !examples.isEmpty {
            out += "\n  examples:"
            for e in examples { out += "\n    \(e.code)" + (e.result.map { "   # → \($0)" } ?? "") }
        }
        return out
    }
}

extension Stdlib {
    /// Every top-level function of a stdlib file with the comment block above it (a function
    /// without one has an empty summary, which the tests refuse).
    public static func documentation(of source: String, file: String) -> [StdlibFunction] {
        var out: [StdlibFunction] = []
        var block: [String] = []
        for line in source.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("#") {
                block.append(String(line.dropFirst().drop { $0 == " " }))
                continue
            }
            defer { block = [] }
            guard line.hasPrefix("fn "), let open = line.firstIndex(of: "("), let close = matchingParenthesis(line, from: open) else { continue }
            let name = String(line[line.index(line.startIndex, offsetBy: 3)..<open]).trimmingCharacters(in: .whitespaces)
            let split = block.firstIndex { $0.trimmingCharacters(in: .whitespaces).lowercased().hasPrefix("example") }
            let text = block[..<(split ?? block.endIndex)].joined(separator: " ").trimmingCharacters(in: .whitespaces)
            let examples = split.map { block[($0 + 1)...] }.map { lines in
                lines.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map { line -> BuiltinExample in
                    guard let arrow = line.range(of: "# → ") else { return BuiltinExample(line) }
                    return BuiltinExample(String(line[..<arrow.lowerBound]).trimmingCharacters(in: .whitespaces),
                                          String(line[arrow.upperBound...]).trimmingCharacters(in: .whitespaces))
                }
            } ?? []
            out.append(StdlibFunction(name: name, signature: name + String(line[open...close]), summary: text,
                                      examples: examples, file: file))
        }
        return out
    }

    /// The `)` closing the `(` at `open` (default values may hold brackets and strings of their own).
    static func matchingParenthesis(_ line: Substring, from open: Substring.Index) -> Substring.Index? {
        var depth = 0, inString = false
        var i = open
        while i < line.endIndex {
            let c = line[i]
            if c == "\"" { inString.toggle() }
            if !inString {
                if c == "(" { depth += 1 }
                if c == ")" { depth -= 1; if depth == 0 { return i } }
            }
            i = line.index(after: i)
        }
        return nil
    }
}
