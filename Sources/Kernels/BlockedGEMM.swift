import Runtime
/// The five loops of a BLIS-style GEMM, shared by every element type.
///
/// `jc` walks NC-wide panels of B, `pc` KC-deep slices of K, and for each (jc, pc) the panel
/// of B is packed once by all workers together. Then tasks — MC-tall blocks of A × column
/// chunks of the panel, so short wide products (a conv's few output channels × many pixels)
/// still use every worker — each pack their block of A into the worker's own buffer and run
/// the micro-kernel over every MR×NR tile; those tasks go to workers as they free up. Packing
/// zero-pads partial slivers, so one kernel serves edge tiles too.
struct BlockedGEMM {
    /// Micro-tile shape and cache blocking, in elements. `kAlign` rounds KC up for kernels that
    /// consume K in groups (4 for VNNI dot products).
    var mr: Int, nr: Int, kc: Int, mc: Int, nc: Int, kAlign: Int = 1
    /// Bytes one packed element takes.
    var elementBytes: Int

    /// Packs columns `col..<col+n` (n ≤ NR) of op(B), rows `row..<row+k`, into one sliver of
    /// `roundUp(k, kAlign)·NR` elements at `dst`.
    typealias PackB = (_ k: Int, _ n: Int, _ row: Int, _ col: Int, _ dst: UnsafeMutableRawPointer, _ worker: Int) -> Void
    /// Packs rows `row..<row+m` of op(A), columns `col..<col+k`, into ⌈m/MR⌉ slivers of
    /// `roundUp(k, kAlign)·MR` elements each at `dst`.
    typealias PackA = (_ m: Int, _ k: Int, _ row: Int, _ col: Int, _ dst: UnsafeMutableRawPointer) -> Void
    /// Multiplies one packed A sliver by one packed B sliver into C's tile at (`row`, `col`) of
    /// `m`×`n` valid elements (m ≤ MR, n ≤ NR); `first` is true on the first K slice.
    typealias Tile = (_ k: Int, _ a: UnsafeRawPointer, _ b: UnsafeRawPointer,
                      _ row: Int, _ col: Int, _ m: Int, _ n: Int, _ first: Bool, _ worker: Int) -> Void

    func run(m: Int, n: Int, k: Int, threads: Int, packA: PackA, packB: PackB, tile: Tile) {
        if m <= 0 || n <= 0 || k <= 0 { return }
        let kc = roundUp(max(1, self.kc), kAlign)
        let mc = max(mr, self.mc / mr * mr), nc = max(nr, self.nc / nr * nr)
        let workers = max(1, threads)
        let panel = ScratchPool.take(kc * min(nc, roundUp(n, nr)) * elementBytes)
        let blocksOfA = (0..<workers).map { _ in ScratchPool.take(kc * mc * elementBytes) }
        defer { ScratchPool.give([panel] + blocksOfA) }

        let rowBlocks = Self.rowBlocks(m: m, mr: mr, mc: mc, workers: workers)
        var jc = 0
        while jc < n {
            let nb = min(nc, n - jc)
            let slivers = (nb + nr - 1) / nr
            if m <= mc {
                shortProduct(m: m, n: n, k: k, jc: jc, slivers: slivers, kc: kc, workers: workers, blocksOfA: blocksOfA,
                             packA: packA, packB: packB, tile: tile)
                jc += nb
                continue
            }
            var pc = 0
            while pc < k {
                let kb = min(kc, k - pc), kbPadded = roundUp(kb, kAlign)
                let first = pc == 0
                let bp = UnsafeMutableRawPointer(panel.reserve(kbPadded * slivers * nr * elementBytes))
                let bSliverBytes = kbPadded * nr * elementBytes
                Parallel.forEach(slivers, threads: workers) { s, w in
                    packB(kb, min(nr, nb - s * nr), pc, jc + s * nr, bp + s * bSliverBytes, w)
                }
                let blocks = rowBlocks.count
                let chunks = blocks >= workers ? 1 : min(slivers, (workers + blocks - 1) / blocks * 2)
                let aSliverBytes = kbPadded * mr * elementBytes
                // Tasks dealt as workers free up: on a machine where one core runs slower (a
                // shared VM), a fixed half each left the faster waiting at every K slice.
                Parallel.forEachDynamic(blocks * chunks, threads: workers) { task, w in
                    let (ic, mb) = rowBlocks[task / chunks]
                    let s0 = task % chunks * slivers / chunks, s1 = (task % chunks + 1) * slivers / chunks
                    if s0 >= s1 { return }
                    let ap = UnsafeMutableRawPointer(blocksOfA[w].reserve(roundUp(mb, mr) * kbPadded * elementBytes))
                    packA(mb, kb, ic, pc, ap)
                    for s in s0..<s1 {
                        let j = jc + s * nr, nbr = min(nr, n - j)
                        let bs = UnsafeRawPointer(bp + s * bSliverBytes)
                        var i = 0
                        while i < mb {
                            tile(kb, UnsafeRawPointer(ap + (i / mr) * aSliverBytes), bs,
                                 ic + i, j, min(mr, mb - i), nbr, first, w)
                            i += mr
                        }
                    }
                }
                pc += kb
            }
            jc += nb
        }
    }
}

extension BlockedGEMM {
    /// One panel of a product no taller than MC (a convolution's few output channels × many
    /// pixels): every B sliver is used by one task only, so each task — a contiguous range of
    /// the panel's slivers — packs its own slivers just before multiplying them, and walks K
    /// itself. One parallel region per panel instead of two per K slice, and no sliver packed
    /// by one core and read by the other.
    func shortProduct(m: Int, n: Int, k: Int, jc: Int, slivers: Int, kc: Int, workers: Int, blocksOfA: [Scratch<UInt8>],
                      packA: PackA, packB: PackB, tile: Tile) {
        // A fixed share each: more, smaller chunks dealt dynamically each pack A again, which cost
        // more than the balance gained (ResNet-20's 64×576×392 on two threads: 144 → 67–101 GFLOP/s).
        let chunks = workers == 1 ? 1 : min(slivers, workers * 2)
        let sliverBuffers = (0..<workers).map { _ in ScratchPool.take(kc * nr * elementBytes) }
        defer { ScratchPool.give(sliverBuffers) }
        Parallel.forEach(chunks, threads: workers) { c, w in
            let s0 = c * slivers / chunks, s1 = (c + 1) * slivers / chunks
            if s0 >= s1 { return }
            var pc = 0
            while pc < k {
                let kb = min(kc, k - pc), kbPadded = roundUp(kb, kAlign)
                let aSliverBytes = kbPadded * mr * elementBytes
                let ap = UnsafeMutableRawPointer(blocksOfA[w].reserve(roundUp(m, mr) * kbPadded * elementBytes))
                packA(m, kb, 0, pc, ap)
                let bs = UnsafeMutableRawPointer(sliverBuffers[w].reserve(kbPadded * nr * elementBytes))
                for s in s0..<s1 {
                    let j = jc + s * nr, nbr = min(nr, n - j)
                    packB(kb, nbr, pc, j, bs, w)
                    var i = 0
                    while i < m {
                        tile(kb, UnsafeRawPointer(ap + (i / mr) * aSliverBytes), UnsafeRawPointer(bs), i, j, min(mr, m - i), nbr, pc == 0, w)
                        i += mr
                    }
                }
                pc += kb
            }
        }
    }

    /// The MC-tall blocks of A's rows, of equal height (to within MR) so that dealing them to
    /// workers balances: the rows are cut into one contiguous part per worker, each part into
    /// equal blocks of at most MC rows, and the blocks interleaved part by part (a round-robin
    /// split gives every worker the same rows). (Blocks of MC from the top left the last worker a
    /// short block: 576 against 448 rows of 1024 on two workers.)
    /// Products with fewer blocks than workers keep one block per MC rows: their tasks split
    /// the panel's columns instead, so each core reads half of B rather than all of it for
    /// half the rows.
    static func rowBlocks(m: Int, mr: Int, mc: Int, workers: Int) -> [(row: Int, rows: Int)] {
        let blocksPerWorker = (m + mc * workers - 1) / (mc * workers)
        if workers <= 1 || (m + mc - 1) / mc < workers {
            return stride(from: 0, to: m, by: mc).map { ($0, min(mc, m - $0)) }
        }
        let part = roundUp((m + workers - 1) / workers, mr)
        let block = roundUp((part + blocksPerWorker - 1) / blocksPerWorker, mr)
        var byWorker: [[(row: Int, rows: Int)]] = []
        for w in 0..<workers {
            let start = w * part, end = min(m, start + part)
            byWorker.append(stride(from: start, to: end, by: block).map { ($0, min(block, end - $0)) })
        }
        var out: [(row: Int, rows: Int)] = []
        for i in 0..<(byWorker.map(\.count).max() ?? 0) { for w in byWorker where i < w.count { out.append(w[i]) } }
        return out
    }
}

@inline(__always) func roundUp(_ x: Int, _ to: Int) -> Int { (x + to - 1) / to * to }
