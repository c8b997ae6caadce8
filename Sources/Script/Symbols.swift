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

/// Variables of one scope: the top level (slots indexed by symbol) or one function call (a
/// frame laid out by the compiler, `symbols[i]` naming `slots[i]`).
public final class Environment: @unchecked Sendable {
    var slots: [Value?]
    var symbols: [Int]
    let isTopLevel: Bool
    public internal(set) var parent: Environment?

    /// The top level.
    public init() { parent = nil; isTopLevel = true; slots = []; symbols = [] }

    /// A function's frame.
    init(parent: Environment, symbols: [Int]) {
        self.parent = parent; isTopLevel = false; self.symbols = symbols
        slots = [Value?](repeating: nil, count: symbols.count)
    }

    @inline(__always)
    func get(_ id: Int) -> Value? {
        if isTopLevel { return id < slots.count ? slots[id] : nil }
        for i in symbols.indices where symbols[i] == id { return slots[i] }
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

    func set(_ id: Int, _ value: Value) {
        if isTopLevel { setGlobal(id, value); return }
        for i in symbols.indices where symbols[i] == id { slots[i] = value; return }
        symbols.append(id); slots.append(value)
    }

    @inline(__always)
    func setGlobal(_ id: Int, _ value: Value) {
        if id >= slots.count { slots += [Value?](repeating: nil, count: id - slots.count + 32) }
        slots[id] = value
    }

    public func lookup(_ name: String) -> Value? { lookup(Symbols.id(name)) }
    public func define(_ name: String, _ value: Value) { set(Symbols.id(name), value) }
    public func removeAll() { slots = []; symbols = [] }

    /// This scope's variables by name.
    public var values: [String: Value] {
        var out: [String: Value] = [:]
        if isTopLevel {
            for (id, v) in slots.enumerated() { if let v { out[Symbols.name(id)] = v } }
        } else {
            for (id, v) in zip(symbols, slots) { if let v { out[Symbols.name(id)] = v } }
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
