import Kernels

extension Tensor {
    /// Normalises an axis (negative counts from the end) or throws.
    func checkedAxis(_ axis: Int) throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < rank else { throw TensorError.outOfRange(what: "axis", index: axis, bound: rank) }
        return a
    }

    /// Reduces along `axis` with `combine`, starting each lane at `initial`; Double accumulation.
    func reduce(axis: Int, keepDims: Bool, initial: Double, _ combine: (Double, Float) -> Double,
                finish: (Double, Int) -> Float = { v, _ in Float(v) }) throws -> Tensor {
        let a = try checkedAxis(axis)
        let outer = shape[..<a].reduce(1, *), n = shape[a], inner = shape[(a + 1)...].reduce(1, *)
        var out = [Float](repeating: 0, count: outer * inner)
        scalars.withUnsafeBufferPointer { p in
            for o in 0..<outer {
                for i in 0..<inner {
                    var acc = initial
                    for k in 0..<n { acc = combine(acc, p[(o * n + k) * inner + i]) }
                    out[o * inner + i] = finish(acc, n)
                }
            }
        }
        var s = shape
        if keepDims { s[a] = 1 } else { s.remove(at: a) }
        return Tensor(uncheckedShape: s, scalars: out)
    }

    /// Sum of all elements (Double accumulation, then rounded once).
    public func sum() -> Float { Float(scalars.reduce(0.0) { $0 + Double($1) }) }
    public func mean() -> Float { count == 0 ? .nan : Float(scalars.reduce(0.0) { $0 + Double($1) } / Double(count)) }
    /// NaN if the tensor is empty or holds a NaN.
    public func max() -> Float { extremes().max }
    public func min() -> Float { extremes().min }

    /// The smallest and largest element in one pass (`Extremes`), both NaN if the tensor is empty
    /// or holds a NaN.
    public func extremes() -> (min: Float, max: Float) { scalars.withUnsafeBufferPointer { Extremes.of($0) } }

    public func sum(axis: Int, keepDims: Bool = false) throws -> Tensor {
        try reduce(axis: axis, keepDims: keepDims, initial: 0) { $0 + Double($1) }
    }
    public func mean(axis: Int, keepDims: Bool = false) throws -> Tensor {
        try reduce(axis: axis, keepDims: keepDims, initial: 0, { $0 + Double($1) }, finish: { Float($0 / Double($1)) })
    }
    public func max(axis: Int, keepDims: Bool = false) throws -> Tensor {
        try reduce(axis: axis, keepDims: keepDims, initial: -.infinity) { $0.isNaN || $1.isNaN ? .nan : Swift.max($0, Double($1)) }
    }
    public func min(axis: Int, keepDims: Bool = false) throws -> Tensor {
        try reduce(axis: axis, keepDims: keepDims, initial: .infinity) { $0.isNaN || $1.isNaN ? .nan : Swift.min($0, Double($1)) }
    }

    /// Index of the largest element along `axis` (the first on ties, as NumPy and PyTorch).
    public func argmax(axis: Int) throws -> Tensor {
        let a = try checkedAxis(axis)
        let outer = shape[..<a].reduce(1, *), n = shape[a], inner = shape[(a + 1)...].reduce(1, *)
        guard n > 0 else { throw TensorError.invalidArgument("argmax: axis \(axis) is empty") }
        var out = [Float](repeating: 0, count: outer * inner)
        for o in 0..<outer {
            for i in 0..<inner {
                var best = 0, bestValue = scalars[o * n * inner + i]
                for k in 1..<n {
                    let v = scalars[(o * n + k) * inner + i]
                    if v > bestValue { best = k; bestValue = v }
                }
                out[o * inner + i] = Float(best)
            }
        }
        var s = shape; s.remove(at: a)
        return Tensor(uncheckedShape: s, scalars: out)
    }

    /// Index of the largest element of the flattened tensor.
    public func argmax() throws -> Int {
        guard !scalars.isEmpty else { throw TensorError.invalidArgument("argmax: the tensor is empty") }
        var best = 0
        for i in 1..<count where scalars[i] > scalars[best] { best = i }
        return best
    }
}

extension Tensor {
    /// The flat index of the first NaN or infinity, or nil when every element is finite.
    public var firstNonFinite: Int? {
        withUnsafeScalars { p in p.firstIndex { !$0.isFinite } }
    }

    /// Throws when an element is NaN or infinite, naming `what` and the first such element.
    public func checkFinite(_ what: @autoclosure () -> String) throws {
        guard let i = firstNonFinite else { return }
        let bad = scalars.lazy.filter { !$0.isFinite }.count
        throw TensorError.invalidArgument("\(what()) holds \(bad) NaN or infinite value\(bad == 1 ? "" : "s") (the first, \(scalars[i]), at flat index \(i)); results from it would mean nothing")
    }
}
