/// Errors from building, loading and running models. The one error type of this target: lower layers'
/// errors pass through unchanged.
public struct NetworkError: Error, CustomStringConvertible, Equatable, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
