import Foundation
import Tensors

/// LayerNormalization over the axes from `axis` on: y = (x − μ)/σ·γ + β per row, σ = √(var + ε).
enum LayerNormOp {
    static func rows(_ x: Tensor, axis: Int) throws -> (rows: Int, width: Int) {
        let a = try ShapeOp.axis(axis, rank: x.rank, "LayerNormalization")
        return (x.shape[..<a].reduce(1, *), x.shape[a...].reduce(1, *))
    }

    /// x̂ and 1/σ per row.
    static func normalize(_ x: Tensor, axis: Int, epsilon: Float) throws -> ([Float], [Float]) {
        let (m, d) = try rows(x, axis: axis)
        var xh = [Float](repeating: 0, count: x.count), inv = [Float](repeating: 0, count: m)
        for r in 0..<m {
            var mean = 0.0, sq = 0.0
            for j in 0..<d { mean += Double(x.scalars[r * d + j]) }
            mean /= Double(d)
            for j in 0..<d { let v = Double(x.scalars[r * d + j]) - mean; sq += v * v }
            let s = Float(1 / (sq / Double(d) + Double(epsilon)).squareRoot())
            inv[r] = s
            for j in 0..<d { xh[r * d + j] = (x.scalars[r * d + j] - Float(mean)) * s }
        }
        return (xh, inv)
    }

    static func checkScale(_ t: Tensor?, width d: Int) throws {
        if let t, t.count != d, t.count != 1 {
            throw NetworkError("LayerNormalization: scale or bias of \(t.count) values for rows of \(d)")
        }
    }

    static func forward(_ x: Tensor, _ g: Tensor, _ b: Tensor?, axis: Int, epsilon: Float) throws -> Tensor {
        let (_, d) = try rows(x, axis: axis)
        try checkScale(g, width: d); try checkScale(b, width: d)
        let (xh, _) = try normalize(x, axis: axis, epsilon: epsilon)
        let out = xh.indices.map { i in
            xh[i] * g.scalars[g.count == 1 ? 0 : i % d] + (b.map { $0.scalars[$0.count == 1 ? 0 : i % d] } ?? 0)
        }
        return Tensor(checkedShape: x.shape, scalars: out)
    }

    /// (v − mean(v) − x̂·mean(v·x̂))/σ per row: the normalisation's Jacobian (symmetric) applied to v.
    static func project(_ v: [Float], _ xh: [Float], _ inv: [Float], width d: Int) -> [Float] {
        var out = v
        for r in 0..<inv.count {
            var mv = 0.0, mvx = 0.0
            for j in 0..<d { mv += Double(v[r * d + j]); mvx += Double(v[r * d + j] * xh[r * d + j]) }
            mv /= Double(d); mvx /= Double(d)
            for j in 0..<d { out[r * d + j] = (v[r * d + j] - Float(mv) - xh[r * d + j] * Float(mvx)) * inv[r] }
        }
        return out
    }

    static func backward(_ x: Tensor, _ g: Tensor, hasBias: Bool, axis: Int, epsilon: Float, _ dy: Tensor) throws -> [Tensor?] {
        let (_, d) = try rows(x, axis: axis)
        let (xh, inv) = try normalize(x, axis: axis, epsilon: epsilon)
        let scaled = dy.scalars.indices.map { dy.scalars[$0] * g.scalars[g.count == 1 ? 0 : $0 % d] }
        let dx = project(scaled, xh, inv, width: d)
        var dg = [Float](repeating: 0, count: g.count), db = [Float](repeating: 0, count: g.count)
        for i in xh.indices {
            let k = g.count == 1 ? 0 : i % d
            dg[k] += dy.scalars[i] * xh[i]; db[k] += dy.scalars[i]
        }
        return [Tensor(checkedShape: x.shape, scalars: dx), Tensor(checkedShape: g.shape, scalars: dg)]
            + (hasBias ? [Tensor(checkedShape: g.shape, scalars: db)] : [])
    }

    /// The backward pass's movement with x (tangent ẋ) and γ (tangent γ̇), the second-order
    /// terms: with u = dY⊙γ, dX = P(u) = (u − mean u − x̂·mean(u⊙x̂))/σ, x̂̇ = P(ẋ), σ̇ = mean(x̂⊙ẋ),
    /// ∂dX = −(σ̇/σ)·dX + (u̇ − mean u̇ − x̂̇·mean(u⊙x̂) − x̂·mean(u̇⊙x̂ + u⊙x̂̇))/σ with u̇ = dY⊙γ̇,
    /// and ∂dγ = Σ dY⊙x̂̇. β enters linearly and moves nothing.
    static func backwardTangent(_ x: Tensor, _ g: Tensor, axis: Int, epsilon: Float, _ dy: Tensor,
                                dx xt: Tensor?, dg gt: Tensor?) throws -> (dx: Tensor?, dg: Tensor?) {
        guard xt != nil || gt != nil else { return (nil, nil) }
        let (m, d) = try rows(x, axis: axis)
        let (xh, inv) = try normalize(x, axis: axis, epsilon: epsilon)
        func at(_ t: Tensor, _ i: Int) -> Float { t.scalars[t.count == 1 ? 0 : i % d] }
        let u = dy.scalars.indices.map { dy.scalars[$0] * at(g, $0) }
        let ut = gt.map { gt in dy.scalars.indices.map { dy.scalars[$0] * at(gt, $0) } } ?? [Float](repeating: 0, count: x.count)
        let xht = xt.map { project($0.scalars, xh, inv, width: d) } ?? [Float](repeating: 0, count: x.count)
        let dxNow = project(u, xh, inv, width: d)
        var out = [Float](repeating: 0, count: x.count)
        for r in 0..<m {
            var mut = 0.0, mux = 0.0, mutx = 0.0, muxt = 0.0, mxx = 0.0
            for j in 0..<d {
                let i = r * d + j
                mut += Double(ut[i]); mux += Double(u[i] * xh[i]); mutx += Double(ut[i] * xh[i]); muxt += Double(u[i] * xht[i])
                if let xt { mxx += Double(xh[i] * xt.scalars[i]) }
            }
            let n = Double(d)
            // σ̇/σ = mean(x̂⊙ẋ)·(1/σ).
            let rate = Float(mxx / n) * inv[r]
            for j in 0..<d {
                let i = r * d + j
                let inner = ut[i] - Float(mut / n) - xht[i] * Float(mux / n) - xh[i] * Float((mutx + muxt) / n)
                out[i] = -rate * dxNow[i] + inner * inv[r]
            }
        }
        var dgt: Tensor? = nil
        if xt != nil {
            var acc = [Float](repeating: 0, count: g.count)
            for i in xh.indices { acc[g.count == 1 ? 0 : i % d] += dy.scalars[i] * xht[i] }
            dgt = Tensor(checkedShape: g.shape, scalars: acc)
        }
        return (Tensor(checkedShape: x.shape, scalars: out), dgt)
    }

    static func tangent(_ x: Tensor, _ g: Tensor, axis: Int, epsilon: Float, dx: Tensor?, dg: Tensor?, db: Tensor?) throws -> Tensor {
        let (_, d) = try rows(x, axis: axis)
        let (xh, inv) = try normalize(x, axis: axis, epsilon: epsilon)
        var out = [Float](repeating: 0, count: x.count)
        if let dx {
            let p = project(dx.scalars, xh, inv, width: d)
            for i in out.indices { out[i] += p[i] * g.scalars[g.count == 1 ? 0 : i % d] }
        }
        if let dg { for i in out.indices { out[i] += xh[i] * dg.scalars[dg.count == 1 ? 0 : i % d] } }
        if let db { for i in out.indices { out[i] += db.scalars[db.count == 1 ? 0 : i % d] } }
        return Tensor(checkedShape: x.shape, scalars: out)
    }
}

/// Local response normalisation across channels (AlexNet, GoogLeNet):
/// y_c = x_c·d_c^(−β), d_c = bias + α/size·Σ_{c′ ∈ window(c)} x_c′², the window
/// [c − ⌊(size−1)/2⌋, c + ⌈(size−1)/2⌉].
public struct LRNAttributes: Codable, Equatable, Sendable {
    public var size: Int, alpha: Float, beta: Float, bias: Float
    public init(size: Int, alpha: Float = 1e-4, beta: Float = 0.75, bias: Float = 1) {
        self.size = size; self.alpha = alpha; self.beta = beta; self.bias = bias
    }
}

enum LRNOp {
    /// d per element (x of shape [N, C, …]).
    static func denominators(_ x: Tensor, _ a: LRNAttributes) throws -> [Float] {
        guard x.rank >= 3 else { throw NetworkError("LRN: expected an input [N, C, …], found \(x.shape)") }
        let (n, c) = (x.shape[0], x.shape[1]), inner = x.shape[2...].reduce(1, *)
        let lo = (a.size - 1) / 2, hi = a.size - 1 - lo
        var d = [Float](repeating: 0, count: x.count)
        for b in 0..<n {
            for ch in 0..<c {
                for j in 0..<inner {
                    var s: Float = 0
                    for k in max(0, ch - lo)...min(c - 1, ch + hi) { let v = x.scalars[(b * c + k) * inner + j]; s += v * v }
                    d[(b * c + ch) * inner + j] = a.bias + a.alpha / Float(a.size) * s
                }
            }
        }
        return d
    }

    static func forward(_ x: Tensor, _ a: LRNAttributes) throws -> Tensor {
        let d = try denominators(x, a)
        return Tensor(checkedShape: x.shape, scalars: x.scalars.indices.map { x.scalars[$0] * pow(d[$0], -a.beta) })
    }

    /// The Jacobian applied to v (`transposed`: its transpose, for backward).
    static func apply(_ x: Tensor, _ a: LRNAttributes, _ v: Tensor, transposed: Bool) throws -> Tensor {
        let d = try denominators(x, a)
        let (n, c) = (x.shape[0], x.shape[1]), inner = x.shape[2...].reduce(1, *)
        let lo = (a.size - 1) / 2, hi = a.size - 1 - lo
        let k2 = 2 * a.alpha * a.beta / Float(a.size)
        var out = [Float](repeating: 0, count: x.count)
        for b in 0..<n {
            for ch in 0..<c {
                for j in 0..<inner {
                    let i = (b * c + ch) * inner + j
                    var s: Float = 0
                    if transposed {
                        // Σ over c′ whose window holds c: c′ ∈ [c − hi, c + lo].
                        for k in max(0, ch - hi)...min(c - 1, ch + lo) {
                            let i2 = (b * c + k) * inner + j
                            s += v.scalars[i2] * x.scalars[i2] * pow(d[i2], -a.beta - 1)
                        }
                        out[i] = v.scalars[i] * pow(d[i], -a.beta) - k2 * x.scalars[i] * s
                    } else {
                        for k in max(0, ch - lo)...min(c - 1, ch + hi) {
                            let i2 = (b * c + k) * inner + j
                            s += x.scalars[i2] * v.scalars[i2]
                        }
                        out[i] = v.scalars[i] * pow(d[i], -a.beta) - k2 * x.scalars[i] * pow(d[i], -a.beta - 1) * s
                    }
                }
            }
        }
        return Tensor(checkedShape: x.shape, scalars: out)
    }
}

/// ReduceMean / ReduceSum over some axes (all when none are given).
public enum Reduction: String, Codable, Equatable, Sendable {
    case mean, sum
    public var onnxName: String { self == .mean ? "ReduceMean" : "ReduceSum" }

    func axes(_ axes: [Int]?, rank: Int) throws -> [Int] {
        guard let axes, !axes.isEmpty else { return Array(0..<rank) }
        return try axes.map { try ShapeOp.axis($0, rank: rank, onnxName) }.sorted()
    }

    func forward(_ x: Tensor, axes raw: [Int]?, keepDims: Bool) throws -> Tensor {
        let axes = try axes(raw, rank: x.rank)
        var y = x
        for a in axes { y = self == .mean ? try y.mean(axis: a, keepDims: true) : try y.sum(axis: a, keepDims: true) }
        if keepDims { return y }
        return try y.reshaped(x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element))
    }

    /// dY broadcast back over the reduced axes (divided by their size for the mean).
    func backward(_ x: Tensor, axes raw: [Int]?, _ dy: Tensor) throws -> Tensor {
        let axes = try axes(raw, rank: x.rank)
        let kept = x.shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
        let n = axes.reduce(1) { $0 * x.shape[$1] }
        let g = try dy.reshaped(kept)
        let scale: Float = self == .mean ? 1 / Float(max(n, 1)) : 1
        return try Tensor.zip(try Tensor.zeros(x.shape), g, operation: onnxName) { _, v in v * scale }
    }
}
