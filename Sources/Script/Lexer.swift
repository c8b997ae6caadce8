/// Turns source text into tokens.
///
/// Newlines are tokens (they end statements) except inside `( )` and `[ ]`, where they are
/// skipped — unless a `{ }` opens inside them (a function literal's body passed as an argument),
/// where they are tokens again; the parser decides where else a newline may fall (after a binary operator, inside a
/// record literal). Comments run from `#` to the end of the line.
public struct Lexer {
    public static let keywords: Set<String> = ["fn", "if", "else", "for", "in", "while", "break", "continue",
                                               "return", "true", "false", "nil", "and", "or", "not"]
    /// Longest first, so `..<` wins over `..` and `**` over `*`.
    static let symbols = ["..<", "...", "**", "==", "!=", "<=", ">=", "|>", "+", "-", "*", "/", "%", "@", "<", ">",
                          "=", "(", ")", "[", "]", "{", "}", ",", ":", ";", ".", "?"]

    let chars: [Character]
    let base: SourceLocation
    var i = 0
    var line: Int
    var column: Int
    /// The open brackets, innermost last: newlines count when none is open or the innermost is `{`.
    var open: [Character] = []

    public init(_ source: String, startingAt base: SourceLocation = SourceLocation(line: 1, column: 1, offset: 0)) {
        chars = Array(source)
        self.base = base
        line = base.line
        column = base.column
    }

    var location: SourceLocation { SourceLocation(line: line, column: column, offset: base.offset + i, source: base.source) }

    mutating func advance() -> Character {
        let c = chars[i]
        i += 1
        if c == "\n" { line += 1; column = 1 } else { column += 1 }
        return c
    }

    func peek(_ ahead: Int = 0) -> Character? { i + ahead < chars.count ? chars[i + ahead] : nil }

    public mutating func tokenize() throws -> [Token] {
        var tokens: [Token] = []
        while true {
            let t = try next()
            // Collapse runs of newlines; drop newlines right after an opening brace or comma.
            if t.kind == .newline, let last = tokens.last {
                if last.kind == .newline { continue }
                if case .symbol(let s) = last.kind, ["{", ",", "(", "["].contains(s) { continue }
            }
            tokens.append(t)
            if t.kind == .end { return tokens }
        }
    }

    mutating func next() throws -> Token {
        while let c = peek() {
            if c == "#" {
                while let d = peek(), d != "\n" { _ = advance() }
            } else if c == "\n" {
                let at = location
                _ = advance()
                if open.last == nil || open.last == "{" { return Token(kind: .newline, location: at, text: "\\n") }
            } else if c.isWhitespace {
                _ = advance()
            } else {
                break
            }
        }
        let start = location
        guard let c = peek() else { return Token(kind: .end, location: start, text: "end of input") }
        if c.isNumber { return try number(start) }
        if c == "\"" { return try string(start) }
        if c.isLetter || c == "_" {
            var s = ""
            while let d = peek(), d.isLetter || d.isNumber || d == "_" { s.append(advance()) }
            return Token(kind: Self.keywords.contains(s) ? .keyword(s) : .identifier(s), location: start, text: s)
        }
        for sym in Self.symbols where matches(sym) {
            for _ in sym { _ = advance() }
            if sym == "(" || sym == "[" || sym == "{" { open.append(sym.first!) }
            if (sym == ")" || sym == "]" || sym == "}") && !open.isEmpty { open.removeLast() }
            return Token(kind: .symbol(sym), location: start, text: sym)
        }
        _ = advance()
        throw ScriptError.syntax("unexpected character '\(c)'", start)
    }

    func matches(_ s: String) -> Bool {
        var k = 0
        for ch in s {
            guard let c = peek(k), c == ch else { return false }
            k += 1
        }
        return true
    }

    /// number := digits ('_' digits)* ('.' digits)? ([eE] [+-]? digits)?
    mutating func number(_ start: SourceLocation) throws -> Token {
        var s = ""
        func digits() { while let d = peek(), d.isNumber || d == "_" { let c = advance(); if c != "_" { s.append(c) } } }
        digits()
        // A '.' followed by a digit is a fraction; '..' is a range operator.
        if peek() == ".", let d = peek(1), d.isNumber {
            s.append(advance())
            digits()
        }
        if let e = peek(), e == "e" || e == "E", let d = peek(1), d.isNumber || ((d == "+" || d == "-") && (peek(2)?.isNumber ?? false)) {
            s.append(advance())
            if peek() == "+" || peek() == "-" { s.append(advance()) }
            digits()
        }
        guard let v = Double(s) else { throw ScriptError.syntax("malformed number '\(s)'", start) }
        return Token(kind: .number(v), location: start, text: s)
    }

    /// string := '"' (char | escape | '\(' expression ')')* '"'
    mutating func string(_ start: SourceLocation) throws -> Token {
        _ = advance()
        var parts: [StringPart] = []
        var text = ""
        while true {
            guard let c = peek() else { throw ScriptError.syntax("unterminated string", start) }
            if c == "\n" { throw ScriptError.syntax("unterminated string (a string ends on its line)", start) }
            _ = advance()
            if c == "\"" { break }
            if c != "\\" { text.append(c); continue }
            guard let e = peek() else { throw ScriptError.syntax("unterminated string", start) }
            let escapeAt = location
            _ = advance()
            switch e {
            case "n": text.append("\n")
            case "t": text.append("\t")
            case "\\": text.append("\\")
            case "\"": text.append("\"")
            case "0": text.append("\0")
            case "(":
                if !text.isEmpty { parts.append(.text(text)); text = "" }
                let codeStart = location
                var code = "", nesting = 1
                while true {
                    guard let d = peek(), d != "\n" else { throw ScriptError.syntax("unterminated interpolation \\( … )", escapeAt) }
                    _ = advance()
                    if d == "(" { nesting += 1 }
                    if d == ")" { nesting -= 1; if nesting == 0 { break } }
                    code.append(d)
                }
                parts.append(.code(code, codeStart))
            default:
                throw ScriptError.syntax("unknown escape '\\\(e)' in string; expected \\n, \\t, \\\\, \\\", \\0 or \\( … )", escapeAt)
            }
        }
        if !text.isEmpty || parts.isEmpty { parts.append(.text(text)) }
        return Token(kind: .string(parts), location: start, text: "string")
    }
}
