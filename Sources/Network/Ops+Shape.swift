import Tensors

/// Operations that move elements without arithmetic (transpose, slice, pad, gather, expand,
/// nearest resize): each output element copies one input element, or a fill value. They share
/// one mechanism: an index map built from the input's shape, read forward (gather), backward
/// (scatter-add) and for tangents (gather again).
public struct IndexMap: Sendable {
    /// One output axis: the input axis it walks (nil for a new axis) and, per output position,
    /// the input position it reads (−1: the fill value).
    struct Axis {
        var input: Int?
        var positions: [Int]
    }
    var shape: [Int]
    /// Flat input index per output element; −1 where the output takes the fill value.
    var source: [Int32]

    /// `offset` adds fixed input positions for axes the output drops (a gathered scalar index).
    init(input: [Int], axes: [Axis], offset: [Int: Int] = [:]) throws {
        shape = axes.map(\.positions.count)
        let count = try Tensor.elementCount(of: shape)
        try MemoryBudget.check(count: count, of: 4, for: "an index map of shape \(shape)")
        let strides = Tensor.strides(of: input)
        let base = offset.reduce(0) { $0 + strides[$1.key] * $1.value }
        source = [Int32](repeating: 0, count: count)
        guard count > 0 else { return }
        // Odometer over the output, accumulating the input offset axis by axis.
        var index = [Int](repeating: 0, count: axes.count)
        for flat in 0..<count {
            var s = base, fill = false
            for (k, axis) in axes.enumerated() {
                let p = axis.positions[index[k]]
                if p < 0 { fill = true; break }
                if let a = axis.input { s += p * strides[a] }
            }
            source[flat] = fill ? -1 : Int32(s)
            var k = axes.count - 1
            while k >= 0 {
                index[k] += 1
                if index[k] < shape[k] { break }
                index[k] = 0; k -= 1
            }
        }
    }

    /// A map given element by element.
    init(shape: [Int], source: [Int32]) {
        self.shape = shape; self.source = source
    }

    func gather(_ x: Tensor, fill: Float = 0) -> Tensor {
        var out = [Float](repeating: fill, count: source.count)
        x.withUnsafeScalars { xp in
            for i in 0..<out.count where source[i] >= 0 { out[i] = xp[Int(source[i])] }
        }
        return Tensor(checkedShape: shape, scalars: out)
    }

    /// The adjoint of `gather`: each output gradient added to the input element it came from.
    func scatter(_ dy: Tensor, inputShape: [Int]) -> Tensor {
        var out = [Float](repeating: 0, count: inputShape.reduce(1, *))
        dy.withUnsafeScalars { d in
            for i in 0..<source.count where source[i] >= 0 { out[Int(source[i])] += d[i] }
        }
        return Tensor(checkedShape: inputShape, scalars: out)
    }
}

/// ONNX Slice (starts, ends, axes, steps, clamped as the spec says) or one equal part of a Split.
public struct SliceAttributes: Codable, Equatable, Sendable {
    public var starts: [Int], ends: [Int], axes: [Int], steps: [Int]
    public init(starts: [Int], ends: [Int], axes: [Int], steps: [Int]) {
        self.starts = starts; self.ends = ends; self.axes = axes; self.steps = steps
    }
    /// Part `index` of `count` equal parts along `axis` (Split without sizes; the last part
    /// takes the remainder as ONNX says).
    public static func part(_ index: Int, of count: Int, axis: Int) -> SliceAttributes {
        SliceAttributes(starts: [index], ends: [count], axes: [axis], steps: [0])
    }
}

/// ONNX Pad: begins then ends per axis, the mode, the constant.
public struct PadAttributes: Codable, Equatable, Sendable {
    public enum Mode: String, Codable, Sendable { case constant, reflect, edge }
    public var pads: [Int]
    public var axes: [Int]?
    public var mode: Mode
    public var value: Float
    public init(pads: [Int], axes: [Int]? = nil, mode: Mode = .constant, value: Float = 0) {
        self.pads = pads; self.axes = axes; self.mode = mode; self.value = value
    }
}

/// ONNX Resize (and Upsample): output size from scales or sizes on each axis, nearest or linear.
public struct ResizeAttributes: Codable, Equatable, Sendable {
    public enum Mode: String, Codable, Sendable { case nearest, linear }
    public enum Coordinates: String, Codable, Sendable {
        case halfPixel = "half_pixel", pytorchHalfPixel = "pytorch_half_pixel", alignCorners = "align_corners"
        case asymmetric
    }
    public enum Nearest: String, Codable, Sendable {
        case roundPreferFloor = "round_prefer_floor", roundPreferCeil = "round_prefer_ceil", floor, ceil
    }
    public var scales: [Float]?
    public var sizes: [Int]?
    public var mode: Mode
    public var coordinates: Coordinates
    public var nearest: Nearest
    public init(scales: [Float]?, sizes: [Int]?, mode: Mode, coordinates: Coordinates, nearest: Nearest) {
        self.scales = scales; self.sizes = sizes; self.mode = mode; self.coordinates = coordinates; self.nearest = nearest
    }
}

enum ShapeOp {
    static func axis(_ a: Int, rank: Int, _ what: String) throws -> Int {
        let r = a < 0 ? a + rank : a
        guard r >= 0 && r < rank else { throw NetworkError("\(what): axis \(a) is out of range for rank \(rank)") }
        return r
    }

    static func identityAxes(_ shape: [Int]) -> [IndexMap.Axis] {
        shape.enumerated().map { IndexMap.Axis(input: $0.offset, positions: Array(0..<$0.element)) }
    }

    static func transpose(_ shape: [Int], perm: [Int]) throws -> IndexMap {
        let p = perm.isEmpty ? Array((0..<shape.count).reversed()) : perm
        guard p.count == shape.count, Set(p) == Set(0..<shape.count) else {
            throw NetworkError("Transpose: perm \(perm) is not a permutation of the \(shape.count) axes of \(shape)")
        }
        return try IndexMap(input: shape, axes: p.map { IndexMap.Axis(input: $0, positions: Array(0..<shape[$0])) })
    }

    static func slice(_ shape: [Int], _ s: SliceAttributes) throws -> IndexMap {
        var axes = identityAxes(shape)
        if s.steps == [0] {
            // An equal part of a Split.
            let a = try axis(s.axes[0], rank: shape.count, "Split")
            let (index, count) = (s.starts[0], s.ends[0])
            let size = (shape[a] + count - 1) / count
            let lo = Swift.min(index * size, shape[a]), hi = Swift.min(lo + size, shape[a])
            axes[a].positions = Array(lo..<hi)
            return try IndexMap(input: shape, axes: axes)
        }
        for (k, raw) in s.axes.enumerated() {
            let a = try axis(raw, rank: shape.count, "Slice")
            let n = shape[a], step = s.steps[k]
            guard step != 0 else { throw NetworkError("Slice: a step of 0") }
            func clamp(_ v: Int, _ lo: Int, _ hi: Int) -> Int { Swift.min(Swift.max(v, lo), hi) }
            var start = s.starts[k] < 0 ? s.starts[k] + n : s.starts[k]
            var end = s.ends[k] < 0 ? s.ends[k] + n : s.ends[k]
            if step > 0 { start = clamp(start, 0, n); end = clamp(end, 0, n) } else { start = clamp(start, 0, n - 1); end = clamp(end, -1, n - 1) }
            axes[a].positions = Array(stride(from: start, to: end, by: step))
        }
        return try IndexMap(input: shape, axes: axes)
    }

    static func pad(_ shape: [Int], _ p: PadAttributes) throws -> IndexMap {
        let padded = p.axes ?? Array(0..<shape.count)
        guard p.pads.count == 2 * padded.count else {
            throw NetworkError("Pad: expected \(2 * padded.count) pads for \(padded.count) axes, found \(p.pads.count)")
        }
        var axes = identityAxes(shape)
        for (k, raw) in padded.enumerated() {
            let a = try axis(raw, rank: shape.count, "Pad")
            let (before, after, n) = (p.pads[k], p.pads[k + padded.count], shape[a])
            guard n + before + after >= 0 else { throw NetworkError("Pad: pads \(before), \(after) remove more than axis \(a)'s \(n) elements") }
            if p.mode == .reflect, before >= n || after >= n {
                throw NetworkError("Pad: reflect padding of \(Swift.max(before, after)) needs more than \(n) elements on axis \(a)")
            }
            axes[a].positions = (-before..<(n + after)).map { i in
                if i >= 0 && i < n { return i }
                switch p.mode {
                case .constant: return -1
                case .edge: return n == 0 ? -1 : Swift.min(Swift.max(i, 0), n - 1)
                case .reflect: return i < 0 ? -i : 2 * (n - 1) - i
                }
            }
        }
        return try IndexMap(input: shape, axes: axes)
    }

    /// Broadcast to `target` (numpy rules; ONNX Expand may also keep a larger input dimension).
    static func expand(_ shape: [Int], to target: [Int]) throws -> IndexMap {
        let out = try Tensor.broadcastShape(shape, target, operation: "Expand")
        let lead = out.count - shape.count
        let axes = out.enumerated().map { i, n in
            i < lead ? IndexMap.Axis(input: nil, positions: Array(repeating: 0, count: n))
                : IndexMap.Axis(input: i - lead, positions: shape[i - lead] == 1 ? Array(repeating: 0, count: n) : Array(0..<n))
        }
        return try IndexMap(input: shape, axes: axes)
    }

    /// Gather along `axis` with constant indices of shape `indexShape` (a scalar drops the axis).
    static func gather(_ shape: [Int], axis raw: Int, indices: [Int], indexShape: [Int]) throws -> IndexMap {
        let a = try axis(raw, rank: shape.count, "Gather")
        let n = shape[a]
        let fixed = try indices.map { i -> Int in
            let j = i < 0 ? i + n : i
            guard j >= 0 && j < n else { throw NetworkError("Gather: index \(i) is out of range for axis \(a) of \(shape)") }
            return j
        }
        var axes = identityAxes(shape)
        if indexShape.isEmpty {
            axes.remove(at: a)
            return try IndexMap(input: shape, axes: axes, offset: [a: fixed.first ?? 0])
        }
        if indexShape.count == 1 {
            axes[a].positions = fixed
            return try IndexMap(input: shape, axes: axes)
        }
        // Indices of higher rank: output shape = shape[..<a] + indexShape + shape[(a+1)...].
        guard indexShape.reduce(1, *) == fixed.count else { throw NetworkError("Gather: \(fixed.count) indices do not fill shape \(indexShape)") }
        let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *)
        let out = Array(shape[..<a]) + indexShape + Array(shape[(a + 1)...])
        try MemoryBudget.check(count: try Tensor.elementCount(of: out), of: 4, for: "an index map of shape \(out)")
        var source = [Int32]()
        source.reserveCapacity(outer * fixed.count * inner)
        for o in 0..<outer { for j in fixed { for i in 0..<inner { source.append(Int32((o * n + j) * inner + i)) } } }
        return IndexMap(shape: out, source: source)
    }

    static func concat(_ xs: [Tensor], axis raw: Int) throws -> Tensor {
        guard let first = xs.first else { throw NetworkError("Concat: no inputs") }
        let a = try axis(raw, rank: first.rank, "Concat")
        for x in xs where x.rank != first.rank || x.shape.enumerated().contains(where: { $0.offset != a && $0.element != first.shape[$0.offset] }) {
            throw NetworkError("Concat: shapes \(first.shape) and \(x.shape) differ outside axis \(a)")
        }
        var shape = first.shape
        shape[a] = xs.reduce(0) { $0 + $1.shape[a] }
        let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *)
        var out = [Float](); out.reserveCapacity(try Tensor.elementCount(of: shape))
        for o in 0..<outer {
            for x in xs {
                let run = x.shape[a] * inner
                out.append(contentsOf: x.scalars[(o * run)..<((o + 1) * run)])
            }
        }
        return Tensor(checkedShape: shape, scalars: out)
    }

    /// The parts of a concatenation's gradient, one per input.
    static func split(_ dy: Tensor, axis raw: Int, shapes: [[Int]]) throws -> [Tensor] {
        let a = try axis(raw, rank: dy.rank, "Concat")
        let outer = dy.shape[..<a].reduce(1, *), inner = dy.shape[(a + 1)...].reduce(1, *)
        var parts = shapes.map { [Float](repeating: 0, count: $0.reduce(1, *)) }
        var offset = 0
        for o in 0..<outer {
            for (k, s) in shapes.enumerated() {
                let run = s[a] * inner
                parts[k].replaceSubrange((o * run)..<((o + 1) * run), with: dy.scalars[offset..<(offset + run)])
                offset += run
            }
        }
        return zip(shapes, parts).map { Tensor(checkedShape: $0.0, scalars: $0.1) }
    }

    static func unsqueeze(_ shape: [Int], axes: [Int]) throws -> [Int] {
        let rank = shape.count + axes.count
        let normal = try axes.map { try axis($0, rank: rank, "Unsqueeze") }
        guard Set(normal).count == normal.count else { throw NetworkError("Unsqueeze: repeated axes \(axes)") }
        var out: [Int] = [], rest = shape[...]
        for i in 0..<rank { if normal.contains(i) { out.append(1) } else { out.append(rest.removeFirst()) } }
        return out
    }

    static func squeeze(_ shape: [Int], axes: [Int]?) throws -> [Int] {
        guard let axes else { return shape.filter { $0 != 1 } }
        let normal = try axes.map { try axis($0, rank: shape.count, "Squeeze") }
        for a in normal where shape[a] != 1 { throw NetworkError("Squeeze: axis \(a) of \(shape) is not 1") }
        return shape.enumerated().filter { !normal.contains($0.offset) }.map(\.element)
    }

    /// ONNX Reshape's target: 0 copies the input's dimension (unless `allowZero`), −1 is inferred.
    static func reshapeTarget(_ shape: [Int], _ target: [Int], allowZero: Bool = false) throws -> [Int] {
        var out = target.enumerated().map { i, d in d == 0 && !allowZero && i < shape.count ? shape[i] : d }
        let known = out.filter { $0 != -1 }.reduce(1, *), count = shape.reduce(1, *)
        if let unknown = out.firstIndex(of: -1) {
            guard known > 0, count % known == 0 else {
                throw NetworkError("Reshape: cannot reshape \(shape) to \(target)")
            }
            out[unknown] = count / known
        }
        return out
    }
}
