import Kernels

// Names: where each lives (decided when compiling), read and assigned.

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
