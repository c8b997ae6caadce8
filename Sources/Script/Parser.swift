/// Recursive descent over the tokens, one function per grammar rule (written above each).
/// On a syntax error the parser records it, skips to the next statement boundary and goes on,
/// so one mistake does not hide the next.
public struct Parser {
    var tokens: [Token]
    var i = 0
    /// How deeply expressions and blocks nest here; past `maxNesting` the parser stops with an
    /// error instead of running out of stack (a fuzzer found 1,200 nested brackets).
    var nesting = 0
    static let maxNesting = 200
    /// Links of operator, call, index, field and pipe chains open on the way here (`a + b + c` is
    /// a tree two deep). Past `maxLinks` the parser stops: every later pass recurses that deep.
    var links = 0
    static let maxLinks = 2_000
    public private(set) var errors: [ScriptError] = []

    public init(tokens: [Token]) { self.tokens = tokens }

    /// Parses a whole program. Throws the first syntax error, carrying all of them.
    public static func parse(_ source: String, startingAt base: SourceLocation = SourceLocation(line: 1, column: 1, offset: 0)) throws -> [Stmt] {
        var lexer = Lexer(source, startingAt: base)
        var parser = Parser(tokens: try lexer.tokenize())
        let program = parser.program()
        if var first = parser.errors.first {
            first.others = Array(parser.errors.dropFirst())
            throw first
        }
        return program
    }

    var current: Token { tokens[i] }
    var atEnd: Bool { current.kind == .end }

    func isSymbol(_ s: String) -> Bool { if case .symbol(s) = current.kind { return true }; return false }
    func isKeyword(_ k: String) -> Bool { if case .keyword(k) = current.kind { return true }; return false }
    var isNewline: Bool { current.kind == .newline }

    mutating func advance() -> Token { let t = current; if !atEnd { i += 1 }; return t }
    mutating func skipNewlines() { while isNewline { i += 1 } }

    func error(_ message: String, at token: Token? = nil) -> ScriptError {
        let t = token ?? current
        let found = t.kind == .end ? "end of input" : t.kind == .newline ? "end of line" : "'\(t.text)'"
        return ScriptError.syntax("\(message), found \(found)", t.location)
    }

    mutating func expect(_ s: String, _ what: String) throws -> Token {
        guard isSymbol(s) else { throw error("expected \(what)") }
        return advance()
    }

    // program := (statement (NEWLINE | ';'))* END
    mutating func program() -> [Stmt] {
        var out: [Stmt] = []
        skipNewlines()
        while !atEnd {
            do {
                var s = try statement()
                if isSymbol(";") { _ = advance(); s.silent = true }
                else if !isNewline && !atEnd && !isSymbol("}") { throw error("expected a new line or ';' after the statement") }
                out.append(s)
            } catch let e as ScriptError {
                errors.append(e)
                synchronize()
            } catch {}
            skipNewlines()
        }
        return out
    }

    /// Skips to the start of the next statement after an error.
    mutating func synchronize() {
        var depth = 0
        while !atEnd {
            if isSymbol("{") { depth += 1 }
            if isSymbol("}") { depth -= 1 }
            if (isNewline || isSymbol(";")) && depth <= 0 { _ = advance(); return }
            _ = advance()
        }
    }

    // block := '{' (statement (NEWLINE | ';'))* '}'
    mutating func block() throws -> [Stmt] {
        try nest(); defer { nesting -= 1 }
        _ = try expect("{", "'{' to open a block")
        var out: [Stmt] = []
        skipNewlines()
        while !isSymbol("}") {
            if atEnd { throw error("expected '}' to close the block") }
            var s = try statement()
            if isSymbol(";") { _ = advance(); s.silent = true }
            else if !isNewline && !isSymbol("}") { throw error("expected a new line, ';' or '}' after the statement") }
            out.append(s)
            skipNewlines()
        }
        _ = advance()
        return out
    }

    // statement := 'fn' NAME params block | 'for' NAME 'in' expr block | 'while' expr block
    //            | 'break' | 'continue' | 'return' expr? | expr ('=' expr)?
    mutating func statement() throws -> Stmt {
        let at = current.location
        if isKeyword("fn"), case .identifier(let name)? = i + 1 < tokens.count ? tokens[i + 1].kind : nil {
            _ = advance(); _ = advance()
            let params = try parameters()
            let body = try block()
            return Stmt(kind: .function(Function(name: name, parameters: params, body: body, location: at)), location: at)
        }
        if isKeyword("for") {
            _ = advance()
            guard case .identifier(let name) = current.kind else { throw error("expected a loop variable name after 'for'") }
            _ = advance()
            guard isKeyword("in") else { throw error("expected 'in' after the loop variable") }
            _ = advance()
            let sequence = try expression()
            return Stmt(kind: .forIn(Name(name), sequence, try block()), location: at)
        }
        if isKeyword("while") {
            _ = advance()
            let cond = try expression()
            return Stmt(kind: .whileLoop(cond, try block()), location: at)
        }
        if isKeyword("break") { _ = advance(); return Stmt(kind: .breakLoop, location: at) }
        if isKeyword("continue") { _ = advance(); return Stmt(kind: .continueLoop, location: at) }
        if isKeyword("return") {
            _ = advance()
            if isNewline || atEnd || isSymbol("}") || isSymbol(";") { return Stmt(kind: .returnValue(nil), location: at) }
            return Stmt(kind: .returnValue(try expression()), location: at)
        }
        let e = try expression()
        if isSymbol("=") {
            let eq = advance()
            switch e.kind {
            case .name, .field, .index: break
            default: throw error("expected a name, field or index on the left of '='", at: eq)
            }
            skipNewlines()
            return Stmt(kind: .assign(e, try expression()), location: at)
        }
        return Stmt(kind: .expression(e), location: at)
    }

    // params := '(' (NAME (':' expr)? (',' NAME (':' expr)?)*)? ')'
    mutating func parameters() throws -> [Parameter] {
        _ = try expect("(", "'(' before the parameters")
        var out: [Parameter] = []
        while !isSymbol(")") {
            guard case .identifier(let name) = current.kind else { throw error("expected a parameter name") }
            _ = advance()
            var def: Expr? = nil
            if isSymbol(":") { _ = advance(); def = try expression() }
            if out.contains(where: { $0.name == name }) { throw error("duplicate parameter '\(name)'") }
            out.append(Parameter(name: name, defaultValue: def))
            if !isSymbol(")") { _ = try expect(",", "',' or ')' in the parameter list") }
        }
        _ = advance()
        return out
    }

    // expr := pipe
    public mutating func expression() throws -> Expr {
        try nest(); defer { nesting -= 1 }
        return try pipe()
    }

    /// One more link of a chain; the caller gives back its links when the chain ends.
    mutating func link(_ count: inout Int) throws {
        links += 1; count += 1
        if links > Self.maxLinks {
            throw error("expression chains more than \(Self.maxLinks) operators, calls, indices or fields; split it with names")
        }
    }

    mutating func nest() throws {
        nesting += 1
        if nesting > Self.maxNesting {
            nesting -= 1
            throw error("expressions and blocks nest more than \(Self.maxNesting) levels deep here")
        }
    }

    // pipe := or ('|>' or)*        x |> f(a) means f(x, a)
    mutating func pipe() throws -> Expr {
        var e = try logicalOr()
        var n = 0; defer { links -= n }
        while isSymbol("|>") {
            try link(&n)
            let op = advance()
            skipNewlines()
            let rhs = try logicalOr()
            switch rhs.kind {
            case .call(let f, let args): e = Expr(kind: .call(f, [Argument(label: nil, value: e)] + args), location: op.location)
            default: e = Expr(kind: .call(rhs, [Argument(label: nil, value: e)]), location: op.location)
            }
        }
        return e
    }

    // or := and ('or' and)* ; and := not ('and' not)*
    mutating func logicalOr() throws -> Expr {
        var e = try logicalAnd()
        var n = 0; defer { links -= n }
        while isKeyword("or") { try link(&n); let op = advance(); skipNewlines(); e = Expr(kind: .logical("or", e, try logicalAnd()), location: op.location) }
        return e
    }
    mutating func logicalAnd() throws -> Expr {
        var e = try logicalNot()
        var n = 0; defer { links -= n }
        while isKeyword("and") { try link(&n); let op = advance(); skipNewlines(); e = Expr(kind: .logical("and", e, try logicalNot()), location: op.location) }
        return e
    }
    // not := 'not' not | comparison
    mutating func logicalNot() throws -> Expr {
        if isKeyword("not") {
            let op = advance()
            try nest(); defer { nesting -= 1 }
            return Expr(kind: .unary("not", try logicalNot()), location: op.location)
        }
        return try comparison()
    }

    // comparison := range (('==' | '!=' | '<' | '<=' | '>' | '>=') range)?
    mutating func comparison() throws -> Expr {
        let e = try range()
        for op in ["==", "!=", "<=", ">=", "<", ">"] where isSymbol(op) {
            let t = advance()
            skipNewlines()
            return Expr(kind: .binary(BinaryOperator(rawValue: op)!, e, try range()), location: t.location)
        }
        return e
    }

    // range := additive (('...' | '..<') additive)?
    mutating func range() throws -> Expr {
        let e = try additive()
        if isSymbol("...") || isSymbol("..<") {
            let t = advance()
            return Expr(kind: .range(e, try additive(), inclusive: t.text == "..."), location: t.location)
        }
        return e
    }

    // additive := multiplicative (('+' | '-') multiplicative)*
    mutating func additive() throws -> Expr {
        var e = try multiplicative()
        var n = 0; defer { links -= n }
        while isSymbol("+") || isSymbol("-") {
            try link(&n)
            let t = advance(); skipNewlines()
            e = Expr(kind: .binary(BinaryOperator(rawValue: t.text)!, e, try multiplicative()), location: t.location)
        }
        return e
    }

    // multiplicative := unary (('*' | '/' | '%' | '@') unary)*
    mutating func multiplicative() throws -> Expr {
        var e = try unary()
        var n = 0; defer { links -= n }
        while isSymbol("*") || isSymbol("/") || isSymbol("%") || isSymbol("@") {
            try link(&n)
            let t = advance(); skipNewlines()
            e = Expr(kind: .binary(BinaryOperator(rawValue: t.text)!, e, try unary()), location: t.location)
        }
        return e
    }

    // unary := '-' unary | power
    mutating func unary() throws -> Expr {
        if isSymbol("-") {
            let t = advance()
            try nest(); defer { nesting -= 1 }
            return Expr(kind: .unary("-", try unary()), location: t.location)
        }
        return try power()
    }

    // power := postfix ('**' unary)?        right-associative, binds tighter than unary minus on its left
    mutating func power() throws -> Expr {
        let e = try postfix()
        if isSymbol("**") {
            var n = 0; defer { links -= n }
            try link(&n)
            let t = advance(); skipNewlines()
            return Expr(kind: .binary(.power, e, try unary()), location: t.location)
        }
        return e
    }

    // postfix := primary ('(' args ')' | '[' expr (',' expr)* ']' | '.' NAME)*
    mutating func postfix() throws -> Expr {
        var e = try primary()
        var n = 0; defer { links -= n }
        while true {
            if isSymbol("(") || isSymbol("[") || isSymbol(".") { try link(&n) }
            if isSymbol("(") {
                _ = advance()
                e = Expr(kind: .call(e, try arguments()), location: e.location)
            } else if isSymbol("[") {
                let t = advance()
                var idx: [Expr] = [try expression()]
                while isSymbol(",") { _ = advance(); idx.append(try expression()) }
                _ = try expect("]", "']' to close the index")
                e = Expr(kind: .index(e, idx), location: t.location)
            } else if isSymbol(".") {
                let t = advance()
                guard case .identifier(let name) = current.kind else { throw error("expected a field name after '.'") }
                _ = advance()
                e = Expr(kind: .field(e, name), location: t.location)
            } else {
                return e
            }
        }
    }

    // args := (arg (',' arg)*)? ')'     arg := (NAME ':')? expr
    mutating func arguments() throws -> [Argument] {
        var out: [Argument] = []
        var sawLabel = false
        while !isSymbol(")") {
            if atEnd { throw error("expected ')' to close the call") }
            var label: String? = nil
            if case .identifier(let name) = current.kind, i + 1 < tokens.count, tokens[i + 1].kind == .symbol(":") {
                label = name; _ = advance(); _ = advance()
                sawLabel = true
            } else if sawLabel {
                throw error("positional arguments must come before named ones")
            }
            out.append(Argument(label: label, value: try expression()))
            if !isSymbol(")") { _ = try expect(",", "',' or ')' in the argument list") }
        }
        _ = advance()
        return out
    }

    // primary := NUMBER | STRING | 'true' | 'false' | 'nil' | NAME | '(' expr ')' | list | record
    //          | 'fn' params block | 'if' expr block ('else' (if | block))?
    mutating func primary() throws -> Expr {
        let t = current
        switch t.kind {
        case .number(let v): _ = advance(); return Expr(kind: .number(v), location: t.location)
        case .string(let parts):
            _ = advance()
            var segments: [StringSegment] = []
            for p in parts {
                switch p {
                case .text(let s): segments.append(.text(s))
                case .code(let code, let at):
                    // An interpolation nests like a bracket, and its parser inherits how deep it is.
                    try nest(); defer { nesting -= 1 }
                    var lexer = Lexer(code, startingAt: at)
                    var sub = Parser(tokens: try lexer.tokenize())
                    sub.nesting = nesting; sub.links = links
                    let e = try sub.expression()
                    guard sub.atEnd || sub.isNewline else { throw sub.error("expected ')' to end the interpolation") }
                    segments.append(.expression(e))
                }
            }
            return Expr(kind: .string(segments), location: t.location)
        case .keyword("true"): _ = advance(); return Expr(kind: .bool(true), location: t.location)
        case .keyword("false"): _ = advance(); return Expr(kind: .bool(false), location: t.location)
        case .keyword("nil"): _ = advance(); return Expr(kind: .null, location: t.location)
        case .identifier(let n): _ = advance(); return Expr(kind: .name(Name(n)), location: t.location)
        case .keyword("fn"):
            _ = advance()
            let params = try parameters()
            return Expr(kind: .function(Function(name: "anonymous function", parameters: params, body: try block(), location: t.location)),
                        location: t.location)
        case .keyword("if"):
            return try conditional()
        case .symbol("("):
            _ = advance()
            let e = try expression()
            _ = try expect(")", "')' to close the parenthesis")
            return e
        case .symbol("["):
            _ = advance()
            var items: [Expr] = []
            while !isSymbol("]") {
                if atEnd { throw error("expected ']' to close the list") }
                items.append(try expression())
                if !isSymbol("]") { _ = try expect(",", "',' or ']' in the list") }
            }
            _ = advance()
            return Expr(kind: .list(items), location: t.location)
        case .symbol("{"):
            _ = advance()
            skipNewlines()
            var fields: [(String, Expr)] = []
            while !isSymbol("}") {
                let key: String
                switch current.kind {
                case .identifier(let n): key = n
                case .string(let parts) where parts.count == 1: if case .text(let s) = parts[0] { key = s } else { fallthrough }
                default: throw error("expected a field name in the record")
                }
                _ = advance()
                _ = try expect(":", "':' after the field name")
                skipNewlines()
                fields.append((key, try expression()))
                skipNewlines()
                if !isSymbol("}") { _ = try expect(",", "',' or '}' in the record"); skipNewlines() }
            }
            _ = advance()
            return Expr(kind: .record(fields), location: t.location)
        default:
            throw error("expected an expression")
        }
    }

    // if := 'if' expr block ('else' (if | block))?
    mutating func conditional() throws -> Expr {
        let t = advance()
        let cond = try expression()
        let then = try block()
        var otherwise: [Stmt]? = nil
        // 'else' may sit on the next line after '}'.
        let save = i
        skipNewlines()
        if isKeyword("else") {
            _ = advance()
            if isKeyword("if") {
                let nested = try conditional()
                otherwise = [Stmt(kind: .expression(nested), location: nested.location)]
            } else {
                otherwise = try block()
            }
        } else {
            i = save
        }
        return Expr(kind: .conditional(cond, then, else: otherwise), location: t.location)
    }
}
