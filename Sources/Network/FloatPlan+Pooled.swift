import Kernels
import Runtime

// A convolution and the max pooling after it as one step: the layer computes, row of windows by
// row of windows, only the pixels the pool's windows read, into a few rows of scratch that stay
// in L1, and writes their maxima. The convolution's output never reaches memory (the CNN's first
// one is 50 KB an image, written and read back for the pool), and pixels no window reads are
// not computed at all (a 2×2 pool on 7×7 reads 6×6: 27% of that layer's multiply-adds).
extension FloatPlan {
    /// Fuses each max pooling whose windows tile its input (kernel = stride, no padding) into
    /// the dense convolution before it, when nothing else reads the convolution's output.
    func fusePools() {
        var i = 0
        while i + 1 < steps.count {
            defer { i += 1 }
            guard case .layer(let l) = steps[i], l.tile != nil, l.residual == nil, l.pooled == nil, l.output != output,
                  case let .maxPool(from, to, a) = steps[i + 1], from == l.output,
                  a.kernel.count == 2, a.kernel == a.strides, a.pads.allSatisfy({ $0 == 0 }) else { continue }
            let (s, t) = (slots[l.output], slots[to])
            let (kh, kw) = (a.kernel[0], a.kernel[1])
            guard kh >= 1, kw >= 1, t.h == s.h / kh, t.w == s.w / kw, t.h > 0, t.w > 0,
                  !steps.indices.contains(where: { $0 != i + 1 && steps[$0].reads.contains(l.output) }) else { continue }
            l.pooled = LayerStep.Pooled(to: to, kh: kh, kw: kw)
            pooledScratch = max(pooledScratch, (kh * t.w * kw * l.cout + 15) / 16 * 16)
            steps.remove(at: i + 1)
        }
    }

    /// How many max poolings run inside the convolution before them.
    public var fusedPools: Int { steps.filter { if case .layer(let l) = $0 { l.pooled != nil } else { false } }.count }

    /// A layer with a fused pooling; with `threads` > 1 (one micro-batch for all threads) its
    /// rows of windows — and column blocks — are shared among them.
    func runPooled(_ l: LayerStep, _ ws: Workspace, images: Int, threads: Int) {
        guard let p = l.pooled else { return }
        let blocks = (l.cout + FloatTile.columns - 1) / FloatTile.columns
        let items = images * slots[p.to].h * blocks
        let workers = min(threads, ws.lanes, items)
        if workers <= 1 { runPooled(l, ws, items: 0..<items, lane: 0); return }
        Parallel.forEach(workers, threads: workers) { w, _ in
            runPooled(l, ws, items: (w * items / workers)..<((w + 1) * items / workers), lane: w)
        }
    }

    /// Items `items` (item k: row of windows k / blocks of the micro-batch, column block
    /// k % blocks) with lane `lane`'s scratch and row pointers: the kh convolution rows under
    /// the windows — the pixels they read, through `FloatTile.runLine` for a layer run by lines,
    /// else in tiles of 12 — into scratch (pixel i's channels at i·cout), then each window's
    /// maximum (taps row by row; a NaN replaces the maximum, as the pooling step does).
    func runPooled(_ l: LayerStep, _ ws: Workspace, items: Range<Int>, lane: Int) {
        guard let tile = l.tile, let p = l.pooled, !items.isEmpty else { return }
        let (s, t, d) = (slots[l.input], slots[l.output], slots[p.to])
        let (inBase, outBase) = (UnsafePointer(ws.buffers[s.buffer]), ws.buffers[d.buffer])
        let blocks = (l.cout + FloatTile.columns - 1) / FloatTile.columns
        let width = d.w * p.kw, cout = l.cout
        let scratch = ws.scratch + lane * (pooledScratch + 16)
        let (rowsIn, rowsOut) = (ws.rowsIn + lane * FloatTile.rows, ws.rowsOut + lane * FloatTile.rows)
        tile.data.withUnsafeBufferPointer { w in
            tile.bias.withUnsafeBufferPointer { bias in
                l.taps.withUnsafeBufferPointer { taps in
                    l.starts.withUnsafeBufferPointer { starts in
                        for item in items {
                            let (row, block) = (item / blocks, item % blocks)
                            let (image, py) = (row / d.h, row % d.h)
                            let column = block * FloatTile.columns, cols = min(FloatTile.columns, cout - column)
                            let a = inBase + image * s.elements
                            // Conv pixel (u, x) of this row of windows is output pixel (py·kh + u)·w + x.
                            if l.lines {
                                for u in 0..<p.kh {
                                    let done = FloatTile.runLine(count: width, cols: cols, a: a + starts[(py * p.kh + u) * t.w], step: l.rowStep,
                                                                 taps: taps.baseAddress!, weights: tile, packed: w.baseAddress!,
                                                                 bias: bias.baseAddress!, lo: l.lo, hi: l.hi, column: column,
                                                                 out: scratch + u * width * cout, outStep: cout, res: nil, resStep: 0)
                                    assert(done, "a layer run by lines has a step the line kernel takes")
                                }
                            } else {
                                var n = 0
                                func flush() {
                                    FloatTile.run(rows: n, cols: cols, a: rowsIn, taps: taps.baseAddress!, weights: tile,
                                                  packed: w.baseAddress!, bias: bias.baseAddress!, lo: l.lo, hi: l.hi, column: column,
                                                  out: rowsOut, res: nil)
                                    n = 0
                                }
                                for u in 0..<p.kh {
                                    let fields = starts.baseAddress! + (py * p.kh + u) * t.w, outs = scratch + u * width * cout
                                    for x in 0..<width {
                                        rowsIn[n] = a + fields[x]
                                        rowsOut[n] = outs + x * cout
                                        n += 1
                                        if n == FloatTile.rows { flush() }
                                    }
                                }
                                if n > 0 { flush() }
                            }
                            WindowMaximum.row(scratch + column, count: d.w, windowStep: p.kw * cout, kh: p.kh, kw: p.kw, rowStep: width * cout,
                                              pixelStep: cout, channels: cols, into: outBase + image * d.elements + d.offset(py, 0) + column, dstStep: d.c)
                        }
                    }
                }
            }
        }
    }
}
