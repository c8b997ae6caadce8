import Synchronization

/// Every name a script uses gets a small integer once, when it is parsed; variables are then
/// found by that integer (an array index at the top level, a short scan in a function) instead
/// of hashing the name on every access.
public enum Symbols {
    private static let table = Mutex<(ids: [String: Int], names: [String])>(([:], []))

    public static func id(_ name: String) -> Int {
        table.withLock { t in
            if let id = t.ids[name] { return id }
            let id = t.names.count
            t.ids[name] = id
            t.names.append(name)
            return id
        }
    }

    public static func name(_ id: Int) -> String { table.withLock { id < $0.names.count ? $0.names[id] : "?" } }
}

/// A name in the source with its symbol.
public struct Name: Sendable {
    public let text: String
    public let id: Int
    public init(_ text: String) { self.text = text; id = Symbols.id(text) }
}

/// Variables of one scope: the top level (dense, indexed by symbol) or one function call
/// (a few locals, scanned).
public final class Environment: @unchecked Sendable {
    var ids: [Int] = []
    var locals: [Value] = []
    var dense: [Value?] = []
    let isTopLevel: Bool
    public let parent: Environment?

    public init(parent: Environment? = nil) { self.parent = parent; isTopLevel = parent == nil }

    @inline(__always)
    func get(_ id: Int) -> Value? {
        if isTopLevel { return id < dense.count ? dense[id] : nil }
        for i in ids.indices where ids[i] == id { return locals[i] }
        return nil
    }

    @inline(__always)
    func lookup(_ id: Int) -> Value? {
        var e: Environment? = self
        while let env = e {
            if let v = env.get(id) { return v }
            e = env.parent
        }
        return nil
    }

    @inline(__always)
    func set(_ id: Int, _ value: Value) {
        if isTopLevel {
            if id >= dense.count { dense += [Value?](repeating: nil, count: id - dense.count + 32) }
            dense[id] = value
            return
        }
        for i in ids.indices where ids[i] == id { locals[i] = value; return }
        ids.append(id); locals.append(value)
    }

    public func lookup(_ name: String) -> Value? { lookup(Symbols.id(name)) }
    public func define(_ name: String, _ value: Value) { set(Symbols.id(name), value) }
    public func removeAll() { ids = []; locals = []; dense = [] }

    /// This scope's variables by name.
    public var values: [String: Value] {
        var out: [String: Value] = [:]
        if isTopLevel {
            for (id, v) in dense.enumerated() { if let v { out[Symbols.name(id)] = v } }
        } else {
            for (id, v) in zip(ids, locals) { out[Symbols.name(id)] = v }
        }
        return out
    }

    /// Every visible name (for completion and suggestions).
    public var allNames: [String] {
        var names = Set<String>()
        var e: Environment? = self
        while let env = e { names.formUnion(env.values.keys); e = env.parent }
        return names.sorted()
    }
}
