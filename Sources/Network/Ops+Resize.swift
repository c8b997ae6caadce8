import Foundation
import Tensors

/// Resize (nearest or linear), one axis at a time: each output position is a weighted sum of at
/// most two input positions ("taps"), so the pass is linear in x and its backward is the same
/// taps read in reverse.
enum ResizeOp {
    typealias Taps = [[(index: Int, weight: Float)]]

    /// Per axis, the taps (nil where the axis keeps its size and scale 1).
    static func plan(_ shape: [Int], _ r: ResizeAttributes) throws -> [Taps?] {
        var out: [Taps?] = []
        for (a, n) in shape.enumerated() {
            let size: Int, scale: Float
            if let sizes = r.sizes {
                guard sizes.count == shape.count else { throw NetworkError("Resize: \(sizes.count) sizes for an input of rank \(shape.count)") }
                size = sizes[a]; scale = Float(size) / Float(n)
            } else if let scales = r.scales {
                guard scales.count == shape.count else { throw NetworkError("Resize: \(scales.count) scales for an input of rank \(shape.count)") }
                guard scales[a] > 0, scales[a].isFinite else { throw NetworkError("Resize: scale \(scales[a]) must be positive") }
                scale = scales[a]; size = Int((Float(n) * scale).rounded(.down))
            } else {
                throw NetworkError("Resize: neither scales nor sizes given")
            }
            guard size >= 1, size <= 1 << 20 else { throw NetworkError("Resize: output size \(size) on axis \(a) is out of range") }
            if size == n && scale == 1 { out.append(nil); continue }
            var taps: Taps = []
            for o in 0..<size {
                let x: Float
                switch r.coordinates {
                case .halfPixel: x = (Float(o) + 0.5) / scale - 0.5
                case .pytorchHalfPixel: x = size > 1 ? (Float(o) + 0.5) / scale - 0.5 : 0
                case .alignCorners: x = size > 1 ? Float(o) * Float(n - 1) / Float(size - 1) : 0
                case .asymmetric: x = Float(o) / scale
                }
                switch r.mode {
                case .nearest:
                    var i: Int
                    switch r.nearest {
                    case .roundPreferFloor: i = Int((x - 0.5).rounded(.up))
                    case .roundPreferCeil: i = Int((x + 0.5).rounded(.down))
                    case .floor: i = Int(x.rounded(.down))
                    case .ceil: i = Int(x.rounded(.up))
                    }
                    i = min(max(i, 0), n - 1)
                    taps.append([(index: i, weight: Float(1))])
                case .linear:
                    let c = min(max(x, 0), Float(n - 1))
                    let i0 = Int(c.rounded(.down)), i1 = min(i0 + 1, n - 1)
                    let w1 = c - Float(i0)
                    if i1 == i0 || w1 == 0 { taps.append([(index: i0, weight: Float(1))]) } else { taps.append([(index: i0, weight: 1 - w1), (index: i1, weight: w1)]) }
                }
            }
            out.append(taps)
        }
        return out
    }

    static func along(_ x: Tensor, axis a: Int, _ taps: Taps) -> Tensor {
        let outer = x.shape[..<a].reduce(1, *), n = x.shape[a], inner = x.shape[(a + 1)...].reduce(1, *)
        var shape = x.shape; shape[a] = taps.count
        var out = [Float](repeating: 0, count: outer * taps.count * inner)
        for o in 0..<outer {
            for (k, t) in taps.enumerated() {
                let dst = (o * taps.count + k) * inner
                for (i, w) in t {
                    let src = (o * n + i) * inner
                    for j in 0..<inner { out[dst + j] += w * x.scalars[src + j] }
                }
            }
        }
        return Tensor(checkedShape: shape, scalars: out)
    }

    static func alongBackward(_ dy: Tensor, axis a: Int, size n: Int, _ taps: Taps) -> Tensor {
        let outer = dy.shape[..<a].reduce(1, *), inner = dy.shape[(a + 1)...].reduce(1, *)
        var shape = dy.shape; shape[a] = n
        var out = [Float](repeating: 0, count: outer * n * inner)
        for o in 0..<outer {
            for (k, t) in taps.enumerated() {
                let src = (o * taps.count + k) * inner
                for (i, w) in t {
                    let dst = (o * n + i) * inner
                    for j in 0..<inner { out[dst + j] += w * dy.scalars[src + j] }
                }
            }
        }
        return Tensor(checkedShape: shape, scalars: out)
    }

    static func forward(_ x: Tensor, _ r: ResizeAttributes) throws -> Tensor {
        var y = x
        for (a, taps) in try plan(x.shape, r).enumerated() { if let taps { y = along(y, axis: a, taps) } }
        return y
    }

    static func backward(_ x: Tensor, _ r: ResizeAttributes, _ dy: Tensor) throws -> Tensor {
        var g = dy
        for (a, taps) in try plan(x.shape, r).enumerated().reversed() {
            if let taps { g = alongBackward(g, axis: a, size: x.shape[a], taps) }
        }
        return g
    }
}
