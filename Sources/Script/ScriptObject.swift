/// A library value a script can hold, show and take apart: sensitivity tables, policies,
/// frontiers. Fields are discoverable (`p.bits`, Tab completion, `keys`).
public protocol ScriptObject: AnyObject, Sendable {
    var typeName: String { get }
    var fieldNames: [String] { get }
    /// The field's value, nil when there is none; throws when it cannot be made.
    func field(_ name: String) throws -> Value?
    /// One line, for values nested in lists and records.
    var summary: String { get }
    /// The full display at the prompt (a table).
    var text: String { get }
    /// What `plot(x)` draws, when the value has a natural picture.
    var plot: Plot? { get }
}

extension ScriptObject {
    public var plot: Plot? { nil }
}
