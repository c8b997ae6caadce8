import Kernels
import Tensors
import Runtime

/// Batch normalisation over axis 1 of [N, C] or [N, C, H, W]. Channels are independent, so
/// every pass runs channels in parallel; loops write through buffer pointers (array element
/// writes inside closures cost a uniqueness check each and defeat vectorisation).
enum BatchNormOp {
    static func split(_ x: Tensor) throws -> (n: Int, c: Int, inner: Int) {
        guard x.rank >= 2 else { throw NetworkError("BatchNormalization: expected [N, C, …], found \(x.shape)") }
        return (x.shape[0], x.shape[1], x.shape[2...].reduce(1, *))
    }

    static func checkParameters(_ x: Tensor, _ params: [Tensor]) throws {
        let c = x.shape[1]
        for (i, p) in params.enumerated() where p.count != c {
            throw NetworkError("BatchNormalization: input \(i + 1) must have \(c) values (one per channel), found shape \(p.shape)")
        }
    }

    /// Σ p[0..<n] − with `center`, Σ (p[j] − center)² — in sixteen lanes of partial sums, so the
    /// adds do not wait on one another (a single running sum is one add per 3–4 cycles).
    @inline(__always)
    static func laneSum(_ p: UnsafePointer<Float>, _ n: Int, squaredAbout center: Float? = nil) -> Float {
        let raw = UnsafeRawPointer(p)
        var a = SIMD8<Float>(), b = SIMD8<Float>(), j = 0
        if let center {
            let m = SIMD8<Float>(repeating: center)
            while j + 16 <= n {
                let u = raw.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self) - m
                let v = raw.loadUnaligned(fromByteOffset: 4 * j + 32, as: SIMD8<Float>.self) - m
                a.addProduct(u, u); b.addProduct(v, v); j += 16
            }
            var tail: Float = 0
            while j < n { let d = p[j] - center; tail += d * d; j += 1 }
            return (a + b).sum() + tail
        }
        while j + 16 <= n {
            a += raw.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self)
            b += raw.loadUnaligned(fromByteOffset: 4 * j + 32, as: SIMD8<Float>.self)
            j += 16
        }
        var tail: Float = 0
        while j < n { tail += p[j]; j += 1 }
        return (a + b).sum() + tail
    }

    /// (Σ d[j], Σ d[j]·z[j]) over j < n, in lanes of partial sums, with z[j] = (x[j] − m)·r
    /// computed as `train` computes the normalised input.
    @inline(__always)
    static func laneSums(_ d: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int, mean m: Float, inverseStd r: Float) -> (Float, Float) {
        let (rd, rx) = (UnsafeRawPointer(d), UnsafeRawPointer(x))
        var s = SIMD8<Float>(), sz = SIMD8<Float>(), j = 0
        while j + 8 <= n {
            let u = rd.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self)
            let z = (rx.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self) - m) * r
            s += u; sz.addProduct(u, z); j += 8
        }
        var (ts, tz): (Float, Float) = (0, 0)
        while j < n { ts += d[j]; tz += d[j] * ((x[j] - m) * r); j += 1 }
        return (s.sum() + ts, sz.sum() + tz)
    }

    /// y = a·x + b per channel.
    static func affine(_ x: Tensor, a: [Float], b: [Float]) throws -> Tensor {
        let (n, c, inner) = try split(x)
        var out = [Float].uninitialized(x.count)
        x.withUnsafeScalars { xp in
            out.withUnsafeMutableBufferPointer { op in
                let (xb, ob) = (xp.baseAddress!, op.baseAddress!)
                Parallel.forEach(c) { ch, _ in
                    let s = a[ch], t = b[ch]
                    for i in 0..<n {
                        let base = (i * c + ch) * inner
                        for j in 0..<inner { ob[base + j] = s * xb[base + j] + t }
                    }
                }
            }
        }
        return Tensor(checkedShape: x.shape, scalars: out)
    }

    /// y = γ·(x − μ)/√(σ² + ε) + β with the running statistics.
    static func evaluate(_ x: Tensor, scale: Tensor, bias: Tensor, mean: Tensor, variance: Tensor, epsilon: Float) throws -> Tensor {
        _ = try split(x)
        try checkParameters(x, [scale, bias, mean, variance])
        let a = (0..<scale.count).map { scale.scalars[$0] / (variance.scalars[$0] + epsilon).squareRoot() }
        let b = (0..<scale.count).map { bias.scalars[$0] - a[$0] * mean.scalars[$0] }
        return try affine(x, a: a, b: b)
    }

    /// Training mode: batch statistics; returns y, the state for backward, and the new running
    /// mean and variance (unbiased batch variance, as PyTorch).
    static func train(_ x: Tensor, scale: Tensor, bias: Tensor, mean: Tensor, variance: Tensor,
                      epsilon: Float, momentum: Float) throws -> (Tensor, OpState, Tensor, Tensor) {
        let (n, c, inner) = try split(x)
        try checkParameters(x, [scale, bias, mean, variance])
        let count = n * inner
        guard count > 1 else { throw NetworkError("BatchNormalization: training needs more than one value per channel, found \(count)") }
        var out = [Float].uninitialized(x.count)
        var batchMean = [Float](repeating: 0, count: c), batchVar = batchMean, inverseStd = batchMean
        x.withUnsafeScalars { xp in
            out.withUnsafeMutableBufferPointer { op in
                batchMean.withUnsafeMutableBufferPointer { bm in
                    batchVar.withUnsafeMutableBufferPointer { bv in
                        inverseStd.withUnsafeMutableBufferPointer { inv in
                            let (xb, ob) = (xp.baseAddress!, op.baseAddress!)
                            let (bmb, bvb, ib) = (bm.baseAddress!, bv.baseAddress!, inv.baseAddress!)
                            Parallel.forEach(c) { ch, _ in
                                // Two passes (mean, then squared deviations) in Double: no cancellation.
                                var s = 0.0
                                for i in 0..<n { s += Double(laneSum(xb + (i * c + ch) * inner, inner)) }
                                let mu = s / Double(count), m = Float(mu)
                                var s2 = 0.0
                                for i in 0..<n { s2 += Double(laneSum(xb + (i * c + ch) * inner, inner, squaredAbout: m)) }
                                let varBiased = s2 / Double(count)
                                let r = Float(1 / (varBiased + Double(epsilon)).squareRoot())
                                bmb[ch] = m; bvb[ch] = Float(varBiased); ib[ch] = r
                                let g = scale.scalars[ch], b = bias.scalars[ch]
                                for i in 0..<n {
                                    let base = (i * c + ch) * inner
                                    let (x, o) = (xb + base, ob + base)
                                    var j = 0
                                    while j + 8 <= inner {
                                        let v = (UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self) - m) * r
                                        UnsafeMutableRawPointer(o + j).storeBytes(of: g * v + b, as: SIMD8<Float>.self)
                                        j += 8
                                    }
                                    while j < inner { let v = (x[j] - m) * r; o[j] = g * v + b; j += 1 }
                                }
                            }
                        }
                    }
                }
            }
        }
        let unbias = Float(count) / Float(count - 1)
        let newMean = (0..<c).map { (1 - momentum) * mean.scalars[$0] + momentum * batchMean[$0] }
        let newVar = (0..<c).map { (1 - momentum) * variance.scalars[$0] + momentum * batchVar[$0] * unbias }
        return (Tensor(checkedShape: x.shape, scalars: out),
                .batchStatistics(mean: batchMean, inverseStd: inverseStd),
                Tensor(checkedShape: mean.shape, scalars: newMean), Tensor(checkedShape: variance.shape, scalars: newVar))
    }

    /// Gradients of x, γ and β. With batch statistics (training) the mean and variance depend on
    /// x; in evaluation mode they are constants and the map is affine.
    static func backward(_ x: Tensor, scale: Tensor, mean: Tensor, variance: Tensor, epsilon: Float,
                         state: OpState?, _ dy: Tensor) throws -> (Tensor, Tensor, Tensor) {
        let (n, c, inner) = try split(x)
        let count = Float(n * inner)
        var dx = [Float].uninitialized(x.count)
        var dgamma = [Float](repeating: 0, count: c), dbeta = dgamma
        // The normalised input z = (x − m)·r, m the mean and r = 1/σ per channel.
        let m: [Float], r: [Float]
        let training: Bool
        if case let .batchStatistics(batchMean, inverseStd)? = state {
            (m, r, training) = (batchMean, inverseStd, true)
        } else {
            (m, r) = (mean.scalars, (0..<c).map { 1 / (variance.scalars[$0] + epsilon).squareRoot() })
            training = false
        }
        dy.withUnsafeScalars { d in
            x.withUnsafeScalars { xs in
                dx.withUnsafeMutableBufferPointer { dxp in
                    dgamma.withUnsafeMutableBufferPointer { dg in
                        dbeta.withUnsafeMutableBufferPointer { db in
                            let (db0, xb, dxb, dgb, dbb) = (d.baseAddress!, xs.baseAddress!, dxp.baseAddress!, dg.baseAddress!, db.baseAddress!)
                            Parallel.forEach(c) { ch, _ in
                                let (mc, rc) = (m[ch], r[ch])
                                var sumD: Float = 0, sumDZ: Float = 0
                                for i in 0..<n {
                                    let base = (i * c + ch) * inner
                                    let (a, b) = laneSums(db0 + base, xb + base, inner, mean: mc, inverseStd: rc)
                                    sumD += a; sumDZ += b
                                }
                                dgb[ch] = sumDZ; dbb[ch] = sumD
                                let k = scale.scalars[ch] * r[ch]
                                let meanD = training ? sumD / count : 0, meanDZ = training ? sumDZ / count : 0
                                for i in 0..<n {
                                    let base = (i * c + ch) * inner
                                    let (d, xi, dx) = (db0 + base, xb + base, dxb + base)
                                    var j = 0
                                    while j + 8 <= inner {
                                        let zv = (UnsafeRawPointer(xi + j).loadUnaligned(as: SIMD8<Float>.self) - mc) * rc
                                        let v = k * (UnsafeRawPointer(d + j).loadUnaligned(as: SIMD8<Float>.self) - meanD - zv * meanDZ)
                                        UnsafeMutableRawPointer(dx + j).storeBytes(of: v, as: SIMD8<Float>.self)
                                        j += 8
                                    }
                                    while j < inner { dx[j] = k * (d[j] - meanD - ((xi[j] - mc) * rc) * meanDZ); j += 1 }
                                }
                            }
                        }
                    }
                }
            }
        }
        return (Tensor(checkedShape: x.shape, scalars: dx), Tensor(checkedShape: scale.shape, scalars: dgamma),
                Tensor(checkedShape: scale.shape, scalars: dbeta))
    }
}
