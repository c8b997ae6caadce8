import Kernels

/// An n-dimensional array of Float32 in row-major order.
///
/// Storage is a Swift array, so copies are cheap and the first write to a shared copy
/// duplicates it (copy-on-write). Shapes are checked on construction: negative dimensions,
/// element counts that overflow and tensors beyond `maxElementCount` are errors, not traps.
public struct Tensor: Equatable, Sendable, CustomStringConvertible {
    public private(set) var shape: [Int]
    /// The elements in row-major order; `scalars.count == shape.product`.
    public internal(set) var scalars: [Float]


    /// The largest tensor the library will allocate: `MemoryBudget.limit` bytes of Float32.
    public static var maxElementCount: Int {
        get { MemoryBudget.limit / MemoryLayout<Float>.size }
        set { MemoryBudget.limit = newValue * MemoryLayout<Float>.size }
    }

    /// The number of elements of `shape`, or an error naming what is wrong with it.
    public static func elementCount(of shape: [Int]) throws -> Int {
        var n = 1
        for d in shape {
            if d < 0 { throw TensorError.invalidShape("dimension \(d) in \(shape) is negative") }
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            if overflow { throw TensorError.tooLarge(elements: shape.map(String.init).joined(separator: "×"), limit: maxElementCount) }
            n = p
        }
        if n > maxElementCount {
            throw TensorError.tooLarge(elements: String(n), limit: maxElementCount)
        }
        return n
    }

    public init(shape: [Int], scalars: [Float]) throws {
        let n = try Tensor.elementCount(of: shape)
        guard n == scalars.count else {
            throw TensorError.shapeMismatch(operation: "Tensor(shape:scalars:)",
                                            expected: "\(n) scalars for shape \(shape)", found: "\(scalars.count)")
        }
        self.shape = shape
        self.scalars = scalars
    }

    public init(repeating value: Float, shape: [Int]) throws {
        let n = try Tensor.elementCount(of: shape)
        self.shape = shape
        self.scalars = [Float](repeating: value, count: n)
    }

    public static func zeros(_ shape: [Int]) throws -> Tensor { try Tensor(repeating: 0, shape: shape) }
    public static func ones(_ shape: [Int]) throws -> Tensor { try Tensor(repeating: 1, shape: shape) }

    /// A rank-0 tensor.
    public init(_ value: Float) { shape = []; scalars = [value] }

    /// A rank-1 tensor.
    public init(_ values: [Float]) { shape = [values.count]; scalars = values }

    /// For library code whose shape arithmetic is already checked: a count mismatch here is a
    /// bug in mpq, not bad input, and stops the program.
    public init(checkedShape shape: [Int], scalars: [Float]) {
        precondition(shape.reduce(1, *) == scalars.count, "Tensor: \(scalars.count) scalars for shape \(shape)")
        self.shape = shape
        self.scalars = scalars
    }

    /// A tensor of `shape` whose every element `body` writes, without filling it with zeros first
    /// (an op's output: the zero fill was a pass over memory of its own). `body` must write all
    /// `shape.product` elements.
    public init(checkedShape shape: [Int], writing body: (UnsafeMutableBufferPointer<Float>) -> Void) {
        self.shape = shape
        self.scalars = .uninitialized(shape.reduce(1, *))
        scalars.withUnsafeMutableBufferPointer { body($0) }
    }

    /// Read access to the scalars as a buffer.
    public func withUnsafeScalars<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try scalars.withUnsafeBufferPointer(body)
    }

    /// Write access to the scalars in place (copying them first if shared).
    public mutating func withUnsafeMutableScalars<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try scalars.withUnsafeMutableBufferPointer { try body($0) }
    }

    /// Internal: shape and scalars already known to agree.
    init(uncheckedShape shape: [Int], scalars: [Float]) {
        self.shape = shape
        self.scalars = scalars
    }

    public var rank: Int { shape.count }
    public var count: Int { scalars.count }

    /// Row-major strides of `shape`.
    public static func strides(of shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
        return s
    }

    /// The flat offset of a multi-index, checked.
    public func offset(of index: [Int]) throws -> Int {
        guard index.count == rank else {
            throw TensorError.shapeMismatch(operation: "index", expected: "\(rank) indices", found: "\(index.count)")
        }
        var off = 0
        for (axis, i) in index.enumerated() {
            let d = shape[axis]
            let j = i < 0 ? i + d : i
            guard j >= 0 && j < d else { throw TensorError.outOfRange(what: "index on axis \(axis)", index: i, bound: d) }
            off = off * d + j
        }
        return off
    }

    /// The element at a multi-index (negative indices count from the end).
    public func value(at index: [Int]) throws -> Float { scalars[try offset(of: index)] }

    public mutating func setValue(_ v: Float, at index: [Int]) throws { scalars[try offset(of: index)] = v }

    /// The same scalars under another shape; one dimension may be −1 and is inferred.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var s = newShape
        let unknown = s.indices.filter { s[$0] == -1 }
        if unknown.count > 1 { throw TensorError.invalidShape("only one dimension may be -1 in \(newShape)") }
        if let u = unknown.first {
            s[u] = 1
            let known = try Tensor.elementCount(of: s)
            guard known > 0 && count % known == 0 else {
                throw TensorError.shapeMismatch(operation: "reshape", expected: "a shape with \(count) elements",
                                                found: "\(newShape)")
            }
            s[u] = count / known
        }
        let n = try Tensor.elementCount(of: s)
        guard n == count else {
            throw TensorError.shapeMismatch(operation: "reshape", expected: "a shape with \(count) elements",
                                            found: "\(newShape) (\(n) elements)")
        }
        return Tensor(uncheckedShape: s, scalars: scalars)
    }

    /// Sub-tensor `i` along axis 0 (a batch element, a row).
    public func slice(_ i: Int) throws -> Tensor {
        guard rank >= 1 else { throw TensorError.invalidArgument("cannot index a rank-0 tensor") }
        guard i >= 0 && i < shape[0] else { throw TensorError.outOfRange(what: "index", index: i, bound: shape[0]) }
        let inner = count / Swift.max(shape[0], 1)
        return Tensor(uncheckedShape: Array(shape.dropFirst()), scalars: Array(scalars[(i * inner)..<((i + 1) * inner)]))
    }

    /// Rows `range` along axis 0.
    public func slice(_ range: Range<Int>) throws -> Tensor {
        guard rank >= 1 else { throw TensorError.invalidArgument("cannot slice a rank-0 tensor") }
        guard range.lowerBound >= 0 && range.upperBound <= shape[0] else {
            throw TensorError.outOfRange(what: "slice end", index: range.upperBound, bound: shape[0] + 1)
        }
        let inner = count / Swift.max(shape[0], 1)
        var s = shape; s[0] = range.count
        return Tensor(uncheckedShape: s, scalars: Array(scalars[(range.lowerBound * inner)..<(range.upperBound * inner)]))
    }

    /// Concatenation along axis 0.
    public static func stack(_ parts: [Tensor]) throws -> Tensor {
        guard let first = parts.first else { throw TensorError.invalidArgument("stack: expected at least one tensor") }
        let inner = Array(first.shape.dropFirst())
        var out: [Float] = []
        out.reserveCapacity(parts.reduce(0) { $0 + $1.count })
        var rows = 0
        for p in parts {
            guard Array(p.shape.dropFirst()) == inner else {
                throw TensorError.shapeMismatch(operation: "stack", expected: "rows of shape \(inner)",
                                                found: "\(Array(p.shape.dropFirst()))")
            }
            out += p.scalars
            rows += p.shape.first ?? 1
        }
        return try Tensor(shape: [rows] + inner, scalars: out)
    }

    public var description: String {
        if rank == 0 { return "\(scalars[0])" }
        let preview = scalars.prefix(8).map { String($0) }.joined(separator: ", ")
        return "Tensor\(shape)[\(preview)\(count > 8 ? ", …" : "")]"
    }
}

extension Array where Element == Float {
    /// Storage of `count` floats for an output every element of which is then written, without
    /// filling it with zeros first.
    public static func uninitialized(_ count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }
}
