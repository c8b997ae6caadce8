import Kernels
import Runtime

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
