/// A position in source text: 1-based line and column, and the byte offset.
public struct SourceLocation: Equatable, Sendable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public var offset: Int
    public init(line: Int, column: Int, offset: Int) { self.line = line; self.column = column; self.offset = offset }
    public var description: String { "\(line):\(column)" }
}

/// A piece of a string literal: text, or the source of an interpolated `\(expression)`.
public enum StringPart: Equatable, Sendable {
    case text(String)
    case code(String, SourceLocation)
}

public enum TokenKind: Equatable, Sendable {
    case number(Double)
    case string([StringPart])
    case identifier(String)
    case keyword(String)
    /// Operators and punctuation, by their spelling: `+`, `..<`, `|>`, `(`, …
    case symbol(String)
    case newline
    case end
}

public struct Token: Equatable, Sendable {
    public var kind: TokenKind
    public var location: SourceLocation
    /// The token's text as written (for messages: "at 'b'").
    public var text: String
}
