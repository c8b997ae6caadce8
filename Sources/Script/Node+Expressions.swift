import Kernels

// Expression nodes: each evaluates itself to a value.

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
