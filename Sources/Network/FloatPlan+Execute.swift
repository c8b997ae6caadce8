import Foundation
import Kernels
import Runtime
import Tensors

// Running a float plan: per-worker buffers for a micro-batch of images, one helper per step.
extension FloatPlan {
    /// One worker's buffers: every buffer for `images` images (zeroed once, so the borders stay
    /// zero), and the tile's row pointers.
    final class Workspace {
        let buffers: [UnsafeMutablePointer<Float>]
        /// Images the buffers hold.
        let images: Int
        static let pointers = 256
        /// Threads that may share one layer, each with its own rows of pointers.
        let lanes: Int
        let rowsIn: UnsafeMutablePointer<UnsafePointer<Float>>
        let rowsOut: UnsafeMutablePointer<UnsafeMutablePointer<Float>>
        let rowsRes: UnsafeMutablePointer<UnsafePointer<Float>>
        /// Per lane, `plan.pooledScratch` floats (+ 16 of slack) for a fused pooling's rows.
        let scratch: UnsafeMutablePointer<Float>
        init(_ plan: FloatPlan, images: Int, lanes: Int = 1) {
            self.lanes = max(1, lanes); self.images = images
            let n = max(Self.pointers, self.lanes * FloatTile.rows)
            rowsIn = .allocate(capacity: n); rowsOut = .allocate(capacity: n); rowsRes = .allocate(capacity: n)
            scratch = .allocate(capacity: self.lanes * (plan.pooledScratch + 16))
            // 16 floats of slack past each buffer: a vector load of a last pixel's channels may
            // reach past them (the masked lanes are not used).
            buffers = plan.buffers.map { n in
                let p = UnsafeMutablePointer<Float>.allocate(capacity: n * images + 16)
                p.initialize(repeating: 0, count: n * images + 16)
                return p
            }
        }
        deinit {
            buffers.forEach { $0.deallocate() }
            rowsIn.deallocate(); rowsOut.deallocate(); rowsRes.deallocate(); scratch.deallocate()
        }
    }

    /// A workspace with at least `lanes` lanes for at least `images` images (≤ the micro-batch):
    /// a recycled one (its borders are still zero and every step rewrites the interiors it reads),
    /// or a new one for just that many images (one image of ResNet-50 at 224² is ~15 MB of
    /// buffers: a whole micro-batch's would be zeroed for nothing).
    func takeWorkspace(lanes: Int, images: Int) -> Workspace {
        poolLock.lock(); defer { poolLock.unlock() }
        if let i = pool.firstIndex(where: { $0.lanes >= lanes && $0.images >= images }) { return pool.remove(at: i) }
        return Workspace(self, images: images, lanes: lanes)
    }

    /// Keeps a workspace for the next run (up to four: two threads, two runs at once).
    func recycle(_ ws: Workspace) {
        poolLock.lock(); defer { poolLock.unlock() }
        if pool.count < 4 { pool.append(ws) }
    }

    /// Runs the plan on a batch [N] + the model's input shape.
    public func run(_ x: Tensor, threads: Int = Parallel.defaultThreads) throws -> Tensor {
        guard x.rank == inputShape.count + 1, Array(x.shape.dropFirst()) == inputShape else {
            throw NetworkError("float plan: expected input [N, \(inputShape.map(String.init).joined(separator: ", "))], found \(x.shape)")
        }
        let n = x.shape[0], inner = x.count / max(n, 1)
        let shape = outputShape(n)
        let width = shape.dropFirst().reduce(1, *)
        var out = [Float](repeating: 0, count: n * width)
        let chunks = (n + microBatch - 1) / microBatch
        x.scalars.withUnsafeBufferPointer { xs in
            out.withUnsafeMutableBufferPointer { os in
                let (x0, o0) = (xs.baseAddress!, os.baseAddress!)
                let workers = min(max(1, threads), max(chunks, 1))
                if workers < threads {
                    // Fewer micro-batches than threads (one image): the threads share each layer.
                    let ws = takeWorkspace(lanes: threads, images: min(n, microBatch))
                    defer { recycle(ws) }
                    for chunk in 0..<chunks where !Interrupt.isRequested {
                        let first = chunk * microBatch, count = min(microBatch, n - first)
                        execute(ws, images: count, input: x0 + first * inner, result: o0 + first * width, threads: threads)
                    }
                    return
                }
                // Micro-batches dealt as workers free up (a slower core takes fewer).
                let spaces = (0..<workers).map { _ in takeWorkspace(lanes: 1, images: min(n, microBatch)) }
                defer { spaces.forEach(recycle) }
                Parallel.forEachDynamic(chunks, threads: workers) { chunk, w in
                    if Interrupt.isRequested { return }
                    let first = chunk * microBatch, count = min(microBatch, n - first)
                    execute(spaces[w], images: count, input: x0 + first * inner, result: o0 + first * width)
                }
            }
        }
        try Interrupt.check()
        return Tensor(checkedShape: shape, scalars: out)
    }

    /// Runs every step on `images` images (≤ the workspace's).
    func execute(_ ws: Workspace, images: Int, input: UnsafePointer<Float>, result: UnsafeMutablePointer<Float>, threads: Int = 1) {
        func base(_ slot: Int) -> UnsafeMutablePointer<Float> { ws.buffers[slots[slot].buffer] }
        for step in steps {
            switch step {
            case .input(let to):
                slots[to].load(planes: input, into: base(to), images: images)
            case .layer(let l):
                if l.pooled != nil {
                    runPooled(l, ws, images: images, threads: threads)
                } else if l.tile != nil {
                    runTile(l, ws, images: images, threads: threads)
                } else {
                    runDepthwise(l, ws, images: images, threads: threads)
                }
            case let .clamp(from, to, lo, hi):
                let t = slots[to], b = base(to)
                slots[from].forEachPixel(base(from), images: images) { i, y, x, src in
                    let dst = b + i * t.elements + t.offset(y, x)
                    for ch in 0..<t.c { dst[ch] = Swift.min(Swift.max(src[ch], lo), hi) }
                }
            case let .add(a, b, to, lo, hi):
                let (u, t) = (slots[b], slots[to])
                let (pb, po) = (base(b), base(to))
                slots[a].forEachPixel(base(a), images: images) { i, y, x, ra in
                    let rb = pb + i * u.elements + u.offset(y, x), dst = po + i * t.elements + t.offset(y, x)
                    for ch in 0..<t.c { dst[ch] = Swift.min(Swift.max(ra[ch] + rb[ch], lo), hi) }
                }
            case let .maxPool(from, to, a):
                pool(from, to, a, ws, images: images, max: true)
            case let .averagePool(from, to, a):
                pool(from, to, a, ws, images: images, max: false)
            case let .softmax(from, to):
                let (s, t) = (slots[from], slots[to])
                let (a, b) = (base(from), base(to))
                for i in 0..<images {
                    var m = -Float.infinity, sum: Float = 0
                    s.forEachPixel(a + i * s.elements, images: 1) { _, _, _, src in for ch in 0..<s.c { m = Swift.max(m, src[ch]) } }
                    s.forEachPixel(a + i * s.elements, images: 1) { _, y, x, src in
                        let dst = b + i * t.elements + t.offset(y, x)
                        for ch in 0..<s.c { dst[ch] = expf(src[ch] - m); sum += dst[ch] }
                    }
                    t.forEachPixel(b + i * t.elements, images: 1) { _, _, _, dst in for ch in 0..<t.c { dst[ch] /= sum } }
                }
            case let .globalAverage(from, to):
                let (s, t) = (slots[from], slots[to])
                let (a, b) = (base(from), base(to))
                let scale = 1 / Float(s.h * s.w)
                for i in 0..<images {
                    let dst = b + i * t.elements + t.offset(0, 0)
                    for ch in 0..<s.c { dst[ch] = 0 }
                    s.forEachPixel(a + i * s.elements, images: 1) { _, _, _, src in for ch in 0..<s.c { dst[ch] += src[ch] } }
                    for ch in 0..<s.c { dst[ch] *= scale }
                }
            }
        }
        // The output, NCHW (a flattened value is the same order in one row).
        let s = slots[output], plane = s.h * s.w
        s.forEachPixel(base(output), images: images) { i, y, x, o in
            let dst = result + i * s.c * plane + y * s.w + x
            for ch in 0..<s.c { dst[ch * plane] = o[ch] }
        }
    }

    /// A dense layer: tiles of 12 output pixels (across the micro-batch's images) × 32 channels,
    /// tile by tile; with `threads` > 1 (a batch too small to give each thread its own images)
    /// the tiles — or, when there are few, their column blocks — are shared among the threads.
    func runTile(_ l: LayerStep, _ ws: Workspace, images: Int, threads: Int = 1) {
        let rows = images * l.starts.count
        if l.starts.count == 1 && rows < 4 {
            // A few images through a linear layer: each alone, 128 columns at a time.
            let groups = (l.cout + FloatTile.rowColumns - 1) / FloatTile.rowColumns
            let workers = min(threads, rows * groups)
            Parallel.forEach(workers, threads: workers) { w, _ in
                for g in (w * rows * groups / workers)..<((w + 1) * rows * groups / workers) { runRow(l, ws, image: g / groups, group: g % groups) }
            }
            return
        }
        let blocks = (l.cout + FloatTile.columns - 1) / FloatTile.columns
        if l.lines {
            // Output row by output row: items (image · height + row) · blocks + block.
            let items = images * slots[l.output].h * blocks
            let workers = min(threads, items)
            Parallel.forEach(workers, threads: workers) { w, _ in runLines(l, ws, items: (w * items / workers)..<((w + 1) * items / workers)) }
            return
        }
        let tiles = (rows + FloatTile.rows - 1) / FloatTile.rows
        // Item order: a tile's column blocks one after another (its receptive fields stay in L1)
        // — or, for a linear layer and for weights past `weightCacheBytes`, which tile order
        // would stream from memory once per tile, each column block over every tile in turn
        // (the block's weights then serve every tile from cache).
        let byBlock = tiles > 1 && blocks > 1 && (l.starts.count == 1 || (l.tile?.data.count ?? 0) * 4 > Self.weightCacheBytes)
        let workers = min(threads, ws.lanes, tiles * blocks)
        if workers <= 1 { runTiles(l, ws, images: images, items: 0..<(tiles * blocks), byBlock: byBlock, lane: 0); return }
        Parallel.forEach(workers, threads: workers) { w, _ in
            runTiles(l, ws, images: images, items: (w * tiles * blocks / workers)..<((w + 1) * tiles * blocks / workers), byBlock: byBlock, lane: w)
        }
    }

    /// Columns `group`·128 ..< +128 of image `image` through a linear layer (`FloatTile.runRow`).
    func runRow(_ l: LayerStep, _ ws: Workspace, image: Int, group: Int) {
        guard let tile = l.tile else { return }
        let (s, t) = (slots[l.input], slots[l.output])
        let res = l.residual.map { UnsafePointer(ws.buffers[slots[$0].buffer]) + image * slots[$0].elements + l.resStarts[0] }
        let column = group * FloatTile.rowColumns
        tile.data.withUnsafeBufferPointer { w in
            tile.bias.withUnsafeBufferPointer { bias in
                l.taps.withUnsafeBufferPointer { taps in
                    FloatTile.runRow(cols: min(FloatTile.rowColumns, l.cout - column), a: ws.buffers[s.buffer] + image * s.elements + l.starts[0],
                                     taps: taps.baseAddress!, weights: tile, packed: w.baseAddress!, bias: bias.baseAddress!, lo: l.lo, hi: l.hi,
                                     column: column, out: ws.buffers[t.buffer] + image * t.elements + l.outStarts[0], res: res)
                }
            }
        }
    }

    /// Bytes of a layer's weights past which its tiles take the column blocks in turn (half the
    /// 2 MB L2 of the Xeons the benchmarks run on; AMD's Zen 4 has 1 MB).
    public static let weightCacheBytes = 1 << 20

    /// Items `items` of a dense layer (item k: tile k / blocks, column block k % blocks; by
    /// block, column block k / tiles of tile k % tiles), with
    /// lane `lane`'s row pointers. A tile of 12 pixels along one output row goes to the kernel
    /// that addresses its rows from one register.
    func runTiles(_ l: LayerStep, _ ws: Workspace, images: Int, items: Range<Int>, byBlock: Bool, lane: Int) {
        guard let tile = l.tile, !items.isEmpty else { return }
        let (s, t) = (slots[l.input], slots[l.output])
        let (inBase, outBase) = (UnsafePointer(ws.buffers[s.buffer]), ws.buffers[t.buffer])
        let r = l.residual.map { slots[$0] }
        let resBase = r.map { UnsafePointer(ws.buffers[$0.buffer]) }
        let pixels = l.starts.count, rows = images * pixels, full = FloatTile.rows
        let blocks = (l.cout + FloatTile.columns - 1) / FloatTile.columns
        let stepped = FloatTile.vectorized && FloatTile.rowSteps.contains(l.rowStep)
        let (rowsIn, rowsOut, rowsRes) = (ws.rowsIn + lane * full, ws.rowsOut + lane * full, ws.rowsRes + lane * full)
        tile.data.withUnsafeBufferPointer { w in
            tile.bias.withUnsafeBufferPointer { bias in
                l.taps.withUnsafeBufferPointer { taps in
                    l.starts.withUnsafeBufferPointer { starts in
                        let tiles = (rows + full - 1) / full
                        var item = items.lowerBound
                        while item < items.upperBound {
                            // The tile, and its column blocks within the share.
                            let tileIndex: Int, blockRange: Range<Int>
                            if byBlock {
                                (tileIndex, blockRange) = (item % tiles, (item / tiles)..<(item / tiles + 1))
                                item += 1
                            } else {
                                let last = min(items.upperBound, (item / blocks + 1) * blocks)
                                (tileIndex, blockRange) = (item / blocks, (item % blocks)..<(item % blocks + last - item))
                                item = last
                            }
                            let r0 = tileIndex * full, count = min(full, rows - r0)
                            let first = r0 % pixels, firstImage = r0 / pixels
                            var (image, p) = (firstImage, first)
                            for i in 0..<count {
                                rowsIn[i] = inBase + image * s.elements + starts[p]
                                rowsOut[i] = outBase + image * t.elements + l.outStarts[p]
                                if let resBase, let r { rowsRes[i] = resBase + image * r.elements + l.resStarts[p] }
                                p += 1
                                if p == pixels { (image, p) = (image + 1, 0) }
                            }
                            // 12 consecutive pixels whose fields, outputs and residuals each lie
                            // equal steps apart (offsets only grow, so the ends tell).
                            let along = stepped && count == full && l.runs[first] && rowsOut[full - 1] == rowsOut[0] + (full - 1) * t.c
                                && (r == nil || rowsRes[full - 1] == rowsRes[0] + (full - 1) * r!.c)
                            for block in blockRange {
                                let column = block * FloatTile.columns, cols = min(FloatTile.columns, l.cout - column)
                                let res = resBase == nil ? nil : UnsafePointer(rowsRes)
                                if !(along && FloatTile.runLine(count: full, cols: cols, a: inBase + firstImage * s.elements + starts[first], step: l.rowStep,
                                                                 taps: taps.baseAddress!, weights: tile, packed: w.baseAddress!, bias: bias.baseAddress!,
                                                                 lo: l.lo, hi: l.hi, column: column, out: rowsOut[0], outStep: t.c,
                                                                 res: res?[0], resStep: r?.c ?? 0)) {
                                    FloatTile.run(rows: count, cols: cols, a: rowsIn, taps: taps.baseAddress!, weights: tile,
                                                  packed: w.baseAddress!, bias: bias.baseAddress!, lo: l.lo, hi: l.hi, column: column,
                                                  out: rowsOut, res: res)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Items `items` of a layer run by output rows (item k: row k / blocks of the micro-batch,
    /// column block k % blocks), each row's pixels through `FloatTile.runLine`.
    func runLines(_ l: LayerStep, _ ws: Workspace, items: Range<Int>) {
        guard let tile = l.tile, !items.isEmpty else { return }
        let (s, t) = (slots[l.input], slots[l.output])
        let (inBase, outBase) = (UnsafePointer(ws.buffers[s.buffer]), ws.buffers[t.buffer])
        let residual = l.residual.map { (slot: slots[$0], base: UnsafePointer(ws.buffers[slots[$0].buffer])) }
        let blocks = (l.cout + FloatTile.columns - 1) / FloatTile.columns
        tile.data.withUnsafeBufferPointer { w in
            tile.bias.withUnsafeBufferPointer { bias in
                l.taps.withUnsafeBufferPointer { taps in
                    for item in items {
                        let (line, block) = (item / blocks, item % blocks)
                        let (image, p) = (line / t.h, line % t.h * t.w)
                        let column = block * FloatTile.columns
                        let res = residual.map { $0.base + image * $0.slot.elements + l.resStarts[p] }
                        let done = FloatTile.runLine(count: t.w, cols: min(FloatTile.columns, l.cout - column), a: inBase + image * s.elements + l.starts[p],
                                              step: l.rowStep, taps: taps.baseAddress!, weights: tile, packed: w.baseAddress!,
                                              bias: bias.baseAddress!, lo: l.lo, hi: l.hi, column: column,
                                              out: outBase + image * t.elements + l.outStarts[p], outStep: t.c, res: res, resStep: residual?.slot.c ?? 0)
                        assert(done, "a layer run by lines has a step the line kernel takes")
                    }
                }
            }
        }
    }

    /// A depthwise layer, up to 256 output pixels per kernel call.
    func runDepthwise(_ l: LayerStep, _ ws: Workspace, images: Int, threads: Int = 1) {
        let (s, t) = (slots[l.input], slots[l.output])
        let (inBase, outBase) = (UnsafePointer(ws.buffers[s.buffer]), ws.buffers[t.buffer])
        let pixels = l.starts.count, rows = images * pixels
        // Shared among the threads by output pixels, each with its own rows of pointers.
        let workers = min(threads, ws.lanes, max(1, rows / 64))
        let share = Workspace.pointers / max(1, workers) / FloatTile.rows * FloatTile.rows
        l.depthwise.withUnsafeBufferPointer { w in
            l.bias.withUnsafeBufferPointer { bias in
                l.taps.withUnsafeBufferPointer { taps in
                    Parallel.forEach(workers, threads: workers) { lane, _ in
                        let (rowsIn, rowsOut) = (ws.rowsIn + lane * share, ws.rowsOut + lane * share)
                        var r0 = lane * rows / workers
                        let end = (lane + 1) * rows / workers
                        while r0 < end {
                            let count = min(share, end - r0)
                            for i in 0..<count {
                                let (image, p) = ((r0 + i) / pixels, (r0 + i) % pixels)
                                rowsIn[i] = inBase + image * s.elements + l.starts[p]
                                rowsOut[i] = outBase + image * t.elements + l.outStarts[p]
                            }
                            FloatTile.depthwise(pixels: count, a: rowsIn, out: rowsOut, taps: taps.baseAddress!, ntaps: taps.count,
                                                weights: w.baseAddress!, ldw: l.ldw, channels: l.cout, bias: bias.baseAddress!, lo: l.lo, hi: l.hi)
                            r0 += count
                        }
                    }
                }
            }
        }
    }

    /// Max or average pooling over channels-last pixels: each window's taps inside the input
    /// (max), or divided by the count `PoolOp.Geometry.counts` gives (average).
    func pool(_ from: Int, _ to: Int, _ a: PoolAttributes, _ ws: Workspace, images: Int, max: Bool) {
        let (s, t) = (slots[from], slots[to])
        let (src, dst) = (ws.buffers[s.buffer], ws.buffers[t.buffer])
        let g = PoolOp.Geometry(n: 1, c: s.c, h: s.h, w: s.w, oh: t.h, ow: t.w, kh: a.kernel[0], kw: a.kernel[1],
                                sh: a.strides[0], sw: a.strides[1], pt: a.pads[0], pl: a.pads[1], pb: a.pads[2], pr: a.pads[3])
        if max && a.pads.allSatisfy({ $0 == 0 }) && (t.h - 1) * g.sh + g.kh <= s.h && (t.w - 1) * g.sw + g.kw <= s.w {
            // Every window inside the input: a row of windows at a time, its taps at fixed steps.
            for i in 0..<images {
                for oy in 0..<t.h {
                    WindowMaximum.row(src + i * s.elements + s.offset(oy * g.sh, 0), count: t.w, windowStep: g.sw * s.c, kh: g.kh, kw: g.kw,
                                      rowStep: s.offset(1, 0) - s.offset(0, 0), pixelStep: s.c, channels: s.c,
                                      into: dst + i * t.elements + t.offset(oy, 0), dstStep: t.c)
                }
            }
            return
        }
        for i in 0..<images {
            let xb = src + i * s.elements, yb = dst + i * t.elements
            for oy in 0..<t.h {
                for ox in 0..<t.w {
                    let o = yb + t.offset(oy, ox)
                    if max && s.c % 16 == 0 {
                        maxPixel(xb, s, oy * g.sh - g.pt, ox * g.sw - g.pl, g.kh, g.kw, o)
                        continue
                    }
                    var counted = 0, first = true
                    for u in 0..<g.kh {
                        for v in 0..<g.kw {
                            let iy = oy * g.sh - g.pt + u, ix = ox * g.sw - g.pl + v
                            let inside = iy >= 0 && iy < s.h && ix >= 0 && ix < s.w
                            if max {
                                guard inside else { continue }
                                let x = xb + s.offset(iy, ix)
                                if first {
                                    for ch in 0..<s.c { o[ch] = x[ch] }
                                    first = false
                                } else {
                                    for ch in 0..<s.c where x[ch] > o[ch] || (x[ch].isNaN && !o[ch].isNaN) { o[ch] = x[ch] }
                                }
                            } else {
                                guard g.counts(iy, ix, includePad: a.countIncludePad) else { continue }
                                if first { for ch in 0..<s.c { o[ch] = 0 }; first = false }
                                counted += 1
                                if inside {
                                    let x = xb + s.offset(iy, ix)
                                    for ch in 0..<s.c { o[ch] += x[ch] }
                                }
                            }
                        }
                    }
                    if !max {
                        let scale = 1 / Float(Swift.max(counted, 1))
                        for ch in 0..<s.c { o[ch] *= scale }
                    }
                }
            }
        }
    }

    /// One max-pooled pixel, 16 channels at a time: the window's taps inside the input (NaN
    /// wins, as in the graph).
    @inline(__always)
    func maxPixel(_ xb: UnsafeMutablePointer<Float>, _ s: Slot, _ y0: Int, _ x0: Int, _ kh: Int, _ kw: Int, _ o: UnsafeMutablePointer<Float>) {
        let (ylo, yhi) = (Swift.max(y0, 0), Swift.min(y0 + kh, s.h)), (xlo, xhi) = (Swift.max(x0, 0), Swift.min(x0 + kw, s.w))
        var c = 0
        while c < s.c {
            var m = UnsafeRawPointer(xb + s.offset(ylo, xlo) + c).loadUnaligned(as: SIMD16<Float>.self)
            for y in ylo..<yhi {
                for x in xlo..<xhi {
                    let v = UnsafeRawPointer(xb + s.offset(y, x) + c).loadUnaligned(as: SIMD16<Float>.self)
                    m.replace(with: v, where: (v .> m) .| (v .!= v))
                }
            }
            UnsafeMutableRawPointer(o + c).storeBytes(of: m, as: SIMD16<Float>.self)
            c += 16
        }
    }
}
