/// Float depthwise convolution (one filter per channel, groups = channels = output channels:
/// MobileNetV2's 3×3 layers), one NCHW plane at a time, forward and backward. The grouped
/// im2col + GEMM path spent most of MobileNetV2's float inference building one-row GEMMs; here
/// each output row is a few multiply-adds over a zero-padded copy of the plane (forward), or
/// over each tap's clipped column range (backward). `planeReference` beside it is the plain form.
public enum DepthwiseFloat {
    /// The output columns `ox` whose input column ox·sw − padLeft + kx·dw lies inside the row.
    @inline(__always)
    static func columns(_ g: ConvGeometry, kx: Int) -> Range<Int> {
        let shift = kx * g.dilationWidth - g.padLeft, sw = g.strideWidth
        let lo = shift >= 0 ? 0 : (-shift + sw - 1) / sw
        let hi = Swift.min(g.outputWidth, g.width - 1 - shift < 0 ? 0 : (g.width - 1 - shift) / sw + 1)
        return lo..<Swift.max(lo, hi)
    }

    /// Floats of the zero-padded plane `plane` works in.
    public static func scratchSize(_ g: ConvGeometry) -> Int {
        (g.height + g.padTop + g.padBottom) * (g.width + g.padLeft + g.padRight)
    }

    /// One plane: out = Σ taps w·x (+ bias, then ReLU when asked). `x` is H×W, `w` kh×kw, `out`
    /// Hout×Wout; `scratch` (`scratchSize` floats) takes the zero-padded plane, so every tap reads
    /// inside it. 3×3 kernels take all nine taps per output pixel in one pass over the row.
    public static func plane(_ x: UnsafePointer<Float>, _ g: ConvGeometry, weights w: UnsafePointer<Float>, bias: Float, relu: Bool,
                             scratch: UnsafeMutablePointer<Float>, output out: UnsafeMutablePointer<Float>) {
        let oh = g.outputHeight, ow = g.outputWidth, sh = g.strideHeight, sw = g.strideWidth
        let pw = g.width + g.padLeft + g.padRight, ph = g.height + g.padTop + g.padBottom
        scratch.update(repeating: 0, count: g.padTop * pw)
        for y in 0..<g.height {
            let row = scratch + (g.padTop + y) * pw
            row.update(repeating: 0, count: g.padLeft)
            (row + g.padLeft).update(from: x + y * g.width, count: g.width)
            (row + g.padLeft + g.width).update(repeating: 0, count: g.padRight)
        }
        (scratch + (g.padTop + g.height) * pw).update(repeating: 0, count: (ph - g.padTop - g.height) * pw)
        let p = UnsafePointer(scratch)
        if g.kernelHeight == 3 && g.kernelWidth == 3 && g.dilationHeight == 1 && g.dilationWidth == 1 {
            let (w0, w1, w2, w3, w4, w5, w6, w7, w8) = (w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8])
            for oy in 0..<oh {
                let r0 = p + oy * sh * pw, r1 = r0 + pw, r2 = r1 + pw
                let o = out + oy * ow
                if sw == 1 {
                    for ox in 0..<ow {
                        var acc = bias + w0 * r0[ox] + w1 * r0[ox + 1] + w2 * r0[ox + 2]
                        acc += w3 * r1[ox] + w4 * r1[ox + 1] + w5 * r1[ox + 2]
                        acc += w6 * r2[ox] + w7 * r2[ox + 1] + w8 * r2[ox + 2]
                        o[ox] = relu ? Swift.max(acc, 0) : acc
                    }
                } else {
                    for ox in 0..<ow {
                        let c = ox * sw
                        var acc = bias + w0 * r0[c] + w1 * r0[c + 1] + w2 * r0[c + 2]
                        acc += w3 * r1[c] + w4 * r1[c + 1] + w5 * r1[c + 2]
                        acc += w6 * r2[c] + w7 * r2[c + 1] + w8 * r2[c + 2]
                        o[ox] = relu ? Swift.max(acc, 0) : acc
                    }
                }
            }
            return
        }
        for oy in 0..<oh {
            let o = out + oy * ow
            o.update(repeating: bias, count: ow)
            for ky in 0..<g.kernelHeight {
                for kx in 0..<g.kernelWidth {
                    let wv = w[ky * g.kernelWidth + kx]
                    let src = p + (oy * sh + ky * g.dilationHeight) * pw + kx * g.dilationWidth
                    for ox in 0..<ow { o[ox] += wv * src[ox * sw] }
                }
            }
            if relu { for ox in 0..<ow { o[ox] = Swift.max(o[ox], 0) } }
        }
    }

    /// One plane's gradients given dy (Hout×Wout): dx += Σ taps w·dy scattered back (when `dx`
    /// is given), and dw[tap] += Σ dy·x.
    public static func planeGradients(_ x: UnsafePointer<Float>, _ g: ConvGeometry, weights w: UnsafePointer<Float>,
                                      outputGradient dy: UnsafePointer<Float>, inputGradient dx: UnsafeMutablePointer<Float>?,
                                      weightGradient dw: UnsafeMutablePointer<Float>) {
        let oh = g.outputHeight, ow = g.outputWidth, sw = g.strideWidth
        let ranges = (0..<g.kernelWidth).map { columns(g, kx: $0) }
        for oy in 0..<oh {
            let d = dy + oy * ow
            for ky in 0..<g.kernelHeight {
                let iy = oy * g.strideHeight - g.padTop + ky * g.dilationHeight
                if iy < 0 || iy >= g.height { continue }
                let src = x + iy * g.width
                for kx in 0..<g.kernelWidth {
                    let tap = ky * g.kernelWidth + kx, shift = kx * g.dilationWidth - g.padLeft
                    let wv = w[tap], r = ranges[kx]
                    var acc: Float = 0
                    for ox in r { acc += d[ox] * src[ox * sw + shift] }
                    dw[tap] += acc
                    if let dx {
                        let back = dx + iy * g.width
                        for ox in r { back[ox * sw + shift] += wv * d[ox] }
                    }
                }
            }
        }
    }

    /// The plain form: every output pixel summing its taps, padding read as zeros.
    public static func planeReference(_ x: UnsafePointer<Float>, _ g: ConvGeometry, weights w: UnsafePointer<Float>, bias: Float, relu: Bool,
                                      output out: UnsafeMutablePointer<Float>) {
        for oy in 0..<g.outputHeight {
            for ox in 0..<g.outputWidth {
                var acc = bias
                for ky in 0..<g.kernelHeight {
                    for kx in 0..<g.kernelWidth {
                        let iy = oy * g.strideHeight - g.padTop + ky * g.dilationHeight
                        let ix = ox * g.strideWidth - g.padLeft + kx * g.dilationWidth
                        if iy >= 0 && iy < g.height && ix >= 0 && ix < g.width { acc += w[ky * g.kernelWidth + kx] * x[iy * g.width + ix] }
                    }
                }
                out[oy * g.outputWidth + ox] = relu ? Swift.max(acc, 0) : acc
            }
        }
    }
}
