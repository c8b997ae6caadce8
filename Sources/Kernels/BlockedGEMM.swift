import Runtime
/// The five loops of a BLIS-style GEMM, shared by every element type.
///
/// `jc` walks NC-wide panels of B, `pc` KC-deep slices of K, and for each (jc, pc) the panel
/// of B is packed once by all workers together. Then tasks — MC-tall blocks of A × column
/// chunks of the panel, so short wide products (a conv's few output channels × many pixels)
/// still use every worker — each pack their block of A into the worker's own buffer and run
/// the micro-kernel over every MR×NR tile. Packing zero-pads partial slivers, so one kernel
/// serves edge tiles too.
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

        var jc = 0
        while jc < n {
            let nb = min(nc, n - jc)
            let slivers = (nb + nr - 1) / nr
            var pc = 0
            while pc < k {
                let kb = min(kc, k - pc), kbPadded = roundUp(kb, kAlign)
                let first = pc == 0
                let bp = UnsafeMutableRawPointer(panel.reserve(kbPadded * slivers * nr * elementBytes))
                let bSliverBytes = kbPadded * nr * elementBytes
                Parallel.forEach(slivers, threads: workers) { s, w in
                    packB(kb, min(nr, nb - s * nr), pc, jc + s * nr, bp + s * bSliverBytes, w)
                }
                let blocks = (m + mc - 1) / mc
                let chunks = blocks >= workers ? 1 : min(slivers, (workers + blocks - 1) / blocks * 2)
                let sliversPerChunk = (slivers + chunks - 1) / chunks
                let aSliverBytes = kbPadded * mr * elementBytes
                Parallel.forEach(blocks * chunks, threads: workers) { task, w in
                    let ic = task / chunks * mc, mb = min(mc, m - ic)
                    let s0 = task % chunks * sliversPerChunk, s1 = min(slivers, s0 + sliversPerChunk)
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

@inline(__always) func roundUp(_ x: Int, _ to: Int) -> Int { (x + to - 1) / to * to }
