import Foundation
/// A position in source text: 1-based line and column, and the byte offset.
public struct SourceLocation: Equatable, Sendable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public var offset: Int
    /// Which text the location is in: 0, the script being run; otherwise a file registered in
    /// `SourceFiles` (the stdlib's), so errors inside it name that file and show its line.
    public var source: Int = 0
    public init(line: Int, column: Int, offset: Int, source: Int = 0) { self.line = line; self.column = column; self.offset = offset; self.source = source }
    public var description: String { "\(line):\(column)" }
}

/// Texts other than the running script that code comes from (the stdlib's files), by id.
public enum SourceFiles {
    nonisolated(unsafe) private static var files: [(name: String, text: String)] = []
    private static let lock = NSLock()

    /// Registers a file's text; its id goes into the locations of code parsed from it.
    public static func register(name: String, text: String) -> Int {
        lock.lock(); defer { lock.unlock() }
        if let i = files.firstIndex(where: { $0.name == name && $0.text == text }) { return i + 1 }
        files.append((name, text))
        return files.count
    }

    public static func file(_ id: Int) -> (name: String, text: String)? {
        lock.lock(); defer { lock.unlock() }
        return id >= 1 && id <= files.count ? files[id - 1] : nil
    }
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
