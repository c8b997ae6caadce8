import Foundation
import Kernels
import Network
import Tensors
import Runtime

/// The interpreter: compiles each program to nodes (`Compiler`) and runs them. It holds no numerical code: arithmetic on tensors goes to the
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
    /// Where progress lines of long work go instead of the terminal (a notebook keeps each
    /// finished line — one per epoch, or the final summary — in the cell's output).
    public var progressSink: ((_ line: String, _ done: Bool) -> Void)?
    /// Calls deeper than this are an error, not a stack overflow.
    public var maxDepth = 400
    /// Lists longer than this are refused (a runaway `0..<1e12` and its like).
    public var maxListLength = 50_000_000
    var depth = 0

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
    /// The stdlib's functions with their documentation, in file order (filled by `loadStdlib`).
    public internal(set) var stdlibFunctions: [StdlibFunction] = []

    // MARK: Running programs

    /// Runs a program. With `show`, the value of each expression statement not ending in `;` is
    /// shown (the prompt and notebooks); returns the last such value.
    @discardableResult
    public func run(_ source: String, show: Bool = false, startingAt base: SourceLocation = SourceLocation(line: 1, column: 1, offset: 0)) throws -> Value? {
        let program = try Parser.parse(source, startingAt: base)
        let code = Compiler.program(program)
        var last: Value? = nil
        for (stmt, node) in zip(program, code) {
            depth = 0
            if case .expression = stmt.kind {
                let v: Value
                do { v = try node.eval(globals, self) } catch let signal as ControlSignal { throw misplaced(signal, stmt.location) }
                if show && !stmt.silent {
                    if case .null = v {} else {
                        if display?(v) != true { output(v.shown) }
                        last = v; globals.define("ans", v)
                    }
                }
                continue
            }
            switch try node.exec(globals, self) {
            case .normal: break
            case .breakLoop: throw misplaced(.breakLoop, stmt.location)
            case .continueLoop: throw misplaced(.continueLoop, stmt.location)
            case .returned(let v): throw misplaced(.returned(v), stmt.location)
            }
        }
        return last
    }

    func misplaced(_ signal: ControlSignal, _ at: SourceLocation) -> ScriptError {
        if case .returned = signal { return ScriptError.runtime("'return' outside a function", at) }
        return ScriptError.runtime("'break' or 'continue' outside a loop", at)
    }

    static func integer(_ v: Value, _ what: String, _ at: SourceLocation) throws -> Int {
        guard case .number(let x) = v, let i = Convert.whole(x) else {
            throw ScriptError.runtime("expected an integer for the \(what), got \(v.typeName == "Number" ? v.shown : v.typeName)", at)
        }
        return i
    }

    func unknownName(_ n: String, _ env: Environment, at: SourceLocation) -> ScriptError {
        let candidates = env.allNames + Array(builtins.keys)
        let near = candidates.map { ($0, editDistance($0, n)) }.filter { $0.1 <= max(1, n.count / 3) }.min { $0.1 < $1.1 }?.0
        return ScriptError.runtime("unknown name '\(n)'" + (near.map { "; did you mean '\($0)'?" } ?? ""), at)
    }

    // MARK: Calls

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
            let f = c.function, where_ = at ?? f.location
            guard positional.count <= f.parameters.count else {
                throw ScriptError.runtime("'\(f.name)' takes \(f.parameters.count) argument\(f.parameters.count == 1 ? "" : "s"), got \(positional.count)", where_)
            }
            var frame = c.code.frame(in: c.scope)
            for (i, v) in positional.enumerated() { frame.slots[i] = v }
            let v = try enter(c, frame, given: positional.count, named: named, at: where_)
            c.code.recycle(&frame)
            return v
        default:
            throw ScriptError.runtime("expected a Function to call, got \(callee.typeName)", at)
        }
    }

    /// Runs a user function in its frame, whose first `given` parameter slots hold the positional
    /// arguments: binds the named ones, fills defaults, and runs the body.
    func enter(_ c: Closure, _ frame: Environment, given: Int, named: [(String, Value)], at: SourceLocation) throws -> Value {
        let code = c.code, f = code.function
        guard depth < maxDepth else {
            throw ScriptError.runtime("too many nested calls (more than \(maxDepth)): runaway recursion in '\(f.name)'?", at)
        }
        if Interrupt.isRequested { throw ScriptError.runtime("interrupted", at) }
        for (label, v) in named {
            guard let p = f.parameters.firstIndex(where: { $0.name == label }) else {
                throw ScriptError.runtime("'\(f.name)' has no parameter '\(label)'", at)
            }
            if frame.slots[p] != nil { throw ScriptError.runtime("argument '\(label)' of '\(f.name)' given twice", at) }
            frame.slots[p] = v
        }
        // The call counts from here: a default argument may call the function again.
        depth += 1
        defer { depth -= 1 }
        if given < code.parameterCount {
            for p in given..<code.parameterCount where frame.slots[p] == nil {
                guard let d = code.defaults[p] else { throw ScriptError.runtime("missing argument '\(f.parameters[p].name)' in call to '\(f.name)'", at) }
                frame.slots[p] = try d.eval(frame, self)
            }
        }
        do {
            let (flow, v) = try code.body.value(frame, self)
            switch flow {
            case .normal: return v
            case .returned(let r): return r
            case .breakLoop, .continueLoop: throw misplaced(.breakLoop, at)
            }
        } catch let signal as ControlSignal {
            if case .returned(let r) = signal { return r }
            throw misplaced(signal, at)
        } catch var e as ScriptError {
            if e.kind == .runtime && e.calls.count < 20 { e.calls.append((f.name, at)) }
            throw e
        }
    }
}

extension Interpreter {
    /// A warning the work goes on after (a skipped cache entry): one line on standard error.
    func warn(_ message: String) { progress("warning: " + message, done: true) }

    /// Progress lines of long work: rewritten in place on a terminal, one per epoch otherwise.
    func progress(_ line: String, done: Bool) {
        if let progressSink { progressSink(line, done); return }
        if isatty(STDERR_FILENO) != 0 {
            // Rewritten in place; ESC[K clears what a longer earlier line left.
            FileHandle.standardError.write(Data(("\r" + line + "\u{1B}[K" + (done ? "\n" : "")).utf8))
        } else if done {
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }
}
