import Kernels

/// How a statement ended.
enum Flow { case normal, breakLoop, continueLoop, returned(Value) }

/// Break, continue and return escaping from an `if` used as a value to the enclosing loop or function.
enum ControlSignal: Error { case breakLoop, continueLoop, returned(Value) }

/// Compiled code: the syntax tree turned once into nodes that run themselves. Names are resolved
/// when compiling — a function's locals to fixed slots of its frame, top-level names to the
/// globals' symbol-indexed slots — so running code neither hashes names nor matches on the
/// syntax tree's enums (whose payload copies dominated the old tree walker's time).
class Node {
    let location: SourceLocation
    init(_ location: SourceLocation) { self.location = location }

    /// The node's value (an expression's; statements run and give nil).
    func eval(_ env: Environment, _ r: Interpreter) throws -> Value { .null }

    /// Runs the node as a statement.
    func exec(_ env: Environment, _ r: Interpreter) throws -> Flow {
        _ = try eval(env, r)
        return .normal
    }

    /// Runs the node as the last statement of a block: how it ended and the block's value.
    func run(_ env: Environment, _ r: Interpreter) throws -> (Flow, Value) { (.normal, try eval(env, r)) }
}

/// A statement: runs for its effect and has no value.
class Statement: Node {
    override func eval(_ env: Environment, _ r: Interpreter) throws -> Value {
        try Flow.propagate(try exec(env, r), .null)
    }
    override func run(_ env: Environment, _ r: Interpreter) throws -> (Flow, Value) { (try exec(env, r), .null) }
}

extension Flow {
    /// Control flow inside an `if` used as a value travels on as a `ControlSignal`.
    static func propagate(_ flow: Flow, _ v: Value) throws -> Value {
        switch flow {
        case .normal: return v
        case .breakLoop: throw ControlSignal.breakLoop
        case .continueLoop: throw ControlSignal.continueLoop
        case .returned(let r): throw ControlSignal.returned(r)
        }
    }
}

/// Statements in order; a block's value is that of its last statement when it is an expression.
final class Block {
    let nodes: [Node]
    init(_ nodes: [Node]) { self.nodes = nodes }

    func exec(_ env: Environment, _ r: Interpreter) throws -> Flow {
        for n in nodes {
            let f = try n.exec(env, r)
            if case .normal = f { continue }
            return f
        }
        return .normal
    }

    func value(_ env: Environment, _ r: Interpreter) throws -> (Flow, Value) {
        let n = nodes.count
        if n == 0 { return (.normal, .null) }
        var i = 0
        while i < n - 1 {
            let f = try nodes[i].exec(env, r)
            if case .normal = f { i += 1; continue }
            return (f, .null)
        }
        return try nodes[n - 1].run(env, r)
    }

    /// One loop iteration: nil to go on, otherwise what the loop returns.
    @inline(__always)
    func iterate(_ env: Environment, _ r: Interpreter, at: SourceLocation) throws -> Flow? {
        if Interrupt.isRequested { throw ScriptError.runtime("interrupted", at) }
        let flow: Flow
        do { flow = try exec(env, r) } catch ControlSignal.breakLoop { return .normal } catch ControlSignal.continueLoop { return nil }
        switch flow {
        case .normal, .continueLoop: return nil
        case .breakLoop: return .normal
        case .returned: return flow
        }
    }
}

/// A function compiled: its frame layout (parameters first, then every other name it assigns),
/// parameter defaults and body.
final class CompiledFunction {
    let function: Function
    /// Symbol of each frame slot.
    let symbols: [Int]
    let defaults: [Node?]
    let body: Block
    let parameterCount: Int
    /// Frames of finished calls that nothing captured, reused by the next calls (allocating and
    /// freeing a frame per call was most of a call's cost). The interpreter is single-threaded.
    var spare: [Environment] = []

    init(_ function: Function, symbols: [Int], defaults: [Node?], body: Block) {
        self.function = function; self.symbols = symbols; self.defaults = defaults; self.body = body
        parameterCount = function.parameters.count
    }

    /// An empty frame for a call of this function in `scope`.
    @inline(__always)
    func frame(in scope: Environment) -> Environment {
        if let f = spare.popLast() { f.parent = scope; return f }
        return Environment(parent: scope, symbols: symbols)
    }

    /// Takes back a finished call's frame unless a closure made in the call still holds it.
    @inline(__always)
    func recycle(_ frame: inout Environment) {
        guard isKnownUniquelyReferenced(&frame), spare.count < 64, frame.slots.count == symbols.count else { return }
        for i in frame.slots.indices { frame.slots[i] = nil }
        frame.parent = nil
        spare.append(frame)
    }
}

// MARK: Names

/// Where a name lives, decided at compile time.
enum Slot {
    /// A top-level variable: the globals' slot of its symbol.
    case global(Int)
    /// One of the running function's frame slots.
    case local(Int)
    /// A variable of an enclosing function (or the top level seen from inside a function).
    case outer
}

final class NameNode: Node {
    let name: Name
    let slot: Slot
    init(_ name: Name, _ slot: Slot, _ at: SourceLocation) { self.name = name; self.slot = slot; super.init(at) }

    override func eval(_ env: Environment, _ r: Interpreter) throws -> Value {
        switch slot {
        case .global(let id):
            if id < env.slots.count, let v = env.slots[id] { return v }
        case .local(let i):
            if let v = env.slots[i] { return v }
            // Read before this function assigns it: the enclosing scope's variable.
            if let v = env.parent?.lookup(name.id) { return v }
        case .outer:
            if let v = env.parent?.lookup(name.id) { return v }
        }
        if name.id < r.builtinsBySymbol.count, let b = r.builtinsBySymbol[name.id] { return .builtin(b) }
        throw r.unknownName(name.text, env, at: location)
    }
}

/// The left of `=`: a name, or a field or index of something assignable.
indirect enum Target {
    case name(Slot, Int)
    case field(Node, Target, String)
    case index(Node, Target, [Node])
    case invalid(SourceLocation)

    func assign(_ value: Value, _ env: Environment, _ r: Interpreter, at: SourceLocation) throws {
        switch self {
        case .name(let slot, let id):
            switch slot {
            case .global: env.setGlobal(id, value)
            case .local(let i): env.slots[i] = value
            case .outer: env.set(id, value)
            }
        case .field(let base, let target, let name):
            let container = try base.eval(env, r)
            guard case .record(var record) = container else {
                throw ScriptError.runtime("cannot set field '\(name)' on a \(container.typeName); only records have settable fields", at)
            }
            record[name] = value
            try target.assign(.record(record), env, r, at: base.location)
        case .index(let base, let target, let indices):
            let container = try base.eval(env, r)
            var idx: [Value] = []
            idx.reserveCapacity(indices.count)
            for i in indices { idx.append(try i.eval(env, r)) }
            try target.assign(try Operations.setIndex(container, idx, value, at: at), env, r, at: base.location)
        case .invalid(let where_):
            throw ScriptError.runtime("cannot assign to this expression", where_)
        }
    }
}

// MARK: Expressions

final class Constant: Node {
    let value: Value
    init(_ value: Value, _ at: SourceLocation) { self.value = value; super.init(at) }
    override func eval(_ env: Environment, _ r: Interpreter) throws -> Value { value }
}

final class Interpolation: Node {
    /// Text pieces and expressions, in order.
    let parts: [Either]
    enum Either { case text(String), code(Node) }
    init(_ parts: [Either], _ at: SourceLocation) { self.parts = parts; super.init(at) }
    override func eval(_ env: Environment, _ r: Interpreter) throws -> Value {
        var s = ""
        for p in parts {
            switch p {
            case .text(let t): s += t
            case .code(let c): s += try c.eval(env, r).printed
            }
        }
        return .string(s)
    }
}

final class ListNode: Node {
    let items: [Node]
    init(_ items: [Node], _ at: SourceLocation) { self.items = items; super.init(at) }
    override func eval(_ env: Environment, _ r: Interpreter) throws -> Value {
        var out: [Value] = []
        out.reserveCapacity(items.count)
        for i in items { out.append(try i.eval(env, r)) }
        return .list(out)
    }
}

final class RecordNode: Node {
    let fields: [(String, Node)]
    init(_ fields: [(String, Node)], _ at: SourceLocation) { self.fields = fields; super.init(at) }
    override func eval(_ env: Environment, _ r: Interpreter) throws -> Value {
        var record = Record()
        for (k, v) in fields { record[k] = try v.eval(env, r) }
        return .record(record)
    }
}

final class RangeNode: Node {
    let lo: Node, hi: Node, inclusive: Bool
    init(_ lo: Node, _ hi: Node, inclusive: Bool, _ at: SourceLocation) { self.lo = lo; self.hi = hi; self.inclusive = inclusive; super.init(at) }
    override func eval(_ env: Environment, _ r: Interpreter) throws -> Value {
        let a = try Interpreter.integer(lo.eval(env, r), "range start", lo.location)
        let b = try Interpreter.integer(hi.eval(env, r), "range end", hi.location)
        return .range(a, max(a, inclusive ? b + 1 : b))
    }
}

final class Not: Node {
    let operand: Node
    init(_ operand: Node, _ at: SourceLocation) { self.operand = operand; super.init(at) }
    override func eval(_ env: Environment, _ r: Interpreter) throws -> Value { .bool(!(try operand.eval(env, r).isTruthy)) }
}

final class Negate: Node {
    let operand: Node
    init(_ operand: Node, _ at: SourceLocation) { self.operand = operand; super.init(at) }
    override func eval(_ env: Environment, _ r: Interpreter) throws -> Value {
        let v = try operand.eval(env, r)
        if case .number(let x) = v { return .number(-x) }
        return try Operations.negate(v, at: location)
    }
}

final class BinaryNode: Node {
    let op: BinaryOperator, left: Node, right: Node
    init(_ op: BinaryOperator, _ left: Node, _ right: Node, _ at: SourceLocation) { self.op = op; self.left = left; self.right = right; super.init(at) }
    override func eval(_ env: Environment, _ r: Interpreter) throws -> Value {
        let a = try left.eval(env, r), b = try right.eval(env, r)
        if case .number(let x) = a, case .number(let y) = b { return try Operations.numbers(op, x, y, at: location) }
        return try Operations.binary(op, a, b, at: location)
    }
}

final class Logical: Node {
    let isAnd: Bool, left: Node, right: Node
    init(isAnd: Bool, _ left: Node, _ right: Node, _ at: SourceLocation) { self.isAnd = isAnd; self.left = left; self.right = right; super.init(at) }
    override func eval(_ env: Environment, _ r: Interpreter) throws -> Value {
        let a = try left.eval(env, r)
        if isAnd { return a.isTruthy ? try right.eval(env, r) : a }
        return a.isTruthy ? a : try right.eval(env, r)
    }
}

final class IndexNode: Node {
    let base: Node, indices: [Node]
    init(_ base: Node, _ indices: [Node], _ at: SourceLocation) { self.base = base; self.indices = indices; super.init(at) }
    override func eval(_ env: Environment, _ r: Interpreter) throws -> Value {
        let b = try base.eval(env, r)
        var idx: [Value] = []
        idx.reserveCapacity(indices.count)
        for i in indices { idx.append(try i.eval(env, r)) }
        return try Operations.index(b, idx, at: location)
    }
}

final class FieldNode: Node {
    let base: Node, name: String
    init(_ base: Node, _ name: String, _ at: SourceLocation) { self.base = base; self.name = name; super.init(at) }
    override func eval(_ env: Environment, _ r: Interpreter) throws -> Value {
        let v = try base.eval(env, r)
        if let f = try Fields.get(v, name, at: location) { return f }
        throw Fields.missing(v, name, at: location)
    }
}

final class FunctionNode: Node {
    let code: CompiledFunction
    init(_ code: CompiledFunction, _ at: SourceLocation) { self.code = code; super.init(at) }
    override func eval(_ env: Environment, _ r: Interpreter) throws -> Value { .closure(Closure(code, env)) }
}

final class Conditional: Node {
    let condition: Node, then: Block, otherwise: Block?
    init(_ condition: Node, _ then: Block, _ otherwise: Block?, _ at: SourceLocation) {
        self.condition = condition; self.then = then; self.otherwise = otherwise; super.init(at)
    }
    @inline(__always)
    func branch(_ env: Environment, _ r: Interpreter) throws -> Block? {
        try condition.eval(env, r).isTruthy ? then : otherwise
    }
    override func eval(_ env: Environment, _ r: Interpreter) throws -> Value {
        guard let b = try branch(env, r) else { return .null }
        let (flow, v) = try b.value(env, r)
        return try Flow.propagate(flow, v)
    }
    override func exec(_ env: Environment, _ r: Interpreter) throws -> Flow {
        try branch(env, r)?.exec(env, r) ?? .normal
    }
    override func run(_ env: Environment, _ r: Interpreter) throws -> (Flow, Value) {
        try branch(env, r)?.value(env, r) ?? (.normal, .null)
    }
}

/// A call `f(a, b: c)`, or `x.f(a)`, which means `f(x, a)` when x has no field f.
final class Call: Node {
    enum Callee {
        case value(Node)
        /// `x.f(...)`: the receiver, the name, its symbol, and where `x.f` was written.
        case method(Node, String, Int, SourceLocation)
    }
    let callee: Callee
    let arguments: [Node]
    let labels: [String?]
    let allPositional: Bool

    init(_ callee: Callee, _ arguments: [Node], _ labels: [String?], _ at: SourceLocation) {
        self.callee = callee; self.arguments = arguments; self.labels = labels
        allPositional = labels.allSatisfy { $0 == nil }
        super.init(at)
    }

    override func eval(_ env: Environment, _ r: Interpreter) throws -> Value {
        var receiver: Value? = nil
        let f: Value
        switch callee {
        case .value(let node):
            f = try node.eval(env, r)
        case let .method(base, name, id, at):
            let v = try base.eval(env, r)
            if let field = try Fields.get(v, name, at: at) {
                f = field
            } else if let g = env.lookup(id) ?? r.builtins[name].map(Value.builtin) {
                f = g
                receiver = v
            } else {
                throw Fields.missing(v, name, at: at)
            }
        }
        // A user function called with positional arguments binds them straight into its frame.
        if receiver == nil, allPositional, case .closure(let c) = f, arguments.count <= c.code.parameterCount {
            let code = c.code
            var frame = code.frame(in: c.scope)
            for i in arguments.indices { frame.slots[i] = try arguments[i].eval(env, r) }
            let v = try r.enter(c, frame, given: arguments.count, named: [], at: location)
            code.recycle(&frame)
            return v
        }
        var positional: [Value] = []
        positional.reserveCapacity(arguments.count + 1)
        if let receiver { positional.append(receiver) }
        var named: [(String, Value)] = []
        for (a, label) in zip(arguments, labels) {
            let v = try a.eval(env, r)
            if let label { named.append((label, v)) } else { positional.append(v) }
        }
        return try r.apply(f, positional, named, at: location)
    }
}

// MARK: Statements

final class Assign: Statement {
    let target: Target, value: Node
    init(_ target: Target, _ value: Node, _ at: SourceLocation) { self.target = target; self.value = value; super.init(at) }
    override func exec(_ env: Environment, _ r: Interpreter) throws -> Flow {
        try target.assign(try value.eval(env, r), env, r, at: location)
        return .normal
    }
}

final class ForIn: Statement {
    let variable: Target, sequence: Node, body: Block
    init(_ variable: Target, _ sequence: Node, _ body: Block, _ at: SourceLocation) {
        self.variable = variable; self.sequence = sequence; self.body = body; super.init(at)
    }
    override func exec(_ env: Environment, _ r: Interpreter) throws -> Flow {
        let seq = try sequence.eval(env, r)
        let at = location
        switch seq {
        case .range(let lo, let hi):
            var i = lo
            while i < hi {
                try variable.assign(.number(Double(i)), env, r, at: at)
                if let f = try body.iterate(env, r, at: at) { return f }
                i += 1
            }
        case .list(let items):
            for v in items {
                try variable.assign(v, env, r, at: at)
                if let f = try body.iterate(env, r, at: at) { return f }
            }
        case .record(let record):
            for k in record.keys {
                try variable.assign(.string(k), env, r, at: at)
                if let f = try body.iterate(env, r, at: at) { return f }
            }
        case .string(let str):
            for ch in str {
                try variable.assign(.string(String(ch)), env, r, at: at)
                if let f = try body.iterate(env, r, at: at) { return f }
            }
        case .tensor(let t):
            guard t.rank >= 1 else { throw ScriptError.runtime("cannot iterate over a rank-0 tensor", sequence.location) }
            for i in 0..<t.shape[0] {
                try variable.assign(Convert.value(try t.slice(i)), env, r, at: at)
                if let f = try body.iterate(env, r, at: at) { return f }
            }
        default:
            throw ScriptError.runtime("expected a List, Range, Record, String or Tensor to iterate over, got \(seq.typeName)", sequence.location)
        }
        return .normal
    }
}

final class While: Statement {
    let condition: Node, body: Block
    init(_ condition: Node, _ body: Block, _ at: SourceLocation) { self.condition = condition; self.body = body; super.init(at) }
    override func exec(_ env: Environment, _ r: Interpreter) throws -> Flow {
        while try condition.eval(env, r).isTruthy {
            if let f = try body.iterate(env, r, at: location) { return f }
        }
        return .normal
    }
}

final class Jump: Statement {
    let flow: Flow
    init(_ flow: Flow, _ at: SourceLocation) { self.flow = flow; super.init(at) }
    override func exec(_ env: Environment, _ r: Interpreter) throws -> Flow { flow }
}

final class Return: Statement {
    let value: Node?
    init(_ value: Node?, _ at: SourceLocation) { self.value = value; super.init(at) }
    override func exec(_ env: Environment, _ r: Interpreter) throws -> Flow { .returned(try value?.eval(env, r) ?? .null) }
}

// MARK: Compiling

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
