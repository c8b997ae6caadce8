import Foundation
import Kernels
import Runtime

extension Tensor {
    /// The shape two shapes broadcast to (NumPy rules: align trailing axes; a 1 stretches).
    public static func broadcastShape(_ a: [Int], _ b: [Int], operation: String = "broadcast") throws -> [Int] {
        let r = Swift.max(a.count, b.count)
        var out = [Int](repeating: 1, count: r)
        for i in 0..<r {
            let x = i < r - a.count ? 1 : a[i - (r - a.count)]
            let y = i < r - b.count ? 1 : b[i - (r - b.count)]
            guard x == y || x == 1 || y == 1 else {
                throw TensorError.shapeMismatch(operation: operation, expected: "shapes that broadcast",
                                                found: "\(a) and \(b)")
            }
            out[i] = x == 1 ? y : x
        }
        _ = try elementCount(of: out)
        return out
    }

    /// Applies `op` elementwise after broadcasting both operands.
    /// Inlined where the library calls it. The closure still runs per element inside the chunks
    /// handed to the worker pool; the hot operators use `sameShape`, plain loops, instead.
    @inline(__always)
    public static func zip(_ a: Tensor, _ b: Tensor, operation: String = "elementwise",
                           _ op: (Float, Float) -> Float) throws -> Tensor {
        if a.shape == b.shape {
            let out = [Float](unsafeUninitializedCapacity: a.count) { o, initialized in
                a.scalars.withUnsafeBufferPointer { ap in
                    b.scalars.withUnsafeBufferPointer { bp in
                        let (x, y, z) = (ap.baseAddress, bp.baseAddress, o.baseAddress)
                        if let x, let y, let z { inChunks(o.count) { r in for i in r { z[i] = op(x[i], y[i]) } } }
                    }
                }
                initialized = a.count
            }
            return Tensor(uncheckedShape: a.shape, scalars: out)
        }
        if b.count == 1 && b.rank <= a.rank {
            let y = b.scalars[0]
            return Tensor(uncheckedShape: a.shape, scalars: a.scalars.map { op($0, y) })
        }
        if a.count == 1 && a.rank <= b.rank {
            let x = a.scalars[0]
            return Tensor(uncheckedShape: b.shape, scalars: b.scalars.map { op(x, $0) })
        }
        let shape = try broadcastShape(a.shape, b.shape, operation: operation)
        let r = shape.count
        func stretched(_ t: Tensor) -> [Int] {
            let s = strides(of: t.shape)
            return (0..<r).map { i in
                let j = i - (r - t.rank)
                return j < 0 || t.shape[j] == 1 ? 0 : s[j]
            }
        }
        let sa = stretched(a), sb = stretched(b)
        let n = try elementCount(of: shape)
        var out = [Float](repeating: 0, count: n)
        if n == 0 { return Tensor(uncheckedShape: shape, scalars: out) }
        let inner = shape[r - 1], ia = sa[r - 1], ib = sb[r - 1]
        var index = [Int](repeating: 0, count: r)
        a.scalars.withUnsafeBufferPointer { ap in
            b.scalars.withUnsafeBufferPointer { bp in
                out.withUnsafeMutableBufferPointer { o in
                    var pos = 0
                    while pos < n {
                        var oa = 0, ob = 0
                        for d in 0..<(r - 1) { oa += index[d] * sa[d]; ob += index[d] * sb[d] }
                        for x in 0..<inner { o[pos + x] = op(ap[oa + x * ia], bp[ob + x * ib]) }
                        pos += inner
                        var d = r - 2
                        while d >= 0 {
                            index[d] += 1
                            if index[d] < shape[d] { break }
                            index[d] = 0; d -= 1
                        }
                    }
                }
            }
        }
        return Tensor(uncheckedShape: shape, scalars: out)
    }

    /// Inlined where the library calls it (the closure still runs per element; ReLU and clamp
    /// use `sameShape`).
    @inline(__always)
    public func map(_ f: (Float) -> Float) -> Tensor {
        let n = count
        let out = [Float](unsafeUninitializedCapacity: n) { dst, initialized in
            scalars.withUnsafeBufferPointer { src in
                if let x = src.baseAddress, let z = dst.baseAddress { Tensor.inChunks(n) { r in for i in r { z[i] = f(x[i]) } } }
            }
            initialized = n
        }
        return Tensor(uncheckedShape: shape, scalars: out)
    }

    /// Runs `body` over `0..<count` in contiguous chunks on all cores when the work is large
    /// enough to pay for the hand-off (≥ 64 Ki elements), else inline.
    @inline(__always)
    static func inChunks(_ count: Int, _ body: (Range<Int>) -> Void) {
        Parallel.chunks(count) { r, _ in body(r) }
    }

    public static func + (a: Tensor, b: Tensor) throws -> Tensor {
        if a.shape == b.shape { return sameShape(a, b, .add) }
        if b.rank == 1, a.rank >= 2, a.shape.last == b.count { return addingRows(a, b, relu: false) }
        return try zip(a, b, operation: "+", +)
    }

    /// a + b for b one row (a linear layer's bias under [N, features]), then max(·, 0) when
    /// `relu`: a plain loop per row. `b.count` must divide `a.count` (the caller checks).
    public static func addingRows(_ a: Tensor, _ b: Tensor, relu: Bool) -> Tensor {
        let width = b.count, rows = a.count / Swift.max(1, width)
        let out = [Float](unsafeUninitializedCapacity: a.count) { o, initialized in
            a.scalars.withUnsafeBufferPointer { ap in
                b.scalars.withUnsafeBufferPointer { bp in
                    guard let x = ap.baseAddress, let y = bp.baseAddress, let z = o.baseAddress else { return }
                    for r in 0..<rows {
                        let (src, dst) = (x + r * width, z + r * width)
                        if relu { for j in 0..<width { dst[j] = Swift.max(src[j] + y[j], 0) } } else { for j in 0..<width { dst[j] = src[j] + y[j] } }
                    }
                }
            }
            initialized = a.count
        }
        return Tensor(uncheckedShape: a.shape, scalars: out)
    }
    public static func - (a: Tensor, b: Tensor) throws -> Tensor { a.shape == b.shape ? sameShape(a, b, .subtract) : try zip(a, b, operation: "-", -) }
    public static func * (a: Tensor, b: Tensor) throws -> Tensor { a.shape == b.shape ? sameShape(a, b, .multiply) : try zip(a, b, operation: "*", *) }
    public static func / (a: Tensor, b: Tensor) throws -> Tensor { try zip(a, b, operation: "/", /) }
    public static prefix func - (a: Tensor) -> Tensor { a.map { -$0 } }
    public func pow(_ b: Tensor) throws -> Tensor { try Tensor.zip(self, b, operation: "**") { Foundation.pow($0, $1) } }
    public static func maximum(_ a: Tensor, _ b: Tensor) throws -> Tensor { try zip(a, b, operation: "maximum") { Swift.max($0, $1) } }
    public static func minimum(_ a: Tensor, _ b: Tensor) throws -> Tensor { try zip(a, b, operation: "minimum") { Swift.min($0, $1) } }

    public func abs() -> Tensor { map { Swift.abs($0) } }
    public func sqrt() -> Tensor { map { $0.squareRoot() } }
    public func exp() -> Tensor { map { Foundation.exp($0) } }
    public func log() -> Tensor { map { Foundation.log($0) } }
    public func relu() -> Tensor { Tensor.sameShape(self, nil, .relu) }
    /// max(a + b, 0): a residual add and the ReLU after it in one pass.
    public static func addRelu(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        guard a.shape == b.shape else { return try zip(a, b, operation: "+") { Swift.max($0 + $1, 0) } }
        return sameShape(a, b, .addRelu)
    }

    /// The hot elementwise operations written out as plain loops: a closure handed through the
    /// chunking to the worker pool is called per element, which costs more than the work.
    enum Loop { case add, subtract, multiply, addRelu, relu, clamp }

    /// `a op b` (or `op a` for relu, and clamp to [lo, hi]) for operands of one shape.
    static func sameShape(_ a: Tensor, _ b: Tensor?, _ op: Loop, lo: Float = 0, hi: Float = 0) -> Tensor {
        let n = a.count
        let out = [Float](unsafeUninitializedCapacity: n) { o, initialized in
            a.scalars.withUnsafeBufferPointer { ap in
                (b ?? a).scalars.withUnsafeBufferPointer { bp in
                    guard let x = ap.baseAddress, let y = bp.baseAddress, let z = o.baseAddress else { return }
                    inChunks(n) { r in
                        switch op {
                        case .add: for i in r { z[i] = x[i] + y[i] }
                        case .subtract: for i in r { z[i] = x[i] - y[i] }
                        case .multiply: for i in r { z[i] = x[i] * y[i] }
                        case .addRelu: for i in r { z[i] = Swift.max(x[i] + y[i], 0) }
                        case .relu: for i in r { z[i] = x[i] > 0 ? x[i] : 0 }
                        case .clamp: for i in r { z[i] = Swift.min(Swift.max(x[i], lo), hi) }
                        }
                    }
                }
            }
            initialized = n
        }
        return Tensor(uncheckedShape: a.shape, scalars: out)
    }
    public func clamped(_ lo: Float, _ hi: Float) -> Tensor { Tensor.sameShape(self, nil, .clamp, lo: lo, hi: hi) }

    /// Whether any element is NaN or infinite.
    public var hasNonFinite: Bool {
        // All exponent bits set is NaN or ±infinity; one pass without early exit vectorises.
        scalars.withUnsafeBufferPointer { p in
            var found: UInt32 = 0
            for v in p { found |= (v.bitPattern & 0x7f80_0000) == 0x7f80_0000 ? 1 : 0 }
            return found != 0
        }
    }
}
