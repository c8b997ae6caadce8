import CKernels

/// Max pooling over channels-last pixels, one row of windows at a time: each window's maximum
/// taken tap by tap, row by row from its first pixel, a tap that is larger or NaN replacing it
/// (the float plan's pooling steps and its fused poolings share this order).
public enum WindowMaximum {
    /// For `count` windows of kh × kw pixels: window j's first pixel at `first` + j·`windowStep`,
    /// its tap (u, v) `u`·`rowStep` + `v`·`pixelStep` floats further; the maxima of `channels`
    /// channels go to `dst` + j·`dstStep`.
    public static func row(_ first: UnsafePointer<Float>, count: Int, windowStep: Int, kh: Int, kw: Int, rowStep: Int, pixelStep: Int,
                           channels: Int, into dst: UnsafeMutablePointer<Float>, dstStep: Int) {
        if kh == 2 && kw == 2 {
            row2x2(first, count: count, windowStep: windowStep, rowStep: rowStep, pixelStep: pixelStep, channels: channels, into: dst, dstStep: dstStep)
            return
        }
        for j in 0..<count {
            window(first + j * windowStep, kh: kh, kw: kw, rowStep: rowStep, pixelStep: pixelStep, channels: channels, into: dst + j * dstStep)
        }
    }

    /// 2×2 windows (a halving pool) as a tree — the first two taps, the last two, then the two
    /// maxima — which gives what tap order gives: the first of the largest, or the last NaN.
    static func row2x2(_ first: UnsafePointer<Float>, count: Int, windowStep: Int, rowStep: Int, pixelStep: Int,
                       channels: Int, into dst: UnsafeMutablePointer<Float>, dstStep: Int) {
        @inline(__always) func load(_ p: UnsafePointer<Float>) -> SIMD16<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self) }
        @inline(__always) func pick(_ m: SIMD16<Float>, _ x: SIMD16<Float>) -> SIMD16<Float> { m.replacing(with: x, where: (x .> m) .| (x .!= x)) }
        @inline(__always) func pick(_ m: Float, _ x: Float) -> Float { x > m || x != x ? x : m }
        let vectors = channels / 16 * 16
        for j in 0..<count {
            let src = first + j * windowStep, out = dst + j * dstStep
            let (p1, p2, p3) = (src + pixelStep, src + rowStep, src + rowStep + pixelStep)
            var c = 0
            while c < vectors {
                let m = pick(pick(load(src + c), load(p1 + c)), pick(load(p2 + c), load(p3 + c)))
                UnsafeMutableRawPointer(out + c).storeBytes(of: m, as: SIMD16<Float>.self)
                c += 16
            }
            while c < channels {
                out[c] = pick(pick(src[c], p1[c]), pick(p2[c], p3[c]))
                c += 1
            }
        }
    }

    @inline(__always)
    static func take(_ m: inout SIMD16<Float>, _ p: UnsafePointer<Float>) {
        let x = UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
        m.replace(with: x, where: (x .> m) .| (x .!= x))
    }

    @inline(__always)
    static func take(_ m: inout Float, _ x: Float) { if x > m || x != x { m = x } }

    @inline(__always)
    static func window(_ src: UnsafePointer<Float>, kh: Int, kw: Int, rowStep: Int, pixelStep: Int, channels: Int,
                       into dst: UnsafeMutablePointer<Float>) {
        var c = 0
        while c + 16 <= channels {
            var m = UnsafeRawPointer(src + c).loadUnaligned(as: SIMD16<Float>.self)
            for u in 0..<kh { for v in 0..<kw where u > 0 || v > 0 { take(&m, src + u * rowStep + v * pixelStep + c) } }
            UnsafeMutableRawPointer(dst + c).storeBytes(of: m, as: SIMD16<Float>.self)
            c += 16
        }
        while c < channels {
            var m = src[c]
            for u in 0..<kh { for v in 0..<kw where u > 0 || v > 0 { take(&m, src[u * rowStep + v * pixelStep + c]) } }
            dst[c] = m
            c += 1
        }
    }

    /// Max pooling of unsigned byte codes (the integer engine's, channels-last): for `count`
    /// windows of kh × kw pixels, window j's first pixel at `first` + j·`windowStep`, its tap
    /// (u, v) `u`·`rowStep` + `v`·`pixelStep` bytes further; the maxima of `channels` channels go
    /// to `dst` + j·`dstStep`. Taps past the image must read a border of zeros: zero is the least
    /// unsigned code, so they change no maximum (which a window with one tap inside always has).
    public static func unsignedRow(_ first: UnsafePointer<UInt8>, count: Int, windowStep: Int, kh: Int, kw: Int, rowStep: Int,
                                   pixelStep: Int, channels: Int, into dst: UnsafeMutablePointer<UInt8>, dstStep: Int) {
        mpq_window_max_u8(first, Int64(count), Int64(windowStep), Int64(kh), Int64(kw), Int64(rowStep), Int64(pixelStep),
                          Int64(channels), dst, Int64(dstStep))
    }
}
