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
    /// weights [Cout, Cin/groups, kh, kw] and an optional bias [Cout], optionally followed by a
    /// ReLU in the same pass over the output.
    public static func conv2d(_ input: Tensor, weight: Tensor, bias: Tensor? = nil,
                              stride: (Int, Int) = (1, 1), padding: (Int, Int, Int, Int) = (0, 0, 0, 0),
                              dilation: (Int, Int) = (1, 1), groups: Int = 1, relu: Bool = false,
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
        if n == 0 { return Tensor(uncheckedShape: outShape, scalars: out) }
        let coutG = cout / groups, k = g.patchSize
        if DirectConv.applies(g, outputChannels: cout, groups: groups) {
            let packed = weight.scalars.withUnsafeBufferPointer {
                DirectConv.packWeights($0.baseAddress!, outputChannels: cout, inputChannels: c)
            }
            let biasValues = bias?.scalars ?? [Float](repeating: 0, count: cout)
            let blocks = cout / DirectConv.block
            if n < threads && blocks >= 2 {
                // Fewer images than threads (batch 1): pad each image once, then split its
                // output-channel blocks across the threads.
                let workers = Swift.min(threads, blocks)
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: DirectConv.scratchSize(g))
                defer { scratch.deallocate() }
                input.scalars.withUnsafeBufferPointer { x in
                    packed.withUnsafeBufferPointer { wp in
                        biasValues.withUnsafeBufferPointer { bp in
                            out.withUnsafeMutableBufferPointer { o in
                                for img in 0..<n {
                                    DirectConv.pad(x.baseAddress! + img * c * h * w, geometry: g, into: scratch)
                                    Parallel.forEach(workers, threads: workers) { part, _ in
                                        DirectConv.forward(padded: scratch, geometry: g, packedWeights: wp.baseAddress!, bias: bp.baseAddress!,
                                                           blocks: (part * blocks / workers)..<((part + 1) * blocks / workers), relu: relu,
                                                           output: o.baseAddress! + img * cout * pixels)
                                    }
                                }
                            }
                        }
                    }
                }
                return Tensor(uncheckedShape: outShape, scalars: out)
            }
            let workers = Swift.min(threads, n)
            let scratch = (0..<workers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: DirectConv.scratchSize(g)) }
            defer { scratch.forEach { $0.deallocate() } }
            input.scalars.withUnsafeBufferPointer { x in
                packed.withUnsafeBufferPointer { wp in
                    biasValues.withUnsafeBufferPointer { bp in
                        out.withUnsafeMutableBufferPointer { o in
                            Parallel.forEach(n, threads: workers) { img, worker in
                                DirectConv.forward(x.baseAddress! + img * c * h * w, geometry: g, packedWeights: wp.baseAddress!,
                                                   bias: bp.baseAddress!, outputChannels: cout, relu: relu,
                                                   scratch: scratch[worker], output: o.baseAddress! + img * cout * pixels)
                            }
                        }
                    }
                }
            }
            return Tensor(uncheckedShape: outShape, scalars: out)
        }
        // Images go through GEMM in groups whose columns sit side by side — one product of
        // Cout/g × K × (images·pixels) instead of many thin ones — sized so the column matrix
        // stays near 1 MiB (in L2). Groups run on separate workers, each GEMM on one thread,
        // unless there are too few groups to go round.
        let perGroup = Swift.max(1, Swift.min(n, (1 << 18) / Swift.max(1, k * pixels)))
        let chunks = (n + perGroup - 1) / perGroup
        let workers = Swift.min(threads, chunks)
        let gemmThreads = workers >= threads ? 1 : threads
        let columns = perGroup * pixels
        let colBuffers = (0..<workers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: k * columns) }
        let results = (0..<workers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: coutG * columns) }
        defer { colBuffers.forEach { $0.deallocate() }; results.forEach { $0.deallocate() } }
        let biasValues = bias?.scalars
        input.scalars.withUnsafeBufferPointer { x in
            weight.scalars.withUnsafeBufferPointer { wt in
                out.withUnsafeMutableBufferPointer { o in
                    Parallel.forEach(chunks, threads: workers) { chunk, worker in
                        let first = chunk * perGroup, count = Swift.min(perGroup, n - first)
                        let cols = colBuffers[worker], result = results[worker]
                        for grp in 0..<groups {
                            for i in 0..<count {
                                let src = x.baseAddress! + ((first + i) * c + grp * cg) * h * w
                                Im2col.im2col(src, geometry: g, padding: 0, into: cols + i * pixels, rowStride: count * pixels)
                            }
                            SGEMM.multiply(m: coutG, n: count * pixels, k: k,
                                           a: wt.baseAddress! + grp * coutG * k, lda: k,
                                           b: cols, ldb: count * pixels, c: result, ldc: count * pixels, threads: gemmThreads)
                            // Scatter [Cout/g, images·pixels] into NCHW, adding the bias (and applying
                            // a fused ReLU) on the way.
                            for i in 0..<count {
                                for co in 0..<coutG {
                                    let channel = grp * coutG + co
                                    let dst = o.baseAddress! + ((first + i) * cout + channel) * pixels
                                    let s = result + co * count * pixels + i * pixels
                                    let b = biasValues?[channel] ?? 0
                                    if relu {
                                        for p in 0..<pixels { dst[p] = Swift.max(s[p] + b, 0) }
                                    } else {
                                        for p in 0..<pixels { dst[p] = s[p] + b }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return Tensor(uncheckedShape: outShape, scalars: out)
    }
}
