/// Errors from quantizers, packed tensors and the integer engine. The one error type of this target: lower layers'
/// errors pass through unchanged.
public struct QuantizationError: Error, CustomStringConvertible, Equatable, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
