/// Everything that can go wrong with tensors and tensor files, each case saying what was
/// expected and what was found. Never a trap: callers show these to the user.
public enum TensorError: Error, Equatable, CustomStringConvertible, Sendable {
    /// An operation got shapes it cannot combine.
    case shapeMismatch(operation: String, expected: String, found: String)
    /// A shape that cannot exist: negative or absurd dimensions.
    case invalidShape(String)
    /// More elements than `Tensor.maxElementCount`.
    case tooLarge(elements: String, limit: Int)
    /// An allocation sized by input over `MemoryBudget.limit` (bytes −1: more than Int.max).
    case overBudget(what: String, bytes: Int, limit: Int)
    /// An index or axis out of range.
    case outOfRange(what: String, index: Int, bound: Int)
    /// An argument with a value the operation does not accept.
    case invalidArgument(String)
    /// A file that is not what it claims to be, with the byte offset where reading failed.
    case malformedFile(path: String, offset: Int, reason: String)
    /// The file system said no.
    case io(path: String, reason: String)

    public var description: String {
        switch self {
        case let .shapeMismatch(op, expected, found):
            return "\(op): expected \(expected), found \(found)"
        case let .invalidShape(reason):
            return "invalid shape: \(reason)"
        case let .tooLarge(elements, limit):
            return "tensor too large: \(elements) elements, the limit is \(limit) (\(MemoryBudget.format(limit * 4)) of Float32; set MPQ_MEMORY_LIMIT to change it)"
        case let .overBudget(what, bytes, limit):
            let asked = bytes < 0 ? "more than \(Int.max) bytes" : "\(bytes) bytes (\(MemoryBudget.format(bytes)))"
            return "\(what) needs \(asked); the memory limit is \(MemoryBudget.format(limit)) (set MPQ_MEMORY_LIMIT to change it)"
        case let .outOfRange(what, index, bound):
            return "\(what) \(index) out of range: expected 0..<\(bound)"
        case let .invalidArgument(reason):
            return reason
        case let .malformedFile(path, offset, reason):
            return "\(path): malformed file at byte \(offset): \(reason)"
        case let .io(path, reason):
            return "\(path): \(reason)"
        }
    }
}
