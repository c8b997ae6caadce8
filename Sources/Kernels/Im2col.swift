/// The geometry of a 2-D convolution (one image, NCHW).
public struct ConvGeometry: Hashable, Sendable {
    public var channels: Int, height: Int, width: Int
    public var kernelHeight: Int, kernelWidth: Int
    public var strideHeight: Int = 1, strideWidth: Int = 1
    public var padTop: Int = 0, padLeft: Int = 0, padBottom: Int = 0, padRight: Int = 0
    public var dilationHeight: Int = 1, dilationWidth: Int = 1

    public init(channels: Int, height: Int, width: Int, kernelHeight: Int, kernelWidth: Int,
                stride: (Int, Int) = (1, 1), padding: (top: Int, left: Int, bottom: Int, right: Int) = (0, 0, 0, 0),
                dilation: (Int, Int) = (1, 1)) {
        self.channels = channels; self.height = height; self.width = width
        self.kernelHeight = kernelHeight; self.kernelWidth = kernelWidth
        (strideHeight, strideWidth) = stride
        (padTop, padLeft, padBottom, padRight) = padding
        (dilationHeight, dilationWidth) = dilation
    }

    public var outputHeight: Int {
        (height + padTop + padBottom - dilationHeight * (kernelHeight - 1) - 1) / strideHeight + 1
    }
    public var outputWidth: Int {
        (width + padLeft + padRight - dilationWidth * (kernelWidth - 1) - 1) / strideWidth + 1
    }
    /// Rows of the column matrix: channels · kh · kw.
    public var patchSize: Int { channels * kernelHeight * kernelWidth }
    /// Columns of the column matrix: Hout · Wout.
    public var outputPixels: Int { outputHeight * outputWidth }
    /// Whether every size is positive and the output non-empty.
    public var isValid: Bool {
        channels > 0 && height > 0 && width > 0 && kernelHeight > 0 && kernelWidth > 0
            && strideHeight > 0 && strideWidth > 0 && dilationHeight > 0 && dilationWidth > 0
            && min(padTop, padLeft, padBottom, padRight) >= 0 && outputHeight > 0 && outputWidth > 0
    }
}

/// im2col: lays out every receptive field of an image as a column, so a convolution becomes
/// W[Cout × C·kh·kw] · col[C·kh·kw × Hout·Wout]. Row `(c·kh + u)·kw + v` of the result holds
/// input pixel (c, y·sh − pt + u·dh, x·sw − pl + v·dw) for output pixel (y, x), or `padding`
/// where that falls outside the image (0 for floats, the zero point for quantized codes).
/// Groups: call once per group with `input` offset to the group's first channel.
public enum Im2col {
    /// `rowStride` (≥ Hout·Wout) lets several images' columns sit side by side in one matrix.
    @inlinable
    public static func im2col<T>(_ input: UnsafePointer<T>, geometry g: ConvGeometry, padding: T,
                                 into col: UnsafeMutablePointer<T>, rowStride: Int? = nil) {
        let oh = g.outputHeight, ow = g.outputWidth, pixels = rowStride ?? oh * ow
        if g.kernelHeight == 1 && g.kernelWidth == 1 && g.strideHeight == 1 && g.strideWidth == 1
            && g.padTop == 0 && g.padLeft == 0 && g.padBottom == 0 && g.padRight == 0 {
            // A 1×1 convolution's columns are its input planes.
            for c in 0..<g.channels { (col + c * pixels).update(from: input + c * g.height * g.width, count: oh * ow) }
            return
        }
        var row = 0
        for c in 0..<g.channels {
            let plane = input + c * g.height * g.width
            for u in 0..<g.kernelHeight {
                for v in 0..<g.kernelWidth {
                    let out = col + row * pixels
                    let dx = v * g.dilationWidth - g.padLeft
                    // Output columns x whose input column x·sw + dx lies inside [0, width).
                    let xLo = dx >= 0 ? 0 : min(ow, (-dx + g.strideWidth - 1) / g.strideWidth)
                    let xHi = max(xLo, min(ow, g.width - dx <= 0 ? 0 : (g.width - dx - 1) / g.strideWidth + 1))
                    // Rows are short (7–28 pixels here): plain loops, which LLVM vectorises,
                    // beat a memmove call per row by a wide margin.
                    for y in 0..<oh {
                        let iy = y * g.strideHeight + u * g.dilationHeight - g.padTop
                        let o = out + y * ow
                        if iy < 0 || iy >= g.height {
                            for x in 0..<ow { o[x] = padding }
                            continue
                        }
                        let src = plane + iy * g.width + dx
                        for x in 0..<xLo { o[x] = padding }
                        if g.strideWidth == 1 {
                            for x in xLo..<xHi { o[x] = src[x] }
                        } else {
                            for x in xLo..<xHi { o[x] = src[x * g.strideWidth] }
                        }
                        for x in xHi..<ow { o[x] = padding }
                    }
                    row += 1
                }
            }
        }
    }

    /// col2im, the adjoint of im2col: adds every column entry back onto the input pixel it was
    /// read from (padding entries are dropped). `image` is accumulated into, not overwritten —
    /// the gradient of a convolution's input.
    @inlinable
    public static func col2im(_ col: UnsafePointer<Float>, geometry g: ConvGeometry, addingInto image: UnsafeMutablePointer<Float>) {
        let oh = g.outputHeight, ow = g.outputWidth, pixels = oh * ow
        var row = 0
        for c in 0..<g.channels {
            let plane = image + c * g.height * g.width
            for u in 0..<g.kernelHeight {
                for v in 0..<g.kernelWidth {
                    let src = col + row * pixels
                    let dx = v * g.dilationWidth - g.padLeft
                    let xLo = dx >= 0 ? 0 : min(ow, (-dx + g.strideWidth - 1) / g.strideWidth)
                    let xHi = max(xLo, min(ow, g.width - dx <= 0 ? 0 : (g.width - dx - 1) / g.strideWidth + 1))
                    for y in 0..<oh {
                        let iy = y * g.strideHeight + u * g.dilationHeight - g.padTop
                        if iy < 0 || iy >= g.height { continue }
                        let dst = plane + iy * g.width + dx, s = src + y * ow
                        for x in xLo..<xHi { dst[x * g.strideWidth] += s[x] }
                    }
                    row += 1
                }
            }
        }
    }

    /// The oracle: element by element, bounds checked.
    public static func reference<T>(_ input: UnsafePointer<T>, geometry g: ConvGeometry, padding: T,
                                    into col: UnsafeMutablePointer<T>) {
        let oh = g.outputHeight, ow = g.outputWidth
        for c in 0..<g.channels {
            for u in 0..<g.kernelHeight {
                for v in 0..<g.kernelWidth {
                    let row = (c * g.kernelHeight + u) * g.kernelWidth + v
                    for y in 0..<oh {
                        for x in 0..<ow {
                            let iy = y * g.strideHeight + u * g.dilationHeight - g.padTop
                            let ix = x * g.strideWidth + v * g.dilationWidth - g.padLeft
                            let inside = iy >= 0 && iy < g.height && ix >= 0 && ix < g.width
                            col[row * oh * ow + y * ow + x] = inside ? input[(c * g.height + iy) * g.width + ix] : padding
                        }
                    }
                }
            }
        }
    }
}
