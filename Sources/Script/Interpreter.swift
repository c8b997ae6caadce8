import Foundation
import Kernels
import Network
import Tensors

/// A tree-walking interpreter. It holds no numerical code: arithmetic on tensors goes to the
/// Tensors library, and everything else a script does goes through declared builtins.
public final class Interpreter {
    public let globals = Environment()
    public private(set) var builtins: [String: Builtin] = [:]
    /// Builtins by symbol, for the name lookups of running code.
    var builtinsBySymbol: [Builtin?] = []
    /// Where `print` and shown values go.
    public var output: (String) -> Void
    /// Shows a value richly where the front end can (a notebook draws plots as SVG); returns
    /// false to fall back to text.
    public var display: ((Value) -> Bool)?
    /// Calls deeper than this are an error, not a stack overflow.
    public var maxDepth = 400
    /// Lists longer than this are refused (a runaway `0..<1e12` and its like).
    public var maxListLength = 50_000_000
    var depth = 0
    var callStack: [(String, SourceLocation)] = []

    enum Flow { case normal, breakLoop, continueLoop, returned(Value) }

    public init(output: @escaping (String) -> Void = { print($0) }) {
        self.output = output
        for b in Builtins.all {
            builtins[b.name] = b
            let id = Symbols.id(b.name)
            if id >= builtinsBySymbol.count { builtinsBySymbol += [Builtin?](repeating: nil, count: id - builtinsBySymbol.count + 1) }
            builtinsBySymbol[id] = b
        }
    }

    /// Global functions hold the global scope that holds them: clearing it breaks those cycles,
    /// so a finished interpreter (a rendered notebook, a fuzz input) frees its data.
    deinit { globals.removeAll() }

    /// Every builtin, by category then name.
    public var declarations: [Builtin] { builtins.values.sorted { ($0.category, $0.name) < ($1.category, $1.name) } }

    // MARK: Running programs

    /// Runs a program. With `show`, the value of each expression statement not ending in `;` is
    /// shown (the prompt and notebooks); returns the last such value.
    @discardableResult
    public func run(_ source: String, show: Bool = false, startingAt base: SourceLocation = SourceLocation(line: 1, column: 1, offset: 0)) throws -> Value? {
        let program = try Parser.parse(source, startingAt: base)
        var last: Value? = nil
        for stmt in program {
            depth = 0; callStack = []
            if case .expression(let e) = stmt.kind {
                let v = try eval(e, globals)
                if show && !stmt.silent {
                    if case .null = v {} else {
                        if display?(v) != true { output(v.shown) }
                        last = v; globals.define("ans", v)
                    }
                }
                continue
            }
            switch try exec(stmt, globals) {
            case .normal: break
            case .breakLoop, .continueLoop: throw ScriptError.runtime("'break' or 'continue' outside a loop", stmt.location)
            case .returned: throw ScriptError.runtime("'return' outside a function", stmt.location)
            }
        }
        return last
    }

    // MARK: Statements

    func exec(_ s: Stmt, _ env: Environment) throws -> Flow {
        switch s.kind {
        case .expression(let e):
            _ = try eval(e, env)
        case .assign(let target, let value):
            try assign(target, try eval(value, env), env)
        case .function(let f):
            env.set(f.symbol, .closure(Closure(f, env)))
        case .forIn(let name, let sequence, let body):
            let seq = try eval(sequence, env)
            func iteration(_ v: Value) throws -> Flow? {
                env.set(name.id, v)
                let flow: Flow
                do { flow = try execBlock(body, env).0 } catch ControlSignal.breakLoop { return .normal } catch ControlSignal.continueLoop { return nil }
                switch flow {
                case .breakLoop: return .normal
                case .returned: return flow
                default: return nil
                }
            }
            switch seq {
            case .range(let lo, let hi):
                var i = lo
                while i < hi {
                    if let f = try iteration(.number(Double(i))) { return f }
                    i += 1
                }
            case .list(let items):
                for v in items { if let f = try iteration(v) { return f } }
            case .record(let r):
                for k in r.keys { if let f = try iteration(.string(k)) { return f } }
            case .string(let str):
                for ch in str { if let f = try iteration(.string(String(ch))) { return f } }
            case .tensor(let t):
                guard t.rank >= 1 else { throw ScriptError.runtime("cannot iterate over a rank-0 tensor", sequence.location) }
                for i in 0..<t.shape[0] { if let f = try iteration(Convert.value(try t.slice(i))) { return f } }
            default:
                throw ScriptError.runtime("expected a List, Range, Record, String or Tensor to iterate over, got \(seq.typeName)", sequence.location)
            }
        case .whileLoop(let cond, let body):
            while try eval(cond, env).isTruthy {
                let (flow, _) = try execBlock(body, env)
                switch flow {
                case .breakLoop: return .normal
                case .returned: return flow
                default: break
                }
            }
        case .breakLoop: return .breakLoop
        case .continueLoop: return .continueLoop
        case .returnValue(let e): return .returned(try e.map { try eval($0, env) } ?? .null)
        }
        return .normal
    }

    /// Runs statements; the value is that of the last one when it is an expression.
    func execBlock(_ body: [Stmt], _ env: Environment) throws -> (Flow, Value) {
        var last: Value = .null
        for s in body {
            if Interrupt.isRequested { throw ScriptError.runtime("interrupted", s.location) }
            if case .expression(let e) = s.kind {
                // An `if` statement runs its branch here so break/continue/return pass as flow.
                if case .conditional(let cond, let then, let otherwise) = e.kind {
                    let branch = try eval(cond, env).isTruthy ? then : otherwise
                    guard let branch else { last = .null; continue }
                    let (f, v) = try execBlock(branch, env)
                    if case .normal = f { last = v; continue }
                    return (f, v)
                }
                last = try eval(e, env)
                continue
            }
            last = .null
            let f = try exec(s, env)
            if case .normal = f { continue }
            return (f, last)
        }
        return (.normal, last)
    }

    func assign(_ target: Expr, _ value: Value, _ env: Environment) throws {
        switch target.kind {
        case .name(let n):
            env.set(n.id, value)
        case .field(let base, let name):
            var container = try eval(base, env)
            guard case .record(var r) = container else {
                throw ScriptError.runtime("cannot set field '\(name)' on a \(container.typeName); only records have settable fields", target.location)
            }
            r[name] = value
            container = .record(r)
            try assign(base, container, env)
        case .index(let base, let indices):
            let container = try eval(base, env)
            let idx = try indices.map { try eval($0, env) }
            try assign(base, try Operations.setIndex(container, idx, value, at: target.location), env)
        default:
            throw ScriptError.runtime("cannot assign to this expression", target.location)
        }
    }

    // MARK: Expressions

    func eval(_ e: Expr, _ env: Environment) throws -> Value {
        switch e.kind {
        case .number(let x): return .number(x)
        case .bool(let b): return .bool(b)
        case .null: return .null
        case .string(let segments):
            var s = ""
            for seg in segments {
                switch seg {
                case .text(let t): s += t
                case .expression(let x): s += try eval(x, env).printed
                }
            }
            return .string(s)
        case .name(let n):
            if let v = env.lookup(n.id) { return v }
            if n.id < builtinsBySymbol.count, let b = builtinsBySymbol[n.id] { return .builtin(b) }
            throw unknownName(n.text, env, at: e.location)
        case .list(let items):
            return .list(try items.map { try eval($0, env) })
        case .record(let fields):
            var r = Record()
            for (k, v) in fields { r[k] = try eval(v, env) }
            return .record(r)
        case .range(let lo, let hi, let inclusive):
            let a = try integer(eval(lo, env), "range start", lo.location)
            let b = try integer(eval(hi, env), "range end", hi.location)
            return .range(a, max(a, inclusive ? b + 1 : b))
        case .unary(let op, let x):
            let v = try eval(x, env)
            if op == "not" { return .bool(!v.isTruthy) }
            return try Operations.negate(v, at: e.location)
        case .binary(let op, let l, let r):
            return try Operations.binary(op, try eval(l, env), try eval(r, env), at: e.location)
        case .logical(let op, let l, let r):
            let a = try eval(l, env)
            if op == "and" { return a.isTruthy ? try eval(r, env) : a }
            return a.isTruthy ? a : try eval(r, env)
        case .call(let callee, let args):
            return try call(callee, args, env, at: e.location)
        case .index(let base, let indices):
            return try Operations.index(try eval(base, env), try indices.map { try eval($0, env) }, at: e.location)
        case .field(let base, let name):
            let v = try eval(base, env)
            if let f = try Fields.get(v, name, at: e.location) { return f }
            throw Fields.missing(v, name, at: e.location)
        case .function(let f):
            return .closure(Closure(f, env))
        case .conditional(let cond, let then, let otherwise):
            if try eval(cond, env).isTruthy {
                let (flow, v) = try execBlock(then, env)
                return try propagate(flow, v)
            } else if let otherwise {
                let (flow, v) = try execBlock(otherwise, env)
                return try propagate(flow, v)
            }
            return .null
        }
    }

    /// Control flow inside an `if` used as a statement travels through `ControlSignal`.
    func propagate(_ flow: Flow, _ v: Value) throws -> Value {
        switch flow {
        case .normal: return v
        case .breakLoop: throw ControlSignal.breakLoop
        case .continueLoop: throw ControlSignal.continueLoop
        case .returned(let r): throw ControlSignal.returned(r)
        }
    }

    func integer(_ v: Value, _ what: String, _ at: SourceLocation) throws -> Int {
        guard case .number(let x) = v, x == x.rounded(), abs(x) < 1e15 else {
            throw ScriptError.runtime("expected an integer for the \(what), got \(v.typeName == "Number" ? v.shown : v.typeName)", at)
        }
        return Int(x)
    }

    func unknownName(_ n: String, _ env: Environment, at: SourceLocation) -> ScriptError {
        let candidates = env.allNames + Array(builtins.keys)
        let near = candidates.map { ($0, editDistance($0, n)) }.filter { $0.1 <= max(1, n.count / 3) }.min { $0.1 < $1.1 }?.0
        return ScriptError.runtime("unknown name '\(n)'" + (near.map { "; did you mean '\($0)'?" } ?? ""), at)
    }

    // MARK: Calls

    func call(_ calleeExpr: Expr, _ args: [Argument], _ env: Environment, at: SourceLocation) throws -> Value {
        var positional: [Value] = []
        var callee: Value
        // x.f(a) means f(x, a) when x has no field f.
        if case .field(let base, let name) = calleeExpr.kind {
            let receiver = try eval(base, env)
            if let f = try Fields.get(receiver, name, at: calleeExpr.location) {
                callee = f
            } else if let f = env.lookup(name) ?? builtins[name].map(Value.builtin) {
                callee = f
                positional.append(receiver)
            } else {
                throw Fields.missing(receiver, name, at: calleeExpr.location)
            }
        } else {
            callee = try eval(calleeExpr, env)
        }
        var named: [(String, Value)] = []
        for a in args {
            let v = try eval(a.value, env)
            if let label = a.label { named.append((label, v)) } else { positional.append(v) }
        }
        return try apply(callee, positional, named, at: at)
    }

    /// Calls a function value (builtins call user functions back through here).
    public func apply(_ callee: Value, _ positional: [Value], _ named: [(String, Value)] = [], at: SourceLocation?) throws -> Value {
        switch callee {
        case .builtin(let b):
            let bound = try b.bind(positional, named, at: at)
            do {
                return try b.body(bound, self)
            } catch let e as ScriptError {
                throw e
            } catch let e as Interrupted {
                throw ScriptError.runtime("\(e)", at)
            } catch {
                let text = "\(error)"
                throw ScriptError.runtime(text.hasPrefix(b.name) ? text : "\(b.name): \(text)", at)
            }
        case .closure(let c):
            return try callClosure(c, positional, named, at: at ?? c.function.location)
        default:
            throw ScriptError.runtime("expected a Function to call, got \(callee.typeName)", at)
        }
    }

    func callClosure(_ c: Closure, _ positional: [Value], _ named: [(String, Value)], at: SourceLocation) throws -> Value {
        let f = c.function
        guard depth < maxDepth else {
            throw ScriptError.runtime("too many nested calls (more than \(maxDepth)): runaway recursion in '\(f.name)'?", at)
        }
        guard positional.count <= f.parameters.count else {
            throw ScriptError.runtime("'\(f.name)' takes \(f.parameters.count) argument\(f.parameters.count == 1 ? "" : "s"), got \(positional.count)", at)
        }
        let scope = Environment(parent: c.scope)
        for (p, v) in zip(f.parameters, positional) { scope.set(p.symbol, v) }
        for (label, v) in named {
            guard let p = f.parameters.first(where: { $0.name == label }) else {
                throw ScriptError.runtime("'\(f.name)' has no parameter '\(label)'", at)
            }
            if scope.get(p.symbol) != nil { throw ScriptError.runtime("argument '\(label)' of '\(f.name)' given twice", at) }
            scope.set(p.symbol, v)
        }
        for p in f.parameters where scope.get(p.symbol) == nil {
            guard let d = p.defaultValue else { throw ScriptError.runtime("missing argument '\(p.name)' in call to '\(f.name)'", at) }
            scope.set(p.symbol, try eval(d, scope))
        }
        depth += 1
        callStack.append((f.name, at))
        defer { depth -= 1; callStack.removeLast() }
        do {
            let (flow, v) = try execBlock(f.body, scope)
            if case .returned(let r) = flow { return r }
            return v
        } catch ControlSignal.returned(let r) {
            return r
        } catch var e as ScriptError {
            if e.kind == .runtime && e.calls.count < 20 { e.calls.append((f.name, at)) }
            throw e
        }
    }
}

/// Break, continue and return escaping from an `if` expression to the enclosing loop or function.
enum ControlSignal: Error { case breakLoop, continueLoop, returned(Value) }
