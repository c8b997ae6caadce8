import Tensors

/// Batch normalisation over axis 1 of [N, C] or [N, C, H, W].
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

    /// y = γ·(x − μ)/√(σ² + ε) + β with the running statistics.
    static func evaluate(_ x: Tensor, scale: Tensor, bias: Tensor, mean: Tensor, variance: Tensor, epsilon: Float) throws -> Tensor {
        let (n, c, inner) = try split(x)
        try checkParameters(x, [scale, bias, mean, variance])
        var out = [Float](repeating: 0, count: x.count)
        x.withUnsafeScalars { xp in
            for ch in 0..<c {
                let a = scale.scalars[ch] / (variance.scalars[ch] + epsilon).squareRoot()
                let b = bias.scalars[ch] - a * mean.scalars[ch]
                for i in 0..<n {
                    let base = (i * c + ch) * inner
                    for j in 0..<inner { out[base + j] = a * xp[base + j] + b }
                }
            }
        }
        return Tensor(checkedShape: x.shape, scalars: out)
    }

    /// Training mode: batch statistics; returns y, the state for backward, and the new running
    /// mean and variance (unbiased batch variance, as PyTorch).
    static func train(_ x: Tensor, scale: Tensor, bias: Tensor, mean: Tensor, variance: Tensor,
                      epsilon: Float, momentum: Float) throws -> (Tensor, OpState, Tensor, Tensor) {
        let (n, c, inner) = try split(x)
        try checkParameters(x, [scale, bias, mean, variance])
        let count = n * inner
        guard count > 1 else { throw NetworkError("BatchNormalization: training needs more than one value per channel, found \(count)") }
        var out = [Float](repeating: 0, count: x.count), normalized = out
        var inverseStd = [Float](repeating: 0, count: c)
        var newMean = mean.scalars, newVar = variance.scalars
        x.withUnsafeScalars { xp in
            for ch in 0..<c {
                var s = 0.0, s2 = 0.0
                for i in 0..<n {
                    let base = (i * c + ch) * inner
                    for j in 0..<inner { let v = Double(xp[base + j]); s += v; s2 += v * v }
                }
                let mu = s / Double(count)
                let varBiased = max(0, s2 / Double(count) - mu * mu)
                let inv = Float(1 / (varBiased + Double(epsilon)).squareRoot())
                inverseStd[ch] = inv
                let g = scale.scalars[ch], b = bias.scalars[ch], m = Float(mu)
                for i in 0..<n {
                    let base = (i * c + ch) * inner
                    for j in 0..<inner {
                        let z = (xp[base + j] - m) * inv
                        normalized[base + j] = z
                        out[base + j] = g * z + b
                    }
                }
                newMean[ch] = (1 - momentum) * newMean[ch] + momentum * m
                newVar[ch] = (1 - momentum) * newVar[ch] + momentum * Float(varBiased * Double(count) / Double(count - 1))
            }
        }
        return (Tensor(checkedShape: x.shape, scalars: out),
                .batchStatistics(normalized: Tensor(checkedShape: x.shape, scalars: normalized), inverseStd: inverseStd),
                Tensor(checkedShape: mean.shape, scalars: newMean), Tensor(checkedShape: variance.shape, scalars: newVar))
    }

    /// Gradients of x, γ and β. With batch statistics (training) the mean and variance depend on
    /// x; in evaluation mode they are constants and the map is affine.
    static func backward(_ x: Tensor, scale: Tensor, mean: Tensor, variance: Tensor, epsilon: Float,
                         state: OpState?, _ dy: Tensor) throws -> (Tensor, Tensor, Tensor) {
        let (n, c, inner) = try split(x)
        let count = Float(n * inner)
        var dx = [Float](repeating: 0, count: x.count)
        var dgamma = [Float](repeating: 0, count: c), dbeta = dgamma
        try dy.withUnsafeScalars { d in
            try x.withUnsafeScalars { xp in
                for ch in 0..<c {
                    let g = scale.scalars[ch]
                    if case let .batchStatistics(normalized, inverseStd)? = state {
                        let inv = inverseStd[ch]
                        var sumD: Float = 0, sumDZ: Float = 0
                        try normalized.withUnsafeScalars { z in
                            for i in 0..<n { let base = (i * c + ch) * inner
                                for j in 0..<inner { sumD += d[base + j]; sumDZ += d[base + j] * z[base + j] } }
                            dgamma[ch] = sumDZ; dbeta[ch] = sumD
                            for i in 0..<n { let base = (i * c + ch) * inner
                                for j in 0..<inner {
                                    dx[base + j] = g * inv * (d[base + j] - sumD / count - z[base + j] * sumDZ / count)
                                } }
                            if !inv.isFinite { throw NetworkError("BatchNormalization: non-finite statistics") }
                        }
                    } else {
                        let inv = 1 / (variance.scalars[ch] + epsilon).squareRoot(), m = mean.scalars[ch]
                        var sumD: Float = 0, sumDZ: Float = 0
                        for i in 0..<n { let base = (i * c + ch) * inner
                            for j in 0..<inner {
                                sumD += d[base + j]; sumDZ += d[base + j] * (xp[base + j] - m) * inv
                                dx[base + j] = g * inv * d[base + j]
                            } }
                        dgamma[ch] = sumDZ; dbeta[ch] = sumD
                    }
                }
            }
        }
        return (Tensor(checkedShape: x.shape, scalars: dx), Tensor(checkedShape: scale.shape, scalars: dgamma),
                Tensor(checkedShape: scale.shape, scalars: dbeta))
    }
}
