import Synchronization

/// The stop flag long computations poll (Ctrl-C at the prompt sets it). Loops call
/// `Interrupt.check()` between units of work; the prompt clears the flag before each command.
public enum Interrupt {
    private static let flag = Atomic<Bool>(false)

    public static func request() { flag.store(true, ordering: .relaxed) }
    public static func clear() { flag.store(false, ordering: .relaxed) }
    public static var isRequested: Bool { flag.load(ordering: .relaxed) }

    /// Throws `Interrupted` when a stop was requested.
    public static func check() throws {
        if flag.load(ordering: .relaxed) { throw Interrupted() }
    }
}

public struct Interrupted: Error, CustomStringConvertible, Sendable {
    public init() {}
    public var description: String { "interrupted" }
}
