/// An error in a script: what was expected and what was found, where, and (at run time) the
/// chain of calls that led there. Rendered like a compiler diagnostic:
///
///     error: expected Tensor for argument 1 of 'reshape', got Number
///      --> tutorials/01.mpq:12:9
///        |
///     12 | y = reshape(3, [1, 2])
///        |            ^
///     called from 'f' at tutorials/01.mpq:15:1
public struct ScriptError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case syntax, runtime, io }
    public var kind: Kind
    public var message: String
    public var location: SourceLocation?
    /// Innermost first: the function that failed and where each was called from.
    public var calls: [(function: String, location: SourceLocation)] = []
    /// Further syntax errors found after the first.
    public var others: [ScriptError] = []

    public static func syntax(_ message: String, _ at: SourceLocation) -> ScriptError {
        ScriptError(kind: .syntax, message: message, location: at)
    }
    public static func runtime(_ message: String, _ at: SourceLocation? = nil) -> ScriptError {
        ScriptError(kind: .runtime, message: message, location: at)
    }

    public var description: String { location.map { "\($0): \(message)" } ?? message }

    /// The full diagnostic with the source line and a caret; every syntax error when there are several.
    public func render(source: String, file: String) -> String {
        let scriptLines = source.split(separator: "\n", omittingEmptySubsequences: false)
        /// The file and lines a location is in: the script's, or a registered file's (the stdlib's).
        func origin(_ at: SourceLocation) -> (String, [Substring]) {
            guard at.source != 0, let f = SourceFiles.file(at.source) else { return (file, scriptLines) }
            return (f.name, f.text.split(separator: "\n", omittingEmptySubsequences: false))
        }
        func one(_ e: ScriptError) -> String {
            var out = "error: \(e.message)"
            if let at = e.location {
                let (file, lines) = origin(at)
                out += "\n --> \(file):\(at.line):\(at.column)"
                if at.line >= 1 && at.line <= lines.count {
                    let number = String(at.line), pad = String(repeating: " ", count: number.count)
                    // A long line is shown as 100 characters around the caret.
                    let line = Array(lines[at.line - 1])
                    let caret = min(max(0, at.column - 1), line.count)
                    let from = line.count > 100 ? max(0, min(caret - 60, line.count - 100)) : 0
                    let to = min(line.count, from + 100)
                    let text = (from > 0 ? "…" : "") + String(line[from..<to]) + (to < line.count ? "…" : "")
                    out += "\n\(pad) |\n\(number) | \(text)\n\(pad) | " + String(repeating: " ", count: caret - from + (from > 0 ? 1 : 0)) + "^"
                }
            }
            for call in e.calls { out += "\ncalled from '\(call.function)' at \(origin(call.location).0):\(call.location.line):\(call.location.column)" }
            return out
        }
        return ([self] + others).map(one).joined(separator: "\n\n")
    }
}
