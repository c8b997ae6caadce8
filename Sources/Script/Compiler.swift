import Kernels

/// Turns the syntax tree into nodes, resolving each name to where it lives.
struct Compiler {
    /// The frame of the function being compiled (symbol → slot), or nil at the top level.
    var frame: [Int: Int]?

    static func program(_ stmts: [Stmt]) -> [Node] {
        let c = Compiler(frame: nil)
        return stmts.map { c.statement($0) }
    }

    static func function(_ f: Function) -> CompiledFunction {
        var symbols = f.parameters.map(\.symbol)
        var seen = Set(symbols)
        func add(_ id: Int) { if seen.insert(id).inserted { symbols.append(id) } }
        func target(_ e: Expr) {
            switch e.kind {
            case .name(let n): add(n.id)
            case .field(let base, _), .index(let base, _): target(base)
            default: break
            }
        }
        func scan(_ body: [Stmt]) {
            for s in body {
                switch s.kind {
                case .assign(let t, let v): target(t); expression(v)
                case .function(let g): add(g.symbol)
                case .forIn(let n, let seq, let b): add(n.id); expression(seq); scan(b)
                case .whileLoop(let c, let b): expression(c); scan(b)
                case .expression(let e): expression(e)
                case .returnValue(let e): if let e { expression(e) }
                case .breakLoop, .continueLoop: break
                }
            }
        }
        // Only `if` blocks (expressions holding statements) can assign inside an expression.
        func expression(_ e: Expr) {
            if case .conditional(_, let then, let otherwise) = e.kind { scan(then); scan(otherwise ?? []) }
        }
        scan(f.body)
        let c = Compiler(frame: Dictionary(uniqueKeysWithValues: symbols.enumerated().map { ($1, $0) }))
        return CompiledFunction(f, symbols: symbols, defaults: f.parameters.map { $0.defaultValue.map(c.expression) },
                                body: c.block(f.body))
    }

    func slot(_ id: Int) -> Slot {
        guard let frame else { return .global(id) }
        return frame[id].map(Slot.local) ?? .outer
    }

    func block(_ stmts: [Stmt]) -> Block { Block(stmts.map(statement)) }

    func target(_ e: Expr) -> Target {
        switch e.kind {
        case .name(let n): .name(slot(n.id), n.id)
        case .field(let base, let name): .field(expression(base), target(base), name)
        case .index(let base, let indices): .index(expression(base), target(base), indices.map(expression))
        default: .invalid(e.location)
        }
    }

    func statement(_ s: Stmt) -> Node {
        let at = s.location
        switch s.kind {
        case .expression(let e): return expression(e)
        case .assign(let t, let v): return Assign(target(t), expression(v), at)
        case .function(let f):
            return Assign(.name(slot(f.symbol), f.symbol), FunctionNode(Compiler.function(f), at), at)
        case .forIn(let n, let seq, let body):
            return ForIn(.name(slot(n.id), n.id), expression(seq), block(body), at)
        case .whileLoop(let c, let body): return While(expression(c), block(body), at)
        case .breakLoop: return Jump(.breakLoop, at)
        case .continueLoop: return Jump(.continueLoop, at)
        case .returnValue(let e): return Return(e.map(expression), at)
        }
    }

    func expression(_ e: Expr) -> Node {
        let at = e.location
        switch e.kind {
        case .number(let x): return Constant(.number(x), at)
        case .bool(let b): return Constant(.bool(b), at)
        case .null: return Constant(.null, at)
        case .string(let segments):
            let parts: [Interpolation.Either] = segments.map {
                switch $0 {
                case .text(let t): .text(t)
                case .expression(let x): .code(expression(x))
                }
            }
            if parts.isEmpty { return Constant(.string(""), at) }
            if parts.count == 1, case .text(let t) = parts[0] { return Constant(.string(t), at) }
            return Interpolation(parts, at)
        case .name(let n): return NameNode(n, slot(n.id), at)
        case .list(let items): return ListNode(items.map(expression), at)
        case .record(let fields): return RecordNode(fields.map { ($0.0, expression($0.1)) }, at)
        case .range(let lo, let hi, let inclusive): return RangeNode(expression(lo), expression(hi), inclusive: inclusive, at)
        case .unary(let op, let x): return op == "not" ? Not(expression(x), at) : Negate(expression(x), at)
        case .binary(let op, let l, let r): return BinaryNode(op, expression(l), expression(r), at)
        case .logical(let op, let l, let r): return Logical(isAnd: op == "and", expression(l), expression(r), at)
        case .call(let callee, let args):
            let target: Call.Callee
            if case .field(let base, let name) = callee.kind {
                target = .method(expression(base), name, Symbols.id(name), callee.location)
            } else {
                target = .value(expression(callee))
            }
            return Call(target,
                        args.map { expression($0.value) }, args.map(\.label), at)
        case .index(let base, let indices): return IndexNode(expression(base), indices.map(expression), at)
        case .field(let base, let name): return FieldNode(expression(base), name, at)
        case .function(let f): return FunctionNode(Compiler.function(f), at)
        case .conditional(let c, let then, let otherwise):
            return Conditional(expression(c), block(then), otherwise.map(block), at)
        }
    }
}
