import CKernels
import Runtime

extension SGEMM {
    /// op(B) packed once for many products: a layer's weights, multiplied by every batch that
    /// passes through it (ONNX Runtime packs a Gemm's constant B the same way). The slivers are
    /// laid out as `multiply` packs them — K cut into equal slices, each slice's NR-column slivers
    /// side by side — so a product reads them in place: no packing of B and, with B read-only, no
    /// barrier between K slices (one parallel region per product). Slices are at most KC deep, or
    /// `rowsDepth` where the kernel reading A's rows in place runs.
    public final class PackedB: @unchecked Sendable {
        /// op(B) is k×n.
        public let k: Int, n: Int
        /// Depth of a slice (K split evenly: 784 = 4·196, not 3·256 + 16) and the sliver width.
        let kc: Int, nr: Int
        let microKernel: MicroKernel
        private let storage: [Float]

        /// Packs op(B): element (p, j) is `b[p*ldb + j]`, or `b[j*ldb + p]` when `transB`.
        public init(k: Int, n: Int, b: UnsafePointer<Float>, ldb: Int, transB: Bool = false, microKernel: MicroKernel = .best) {
            precondition(k > 0 && n > 0, "SGEMM.PackedB: empty operand \(k)×\(n)")
            let microKernel = microKernel.runs ? microKernel : .wide
            let nr = microKernel.nr, slivers = (n + nr - 1) / nr
            let depth = microKernel == .wide && SGEMM.rowsInPlace ? SGEMM.rowsDepth : SGEMM.kc
            let slices = (k + depth - 1) / depth
            (self.k, self.n, self.nr, self.microKernel) = (k, n, nr, microKernel)
            kc = (k + slices - 1) / slices
            let kc = self.kc
            storage = [Float](unsafeUninitializedCapacity: k * slivers * nr) { buffer, count in
                let base = buffer.baseAddress!
                var pc = 0
                while pc < k {
                    let kb = min(kc, k - pc)
                    for s in 0..<slivers {
                        SGEMM.packB(k: kb, n: min(nr, n - s * nr), nr: nr, b: b, ldb: ldb, trans: transB,
                                    row: pc, col: s * nr, into: base + pc * slivers * nr + s * kb * nr)
                    }
                    pc += kb
                }
                count = k * slivers * nr
            }
        }

        var slivers: Int { (n + nr - 1) / nr }

        /// The sliver `s` of the slice that starts at depth `pc` (`kb` deep).
        func sliver(_ base: UnsafePointer<Float>, pc: Int, s: Int, kb: Int) -> UnsafePointer<Float> {
            base + pc * slivers * nr + s * kb * nr
        }

        func withStorage<R>(_ body: (UnsafePointer<Float>) -> R) -> R {
            storage.withUnsafeBufferPointer { body($0.baseAddress!) }
        }
    }

    /// C = α·op(A)·B + β·C with B packed beforehand (`PackedB`), row-major as `multiply`; then,
    /// when given, `bias[j]` added to every row and negatives set to zero (`relu`) — a linear
    /// layer's epilogue, applied to each tile while it is in cache.
    ///
    /// Tasks are blocks of A's rows × chunks of B's slivers, dealt to workers as they free up;
    /// each walks K itself, packing its block of A for every slice. The same micro-kernel and edge
    /// handling as `multiply`; the sums differ from it only where K is split differently.
    ///
    /// Returns whether the kernel that reads A in place (`rowsInPlace`) computed C and found every
    /// value finite before the ReLU — then A, B, C's old values and the bias were finite, as far
    /// as they entered C: a NaN or infinite A element makes every sum of its row NaN or infinite,
    /// so a caller can skip its own check of A. False when the packing path ran (nothing looked),
    /// or when a value was not finite (an overflow is one: check A then).
    @discardableResult
    public static func multiply(
        m: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, transA: Bool = false,
        packed b: PackedB, beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int,
        bias: UnsafePointer<Float>? = nil, relu: Bool = false, threads: Int = Parallel.defaultThreads,
        rowsInPlace: Bool = SGEMM.rowsInPlace
    ) -> Bool {
        let (n, k) = (b.n, b.k)
        if m <= 0 { return false }
        if alpha == 0 {
            scale(m: m, n: n, beta: beta, c: c, ldc: ldc)
            epilogue(c, ldc: ldc, rows: m, columns: n, bias: bias, relu: relu)
            return false
        }
        let kernel = b.microKernel, nr = b.nr, tallest = kernel.mr
        // Reading A in place, any number of rows makes whole tiles: no padding to choose by.
        let inPlace = kernel == .wide && !transA && rowsInPlace && Self.rowsInPlace
        let mr = !inPlace && kernel == .wide && m <= 96 && roundUp(m, 8) - m < roundUp(m, 12) - m ? 8 : tallest
        let workers = max(1, min(threads, Parallel.availableCores * 4))
        // On several workers, blocks of whole tiles (at most 8 tiles' rows), three a worker where
        // there are enough, taken as workers free up: their sizes within one tile of each other
        // and the largest dealt first, so the workers finish together (blocks of 4 tiles had left
        // one worker a last block of 2 on the MLP's 256 rows: 12% of its time on two threads).
        // Each block reads all of B once per slice: more, smaller blocks balance better and read
        // B more often. Products with fewer blocks than twice the workers split B's slivers too;
        // one worker takes MC-tall blocks whole (no block's A packed twice).
        let rowBlocks: [(row: Int, rows: Int)]
        if workers == 1 {
            let height = max(mr, mc / mr * mr)
            rowBlocks = stride(from: 0, to: m, by: height).map { (row: $0, rows: min(height, m - $0)) }
        } else {
            let tileCount = (m + mr - 1) / mr, count = min(tileCount, max(workers * 3, (tileCount + 7) / 8))
            rowBlocks = (0..<count).map { b in
                let (t0, t1) = (b * tileCount / count, (b + 1) * tileCount / count)
                return (row: t0 * mr, rows: min(t1 * mr, m) - t0 * mr)
            }.sorted { $0.rows > $1.rows }
        }
        let slivers = b.slivers, blocks = rowBlocks.count
        let chunks = workers == 1 || blocks >= 2 * workers ? 1 : min(slivers, (2 * workers + blocks - 1) / blocks)
        let tallestBlock = rowBlocks.map(\.rows).max() ?? mr
        let blocksOfA = inPlace ? [] : (0..<workers).map { _ in ScratchPool.take(roundUp(tallestBlock, mr) * b.kc * 4) }
        let tiles = ScratchPool.take(workers * tallest * nr * 4)
        defer { ScratchPool.give(blocksOfA + [tiles]) }
        let aBlocks = blocksOfA.map { UnsafeMutableRawPointer($0.pointer).assumingMemoryBound(to: Float.self) }
        let tileBase = UnsafeMutableRawPointer(tiles.pointer).assumingMemoryBound(to: Float.self)
        // Each task's own slot: whether a tile of its last slice stored a value not finite.
        var notFinite = [Int32](repeating: 0, count: blocks * chunks)
        notFinite.withUnsafeMutableBufferPointer { flags in
        let flags = flags.baseAddress!
        b.withStorage { bBase in
            Parallel.forEachDynamic(blocks * chunks, threads: workers) { task, w in
                let (ic, mb) = rowBlocks[task / chunks]
                let s0 = task % chunks * slivers / chunks, s1 = (task % chunks + 1) * slivers / chunks
                if s0 >= s1 { return }
                let ap = inPlace ? nil : aBlocks[w], tile = tileBase + w * tallest * nr
                var pc = 0
                while pc < k {
                    let kb = min(b.kc, k - pc)
                    // Where the kernel that reads A's rows in place runs (`inPlace`: no block of A), nothing is packed.
                    if let ap { packA(m: mb, k: kb, mr: mr, a: a, lda: lda, trans: transA, row: ic, col: pc, into: ap) }
                    for s in s0..<s1 {
                        let j = s * nr, bs = b.sliver(bBase, pc: pc, s: s, kb: kb)
                        var i = 0
                        while i < mb {
                            let cij = c + (ic + i) * ldc + j, rows = min(mr, mb - i), columns = min(nr, n - j)
                            if let ap {
                                runTile(mr: mr, nr: nr, kb: kb, a: ap + i * kb, b: bs, c: cij, ldc: ldc,
                                        rows: rows, columns: columns, alpha: alpha, beta: pc == 0 ? beta : 1, scratch: tile)
                                if pc + kb == k && (bias != nil || relu) {
                                    epilogue(cij, ldc: ldc, rows: rows, columns: columns, bias: bias.map { $0 + j }, relu: relu)
                                }
                            } else {
                                // Ragged columns masked in the kernel; the bias and ReLU in it, on the last slice.
                                let last = pc + kb == k
                                let bad = mpq_sgemm_rows_avx512(Int64(kb), Int64(rows), Int64(columns), a + (ic + i) * lda + pc, Int64(lda), bs, cij, Int64(ldc),
                                                                alpha, pc == 0 ? beta : 1, last ? bias.map { $0 + j } : nil, last && relu ? 1 : 0)
                                if last { flags[task] |= bad }
                            }
                            i += mr
                        }
                    }
                    pc += kb
                }
            }
        }
        }
        return inPlace && !notFinite.contains { $0 != 0 }
    }

    /// A finished tile's bias and ReLU.
    @inline(__always)
    static func epilogue(_ c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int, bias: UnsafePointer<Float>?, relu: Bool) {
        for r in 0..<rows {
            let row = c + r * ldc
            switch (bias, relu) {
            case (let b?, true): for q in 0..<columns { row[q] = max(row[q] + b[q], 0) }
            case (let b?, false): for q in 0..<columns { row[q] += b[q] }
            case (nil, true): for q in 0..<columns { row[q] = max(row[q], 0) }
            case (nil, false): break
            }
        }
    }

    /// One MR×NR tile of C from packed slivers: the micro-kernel (6×16 AVX2 when MR is 6, else
    /// the 8- or 12-row wide one) in place when the tile is whole, else into `scratch` and merged.
    @inline(__always)
    static func runTile(mr: Int, nr: Int, kb: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                        c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int,
                        alpha: Float, beta: Float, scratch: UnsafeMutablePointer<Float>) {
        func kernel(_ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ beta: Float) {
            if mr == 6 {
                mpq_sgemm_avx2_6x16(Int64(kb), a, b, c, Int64(ldc), alpha, beta)
            } else if mr == 8 {
                sgemmMicroKernel8x32(kc: kb, a: a, b: b, c: c, ldc: ldc, alpha: alpha, beta: beta)
            } else {
                sgemmMicroKernel12x32(kc: kb, a: a, b: b, c: c, ldc: ldc, alpha: alpha, beta: beta)
            }
        }
        if rows == mr && columns == nr {
            kernel(c, ldc, beta)
            return
        }
        kernel(scratch, nr, 0)
        merge(scratch, nr: nr, into: c, ldc: ldc, rows: rows, columns: columns, beta: beta)
    }

    /// An edge tile computed whole into `scratch` (`nr` floats a row), merged into C's `rows` × `columns`.
    @inline(__always)
    static func merge(_ scratch: UnsafePointer<Float>, nr: Int, into c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int, beta: Float) {
        for r in 0..<rows {
            let dst = c + r * ldc, src = scratch + r * nr
            if beta == 0 {
                for q in 0..<columns { dst[q] = src[q] }
            } else {
                // α·sum + β·C fused, as a whole tile's (sgemmMicroKernel12x32, the in-place kernel).
                for q in 0..<columns { dst[q] = src[q].addingProduct(beta, dst[q]) }
            }
        }
    }

    /// Depth of a packed B's slices where the in-place rows kernel runs: up to 1,024 in one slice.
    /// That kernel keeps a tile's sums in registers through a whole slice, and each further slice
    /// loads and stores the tile again; its B sliver streams from L2 (784·32·4 = 100 KB for the
    /// MLP's first layer) while the tile's rows stay in L1. The MLP at batch 256 took 2.2% / 3.8%
    /// less time on 1 / 2 threads with its 784-deep layer in one slice instead of four of 196 (an
    /// A/B of 8 alternated `mpq run` loops, a throwaway switch); two slices of 392 gained nothing.
    public static let rowsDepth = 1024

    /// Whether the kernel that reads A's rows in place (CKernels/sgemm_rows_avx512.c) runs here
    /// (AVX-512): `multiply(packed:)`'s default; tests pass false to hold it to the packing kernels.
    public static let rowsInPlace = mpq_cpu_has_avx512f() == 1
}
