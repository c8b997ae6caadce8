import Kernels

// Statement nodes: each runs itself and says how it ended.

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
