import Kernels
import Runtime

/// 2-D convolution of NCHW tensors, forward and backward: the forward through direct kernels
/// (3×3 and similar, packed weights) or im2col + GEMM in groups of images; the backward per image
/// on separate workers (dW accumulated per worker, then summed), a stride-1 3×3 layer's input
/// gradient through the forward's direct kernel.
extension Tensor {
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
        // Every path below writes every output element (the direct kernel covers whole blocks of 8
        // channels, which it requires): no zero fill first.
        var out = [Float].uninitialized(total)
        if n == 0 { return Tensor(uncheckedShape: outShape, scalars: out) }
        let coutG = cout / groups, k = g.patchSize
        if groups > 1 && groups == c && cout == c {
            // Depthwise: each (image, channel) plane on its own.
            input.scalars.withUnsafeBufferPointer { x in
                weight.scalars.withUnsafeBufferPointer { wt in
                    out.withUnsafeMutableBufferPointer { o in
                        let parts = Swift.min(n * c, threads * 8)
                        Parallel.forEach(parts, threads: threads) { part, _ in
                            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: DepthwiseFloat.scratchSize(g))
                            defer { scratch.deallocate() }
                            for plane in (part * n * c / parts)..<((part + 1) * n * c / parts) {
                                let ch = plane % c
                                DepthwiseFloat.plane(x.baseAddress! + plane * h * w, g, weights: wt.baseAddress! + ch * k,
                                                     bias: bias?.scalars[ch] ?? 0, relu: relu, scratch: scratch, output: o.baseAddress! + plane * pixels)
                            }
                        }
                    }
                }
            }
            return Tensor(uncheckedShape: outShape, scalars: out)
        }
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

    /// Gradients of a convolution (as `conv2d` with the same geometry) given dL/dY: dL/dX (when
    /// `needInput`), dL/dW and, with `hasBias`, dL/db. Each worker takes whole images: im2col of
    /// the image, dW_g += dY_g·colᵀ, and dcol = W_gᵀ·dY_g scattered back by col2im. Shapes are the
    /// caller's to check (those of a forward pass that ran).
    public static func conv2dGradients(_ input: Tensor, weight: Tensor, outputGradient dy: Tensor, hasBias: Bool,
                                       stride: (Int, Int), padding: (Int, Int, Int, Int), dilation: (Int, Int), groups: Int,
                                       needInput: Bool) -> (input: Tensor?, weight: Tensor, bias: Tensor?) {
        let (x, w) = (input, weight)
        let g = ConvGeometry(channels: w.shape[1], height: x.shape[2], width: x.shape[3], kernelHeight: w.shape[2], kernelWidth: w.shape[3],
                             stride: stride, padding: padding, dilation: dilation)
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let cout = w.shape[0], coutG = cout / groups, cg = c / groups
        let pixels = g.outputPixels, k = g.patchSize
        let workers = Swift.max(1, Swift.min(Parallel.defaultThreads, n))
        if groups > 1 && groups == c && cout == c {
            var dx = needInput ? [Float](repeating: 0, count: x.count) : []
            // Depthwise: each worker takes whole channels (their filter's gradient and their
            // input planes in every image are its own).
            var dw = [Float](repeating: 0, count: w.count)
            x.withUnsafeScalars { xp in
                w.withUnsafeScalars { wp in
                    dy.withUnsafeScalars { dyp in
                        dx.withUnsafeMutableBufferPointer { dxp in
                            dw.withUnsafeMutableBufferPointer { dwp in
                                let threads = Swift.min(Parallel.defaultThreads, c)
                                Parallel.forEach(threads, threads: threads) { part, _ in
                                    for ch in (part * c / threads)..<((part + 1) * c / threads) {
                                        for img in 0..<n {
                                            let plane = img * c + ch
                                            DepthwiseFloat.planeGradients(xp.baseAddress! + plane * h * wd, g, weights: wp.baseAddress! + ch * k,
                                                                          outputGradient: dyp.baseAddress! + plane * pixels,
                                                                          inputGradient: needInput ? dxp.baseAddress! + plane * h * wd : nil,
                                                                          weightGradient: dwp.baseAddress! + ch * k)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            return (needInput ? Tensor(uncheckedShape: x.shape, scalars: dx) : nil, Tensor(uncheckedShape: w.shape, scalars: dw),
                    hasBias ? biasGradient(dy, channels: cout, pixels: pixels) : nil)
        }
        // A stride-1 3×3 convolution's input gradient is itself such a convolution — of dY with the
        // weights turned 180° and their in/out channels swapped, padded by 2 − p — so it takes the
        // forward's direct kernel instead of Wᵀ·dY per image scattered back by col2im.
        var directInput: Tensor? = nil
        if needInput && groups == 1 && g.kernelHeight == 3 && g.kernelWidth == 3 && g.strideHeight == 1 && g.strideWidth == 1
            && g.dilationHeight == 1 && g.dilationWidth == 1 && [padding.0, padding.1, padding.2, padding.3].allSatisfy({ $0 <= 2 }) {
            let back = ConvGeometry(channels: cout, height: dy.shape[2], width: dy.shape[3], kernelHeight: 3, kernelWidth: 3,
                                    stride: (1, 1), padding: (2 - padding.0, 2 - padding.1, 2 - padding.2, 2 - padding.3), dilation: (1, 1))
            if DirectConv.applies(back, outputChannels: c, groups: 1) {
                var turned = [Float](repeating: 0, count: w.count)
                w.withUnsafeScalars { wp in
                    for co in 0..<cout { for ci in 0..<c { for t in 0..<9 { turned[(ci * cout + co) * 9 + 8 - t] = wp[(co * c + ci) * 9 + t] } } }
                }
                directInput = try? conv2d(dy, weight: Tensor(uncheckedShape: [c, cout, 3, 3], scalars: turned),
                                          padding: (2 - padding.0, 2 - padding.1, 2 - padding.2, 2 - padding.3))
                if directInput?.shape != x.shape { directInput = nil }
            }
        }
        let needInput = needInput && directInput == nil
        // The weight gradient without im2col where the direct kernel covers the layer.
        let directWeights = DirectWeightGradient.applies(g, outputChannels: cout, groups: groups)
        var dx = needInput ? [Float](repeating: 0, count: x.count) : []
        var partialW = [[Float]](repeating: [Float](repeating: 0, count: w.count), count: workers)
        let cols = directWeights ? [] : (0..<workers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: k * pixels) }
        let dcols = needInput ? (0..<workers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: k * pixels) } : []
        let padded = directWeights
            ? (0..<workers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: DirectWeightGradient.scratchSize(g, outputChannels: cout)) } : []
        defer { cols.forEach { $0.deallocate() }; dcols.forEach { $0.deallocate() }; padded.forEach { $0.deallocate() } }
        x.withUnsafeScalars { xp in
            w.withUnsafeScalars { wp in
                dy.withUnsafeScalars { dyp in
                    dx.withUnsafeMutableBufferPointer { dxp in
                        partialW.withUnsafeMutableBufferPointer { pw in
                            let pwBase = pw.baseAddress!
                            Parallel.forEach(n, threads: workers) { img, worker in
                                pwBase[worker].withUnsafeMutableBufferPointer { dwp in
                                    for grp in 0..<groups {
                                        let src = xp.baseAddress! + (img * c + grp * cg) * h * wd
                                        let dyi = dyp.baseAddress! + (img * cout + grp * coutG) * pixels
                                        let wg = wp.baseAddress! + grp * coutG * k
                                        if directWeights {
                                            DirectWeightGradient.accumulate(src, geometry: g, outputGradient: dyi, outputChannels: cout,
                                                                            scratch: padded[worker], into: dwp.baseAddress!)
                                        } else {
                                            Im2col.im2col(src, geometry: g, padding: 0, into: cols[worker])
                                            // dW_g += dY_g · colᵀ
                                            SGEMM.multiply(m: coutG, n: k, k: pixels, a: dyi, lda: pixels,
                                                           b: cols[worker], ldb: pixels, transB: true, beta: 1,
                                                           c: dwp.baseAddress! + grp * coutG * k, ldc: k, threads: 1)
                                        }
                                        if needInput {
                                            // dcol = W_gᵀ · dY_g, then scatter back onto the image.
                                            SGEMM.multiply(m: k, n: pixels, k: coutG, a: wg, lda: k, transA: true,
                                                           b: dyi, ldb: pixels, c: dcols[worker], ldc: pixels, threads: 1)
                                            Im2col.col2im(dcols[worker], geometry: g,
                                                          addingInto: dxp.baseAddress! + (img * c + grp * cg) * h * wd)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        var dw: [Float]
        if directWeights {
            dw = DirectWeightGradient.finish(partialW, outputChannels: cout)
        } else {
            dw = partialW[0]
            for p in partialW.dropFirst() { for i in 0..<dw.count { dw[i] += p[i] } }
        }
        return (directInput ?? (needInput ? Tensor(uncheckedShape: x.shape, scalars: dx) : nil), Tensor(uncheckedShape: w.shape, scalars: dw),
                hasBias ? biasGradient(dy, channels: cout, pixels: pixels) : nil)
    }

    /// dL/db of a convolution: dy summed over images and pixels per output channel.
    static func biasGradient(_ dy: Tensor, channels cout: Int, pixels: Int) -> Tensor {
        var s = [Float](repeating: 0, count: cout)
        dy.withUnsafeScalars { d in
            for img in 0..<(dy.shape[0]) {
                for co in 0..<cout {
                    var acc: Float = 0
                    let base = (img * cout + co) * pixels
                    for p in 0..<pixels { acc += d[base + p] }
                    s[co] += acc
                }
            }
        }
        return Tensor(uncheckedShape: [cout], scalars: s)
    }
}
