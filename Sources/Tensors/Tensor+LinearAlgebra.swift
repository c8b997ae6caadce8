import Kernels

extension Tensor {
    /// Matrix product through `SGEMM`. Shapes [m, k] @ [k, n] → [m, n]; a rank-1 left operand
    /// is a row vector and a rank-1 right operand a column vector (the result drops that axis).
    public func matmul(_ other: Tensor, threads: Int = Parallel.defaultThreads) throws -> Tensor {
        guard (1...2).contains(rank), (1...2).contains(other.rank) else {
            throw TensorError.shapeMismatch(operation: "matmul", expected: "rank-1 or rank-2 operands",
                                            found: "\(shape) and \(other.shape)")
        }
        let (m, k) = rank == 2 ? (shape[0], shape[1]) : (1, shape[0])
        let (k2, n) = other.rank == 2 ? (other.shape[0], other.shape[1]) : (other.shape[0], 1)
        guard k == k2 else {
            throw TensorError.shapeMismatch(operation: "matmul", expected: "inner dimensions to agree",
                                            found: "\(shape) @ \(other.shape)")
        }
        let count = try Tensor.elementCount(of: [m, n])
        var out = [Float](repeating: 0, count: count)
        SGEMM.multiply(m: m, n: n, k: k, a: scalars, lda: Swift.max(k, 1), b: other.scalars, ldb: Swift.max(n, 1),
                       c: &out, ldc: Swift.max(n, 1), threads: threads)
        var s: [Int] = []
        if rank == 2 { s.append(m) }
        if other.rank == 2 { s.append(n) }
        return Tensor(uncheckedShape: s, scalars: out)
    }

    /// The transpose of a rank-2 tensor.
    public func transposed() throws -> Tensor {
        guard rank == 2 else {
            throw TensorError.shapeMismatch(operation: "transpose", expected: "a rank-2 tensor", found: "\(shape)")
        }
        let (r, c) = (shape[0], shape[1])
        var out = [Float](repeating: 0, count: count)
        for i in 0..<r { for j in 0..<c { out[j * r + i] = scalars[i * c + j] } }
        return Tensor(uncheckedShape: [c, r], scalars: out)
    }

    /// 2-D convolution (cross-correlation, as PyTorch and ONNX define it) of an NCHW input with
    /// weights [Cout, Cin/groups, kh, kw] and an optional bias [Cout]: im2col per image and
    /// group, then `SGEMM`. Images are spread across threads.
    public static func conv2d(_ input: Tensor, weight: Tensor, bias: Tensor? = nil,
                              stride: (Int, Int) = (1, 1), padding: (Int, Int, Int, Int) = (0, 0, 0, 0),
                              dilation: (Int, Int) = (1, 1), groups: Int = 1,
                              threads: Int = Parallel.defaultThreads) throws -> Tensor {
        guard input.rank == 4 else {
            throw TensorError.shapeMismatch(operation: "conv2d", expected: "input [N, C, H, W]", found: "\(input.shape)")
        }
        guard weight.rank == 4 else {
            throw TensorError.shapeMismatch(operation: "conv2d", expected: "weight [Cout, Cin/groups, kh, kw]",
                                            found: "\(weight.shape)")
        }
        let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let (cout, cg, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
        guard groups >= 1, c % groups == 0, cout % groups == 0, cg == c / groups else {
            throw TensorError.shapeMismatch(operation: "conv2d", expected: "weight [\(cout), \(groups > 0 ? c / groups : 0), kh, kw] for \(c) input channels in \(groups) groups",
                                            found: "\(weight.shape)")
        }
        if let b = bias, b.shape != [cout] {
            throw TensorError.shapeMismatch(operation: "conv2d", expected: "bias [\(cout)]", found: "\(b.shape)")
        }
        let g = ConvGeometry(channels: cg, height: h, width: w, kernelHeight: kh, kernelWidth: kw,
                             stride: stride, padding: (padding.0, padding.1, padding.2, padding.3), dilation: dilation)
        guard g.isValid else {
            throw TensorError.invalidArgument(
                "conv2d: no output for input \(input.shape), kernel \(kh)×\(kw), stride \(stride), padding \(padding), dilation \(dilation)")
        }
        let oh = g.outputHeight, ow = g.outputWidth, pixels = oh * ow
        let outShape = [n, cout, oh, ow]
        let total = try elementCount(of: outShape)
        _ = try elementCount(of: [g.patchSize, pixels])
        var out = [Float](repeating: 0, count: total)
        let coutG = cout / groups
        let pointwise = kh == 1 && kw == 1 && g.strideHeight == 1 && g.strideWidth == 1
            && padding == (0, 0, 0, 0)
        // Images in parallel, each GEMM on one thread: no synchronisation inside a layer.
        let workers = Swift.min(threads, Swift.max(n, 1))
        let columnCount = pointwise ? 1 : g.patchSize * pixels
        let columns = (0..<workers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: columnCount) }
        defer { columns.forEach { $0.deallocate() } }
        input.scalars.withUnsafeBufferPointer { x in
            weight.scalars.withUnsafeBufferPointer { wt in
                out.withUnsafeMutableBufferPointer { o in
                    Parallel.forEach(n, threads: workers) { img, worker in
                        for grp in 0..<groups {
                            let src = x.baseAddress! + (img * c + grp * cg) * h * w
                            let dst = o.baseAddress! + (img * cout + grp * coutG) * pixels
                            if !pointwise { Im2col.im2col(src, geometry: g, padding: 0, into: columns[worker]) }
                            SGEMM.multiply(m: coutG, n: pixels, k: g.patchSize,
                                           a: wt.baseAddress! + grp * coutG * g.patchSize, lda: g.patchSize,
                                           b: pointwise ? src : UnsafePointer(columns[worker]), ldb: pixels,
                                           c: dst, ldc: pixels, threads: 1)
                        }
                    }
                }
            }
        }
        if let b = bias {
            for img in 0..<n {
                for co in 0..<cout {
                    let v = b.scalars[co], base = (img * cout + co) * pixels
                    for p in 0..<pixels { out[base + p] += v }
                }
            }
        }
        return Tensor(uncheckedShape: outShape, scalars: out)
    }
}
