import Kernels
import Tensors
import Runtime

/// Max and average pooling over NCHW planes, and global average pooling.
enum PoolOp {
    struct Geometry {
        let n: Int, c: Int, h: Int, w: Int, oh: Int, ow: Int
        let kh: Int, kw: Int, sh: Int, sw: Int, pt: Int, pl: Int, pb: Int, pr: Int
        /// Whether a position counts in an average's divisor: inside the input, or inside the
        /// padding when `includePad` (never past the padded input, where ceil mode's last
        /// window may hang).
        func counts(_ iy: Int, _ ix: Int, includePad: Bool) -> Bool {
            if iy >= 0 && iy < h && ix >= 0 && ix < w { return true }
            return includePad && iy >= -pt && iy < h + pb && ix >= -pl && ix < w + pr
        }
    }

    /// Output length along one axis; ceil mode drops a last window that would start past the
    /// input and its leading padding.
    static func outputLength(_ n: Int, kernel k: Int, stride s: Int, begin: Int, end: Int, ceil: Bool) -> Int {
        let span = n + begin + end - k
        guard span >= 0 else { return 0 }
        var out = (ceil ? (span + s - 1) / s : span / s) + 1
        if ceil, (out - 1) * s >= n + begin { out -= 1 }
        return out
    }

    static func geometry(_ x: Tensor, _ a: PoolAttributes) throws -> Geometry {
        guard x.rank == 4 else { throw NetworkError("pooling: expected input [N, C, H, W], found \(x.shape)") }
        guard a.kernel.count == 2, a.strides.count == 2, a.pads.count == 4,
              a.kernel.allSatisfy({ $0 > 0 }), a.strides.allSatisfy({ $0 > 0 }), a.pads.allSatisfy({ $0 >= 0 }) else {
            throw NetworkError("pooling: expected 2-D kernel, strides and pads, found \(a)")
        }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let oh = outputLength(h, kernel: a.kernel[0], stride: a.strides[0], begin: a.pads[0], end: a.pads[2], ceil: a.ceilMode)
        let ow = outputLength(w, kernel: a.kernel[1], stride: a.strides[1], begin: a.pads[1], end: a.pads[3], ceil: a.ceilMode)
        guard oh > 0, ow > 0 else { throw NetworkError("pooling: kernel \(a.kernel) does not fit input \(x.shape)") }
        do { _ = try Tensor.elementCount(of: [n, c, oh, ow]) } catch { throw NetworkError("pooling: output [\(n), \(c), \(oh), \(ow)]: \(error)") }
        return Geometry(n: n, c: c, h: h, w: w, oh: oh, ow: ow, kh: a.kernel[0], kw: a.kernel[1],
                        sh: a.strides[0], sw: a.strides[1], pt: a.pads[0], pl: a.pads[1], pb: a.pads[2], pr: a.pads[3])
    }

    /// Max pooling; also returns, per output, the flat in-plane index of the input it took.
    static func maxForward(_ x: Tensor, _ a: PoolAttributes) throws -> (Tensor, [Int32]) {
        let g = try geometry(x, a)
        let planes = g.n * g.c, outPlane = g.oh * g.ow
        var out = [Float](repeating: 0, count: planes * outPlane)
        var arg = [Int32](repeating: 0, count: planes * outPlane)
        x.withUnsafeScalars { xp in
            out.withUnsafeMutableBufferPointer { op in
                arg.withUnsafeMutableBufferPointer { ap in
                    let (xb, ob, ab) = (xp.baseAddress!, op.baseAddress!, ap.baseAddress!)
                    let unpadded = a.pads.allSatisfy { $0 == 0 } && (g.oh - 1) * g.sh + g.kh <= g.h && (g.ow - 1) * g.sw + g.kw <= g.w
                    let halving = unpadded && g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2
                    Parallel.forEach(planes) { p, _ in
                        let src = xb + p * g.h * g.w
                        let o = ob + p * outPlane, ai = ab + p * outPlane
                        if halving { halvingPlane(src, g, o, ai); return }
                        for y in 0..<g.oh {
                            for xx in 0..<g.ow {
                                var best = -Float.infinity, bestIndex = -1
                                if unpadded {
                                    // Every window lies inside the image: no bounds tests.
                                    let y0 = y * g.sh, x0 = xx * g.sw
                                    bestIndex = y0 * g.w + x0; best = src[bestIndex]
                                    for u in 0..<g.kh {
                                        let row = (y0 + u) * g.w + x0
                                        for v in 0..<g.kw where src[row + v] > best || (src[row + v].isNaN && !best.isNaN) {
                                            best = src[row + v]; bestIndex = row + v
                                        }
                                    }
                                } else {
                                    for u in 0..<g.kh {
                                        let iy = y * g.sh - g.pt + u
                                        if iy < 0 || iy >= g.h { continue }
                                        for v in 0..<g.kw {
                                            let ix = xx * g.sw - g.pl + v
                                            if ix < 0 || ix >= g.w { continue }
                                            let val = src[iy * g.w + ix]
                                            // NaN propagates, as in PyTorch.
                                            if bestIndex < 0 || val > best || (val.isNaN && !best.isNaN) { best = val; bestIndex = iy * g.w + ix }
                                        }
                                    }
                                }
                                o[y * g.ow + xx] = best; ai[y * g.ow + xx] = Int32(max(bestIndex, 0))
                            }
                        }
                    }
                }
            }
        }
        return (Tensor(checkedShape: [g.n, g.c, g.oh, g.ow], scalars: out), arg)
    }

    /// 2×2, stride-2 max pooling of one plane (every window inside it) with its argmax, eight
    /// outputs at a time and no branch on the data: the scalar loop's choice exactly — the window's
    /// taps in row order, a later tap taking over only when greater, or NaN over a number. Eight
    /// outputs along one row read two rows of sixteen inputs; others (row ends, rows narrower than
    /// eight) gather each lane's four taps.
    static func halvingPlane(_ src: UnsafePointer<Float>, _ g: Geometry, _ o: UnsafeMutablePointer<Float>, _ ai: UnsafeMutablePointer<Int32>) {
        let total = g.oh * g.ow, w = g.w
        let lanes = SIMD8<Int32>(0, 2, 4, 6, 8, 10, 12, 14)
        let raw = UnsafeRawPointer(src)
        var (k, y, x) = (0, 0, 0)
        while k < total {
            var a: SIMD8<Float>, b: SIMD8<Float>, c: SIMD8<Float>, d: SIMD8<Float>, at: SIMD8<Int32>
            let n: Int
            if x + 8 <= g.ow {
                let first = 2 * y * w + 2 * x
                let top = raw.loadUnaligned(fromByteOffset: 4 * first, as: SIMD16<Float>.self)
                let bottom = raw.loadUnaligned(fromByteOffset: 4 * (first + w), as: SIMD16<Float>.self)
                (a, b, c, d) = (top.evenHalf, top.oddHalf, bottom.evenHalf, bottom.oddHalf)
                at = lanes &+ Int32(first)
                n = 8; x += 8
            } else {
                n = min(8, total - k)
                (a, b, c, d, at) = (.init(), .init(), .init(), .init(), .init())
                for lane in 0..<8 {
                    // Lanes past the last output repeat it (not stored).
                    let i = 2 * y * w + 2 * x
                    a[lane] = src[i]; b[lane] = src[i + 1]; c[lane] = src[i + w]; d[lane] = src[i + w + 1]; at[lane] = Int32(i)
                    if lane < n - 1 { x += 1; if x == g.ow { (x, y) = (0, y + 1) } }
                }
                x += 1; if x == g.ow { (x, y) = (0, y + 1) }
            }
            if x == g.ow { (x, y) = (0, y + 1) }
            var best = a, index = at
            @inline(__always) func consider(_ v: SIMD8<Float>, _ i: SIMD8<Int32>) {
                let take = (v .> best) .| (.!(v .== v) .& (best .== best))
                best.replace(with: v, where: take); index.replace(with: i, where: take)
            }
            consider(b, at &+ 1)
            consider(c, at &+ Int32(w))
            consider(d, at &+ Int32(w + 1))
            if n == 8 {
                UnsafeMutableRawPointer(o + k).storeBytes(of: best, as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(ai + k).storeBytes(of: index, as: SIMD8<Int32>.self)
            } else {
                for lane in 0..<n { o[k + lane] = best[lane]; ai[k + lane] = index[lane] }
            }
            k += n
        }
    }

    /// The larger lane by lane, NaN over a number (as max pooling propagates NaN).
    @inline(__always)
    static func greater(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { a.replacing(with: b, where: (b .> a) .| .!(b .== b)) }
    @inline(__always)
    static func greater(_ a: Float, _ b: Float) -> Float { b > a || b.isNaN ? b : a }

    /// Max pooling without indices (inference). 2×2 windows with stride 2 and no padding, the
    /// common case, take 16 outputs per step from two input rows.
    static func maxValues(_ x: Tensor, _ a: PoolAttributes) throws -> Tensor {
        let g = try geometry(x, a)
        // Ceil mode's last window may hang past the input: only whole windows take the fast path.
        guard g.kh == 2, g.kw == 2, g.sh == 2, g.sw == 2, a.pads.allSatisfy({ $0 == 0 }), 2 * g.oh <= g.h, 2 * g.ow <= g.w else {
            return try maxForward(x, a).0
        }
        let planes = g.n * g.c, outPlane = g.oh * g.ow
        var out = [Float](repeating: 0, count: planes * outPlane)
        x.withUnsafeScalars { xp in
            out.withUnsafeMutableBufferPointer { op in
                let (xb, ob) = (xp.baseAddress!, op.baseAddress!)
                Parallel.forEach(planes) { p, _ in
                    let src = xb + p * g.h * g.w, dst = ob + p * outPlane
                    for y in 0..<g.oh {
                        let r0 = UnsafeRawPointer(src + 2 * y * g.w), r1 = UnsafeRawPointer(src + (2 * y + 1) * g.w)
                        let o = dst + y * g.ow
                        var xx = 0
                        while xx + 16 <= g.ow {
                            let top = r0.loadUnaligned(fromByteOffset: 8 * xx, as: SIMD32<Float>.self)
                            let bottom = r1.loadUnaligned(fromByteOffset: 8 * xx, as: SIMD32<Float>.self)
                            let m = greater(greater(top.evenHalf, top.oddHalf), greater(bottom.evenHalf, bottom.oddHalf))
                            UnsafeMutableRawPointer(o + xx).storeBytes(of: m, as: SIMD16<Float>.self)
                            xx += 16
                        }
                        let a0 = src + 2 * y * g.w, a1 = src + (2 * y + 1) * g.w
                        while xx < g.ow {
                            o[xx] = greater(greater(a0[2 * xx], a0[2 * xx + 1]), greater(a1[2 * xx], a1[2 * xx + 1]))
                            xx += 1
                        }
                    }
                }
            }
        }
        return Tensor(checkedShape: [g.n, g.c, g.oh, g.ow], scalars: out)
    }

    /// Routes each output gradient (or tangent, read from the input's tangent) through argmax.
    /// Planes in parallel: each plane's outputs scatter into its own input plane.
    static func maxBackward(inputShape: [Int], _ argmax: [Int32], _ dy: Tensor) -> Tensor {
        let plane = inputShape[2] * inputShape[3], outPlane = dy.shape[2] * dy.shape[3]
        var dx = [Float](repeating: 0, count: inputShape.reduce(1, *))
        dy.withUnsafeScalars { d in
            argmax.withUnsafeBufferPointer { am in
                dx.withUnsafeMutableBufferPointer { dxp in
                    let (db, ab, xb) = (d.baseAddress!, am.baseAddress!, dxp.baseAddress!)
                    Parallel.forEach(d.count / max(outPlane, 1)) { p, _ in
                        let x = xb + p * plane
                        for i in (p * outPlane)..<((p + 1) * outPlane) { x[Int(ab[i])] += db[i] }
                    }
                }
            }
        }
        return Tensor(checkedShape: inputShape, scalars: dx)
    }

    static func maxTangent(_ argmax: [Int32], outputShape: [Int], _ dx: Tensor) -> Tensor {
        let plane = dx.shape[2] * dx.shape[3], outPlane = outputShape[2] * outputShape[3]
        var out = [Float](repeating: 0, count: argmax.count)
        dx.withUnsafeScalars { d in
            for i in 0..<argmax.count { out[i] = d[(i / outPlane) * plane + Int(argmax[i])] }
        }
        return Tensor(checkedShape: outputShape, scalars: out)
    }

    /// Average pooling (forward, and with `adjoint` the backward map of dY onto dX).
    static func average(_ x: Tensor, _ a: PoolAttributes) throws -> Tensor {
        let g = try geometry(x, a)
        var out = [Float](repeating: 0, count: g.n * g.c * g.oh * g.ow)
        x.withUnsafeScalars { xp in
            for p in 0..<(g.n * g.c) {
                for y in 0..<g.oh {
                    for xx in 0..<g.ow {
                        var s: Float = 0, count = 0
                        for u in 0..<g.kh {
                            let iy = y * g.sh - g.pt + u
                            for v in 0..<g.kw {
                                let ix = xx * g.sw - g.pl + v
                                if iy < 0 || iy >= g.h || ix < 0 || ix >= g.w { if g.counts(iy, ix, includePad: a.countIncludePad) { count += 1 }; continue }
                                s += xp[p * g.h * g.w + iy * g.w + ix]; count += 1
                            }
                        }
                        out[(p * g.oh + y) * g.ow + xx] = count > 0 ? s / Float(count) : 0
                    }
                }
            }
        }
        return Tensor(checkedShape: [g.n, g.c, g.oh, g.ow], scalars: out)
    }

    static func averageBackward(_ x: Tensor, _ a: PoolAttributes, _ dy: Tensor) throws -> Tensor {
        let g = try geometry(x, a)
        var dx = [Float](repeating: 0, count: x.count)
        dy.withUnsafeScalars { d in
            for p in 0..<(g.n * g.c) {
                for y in 0..<g.oh {
                    for xx in 0..<g.ow {
                        var count = 0
                        for u in 0..<g.kh {
                            let iy = y * g.sh - g.pt + u
                            for v in 0..<g.kw {
                                let ix = xx * g.sw - g.pl + v
                                if g.counts(iy, ix, includePad: a.countIncludePad) { count += 1 }
                            }
                        }
                        guard count > 0 else { continue }
                        let share = d[(p * g.oh + y) * g.ow + xx] / Float(count)
                        for u in 0..<g.kh {
                            let iy = y * g.sh - g.pt + u
                            if iy < 0 || iy >= g.h { continue }
                            for v in 0..<g.kw {
                                let ix = xx * g.sw - g.pl + v
                                if ix >= 0 && ix < g.w { dx[p * g.h * g.w + iy * g.w + ix] += share }
                            }
                        }
                    }
                }
            }
        }
        return Tensor(checkedShape: x.shape, scalars: dx)
    }

    static func globalAverage(_ x: Tensor) throws -> Tensor {
        guard x.rank == 4 else { throw NetworkError("GlobalAveragePool: expected [N, C, H, W], found \(x.shape)") }
        let plane = x.shape[2] * x.shape[3], planes = x.shape[0] * x.shape[1]
        var out = [Float](repeating: 0, count: planes)
        x.withUnsafeScalars { xp in
            for p in 0..<planes {
                var s: Float = 0
                for i in 0..<plane { s += xp[p * plane + i] }
                out[p] = s / Float(plane)
            }
        }
        return Tensor(checkedShape: [x.shape[0], x.shape[1], 1, 1], scalars: out)
    }

    static func globalAverageBackward(inputShape: [Int], _ dy: Tensor) -> Tensor {
        let plane = inputShape[2] * inputShape[3]
        var dx = [Float](repeating: 0, count: inputShape.reduce(1, *))
        dy.withUnsafeScalars { d in
            for p in 0..<d.count {
                let share = d[p] / Float(plane)
                for i in 0..<plane { dx[p * plane + i] = share }
            }
        }
        return Tensor(checkedShape: inputShape, scalars: dx)
    }
}
