import Runtime
/// GEMM on ±1 values packed 64 per UInt64 word (XNOR-Net).
///
/// Packing: bit `p mod 64` of word `⌊p/64⌋` of a row is 1 when element p is −1 (x < 0) and 0
/// when it is +1 (x ≥ 0, so sign(0) = +1). For two rows of k elements,
/// dot = (agreements) − (disagreements) = k − 2·popcount(a XOR b), with the bits past k in the
/// last word masked out, so rows packed elsewhere with garbage tails still give exact results.
/// (Garbage in A's last word is cleared as it is broadcast, in B's as B is regrouped.)
public enum BinaryGEMM {
    /// Words per packed row of k elements.
    public static func words(_ k: Int) -> Int { (k + 63) / 64 }

    /// Packs the signs of `rows`×`cols` floats (row stride `ld`) into rows of `words(cols)` words.
    public static func packSigns(_ x: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int,
                                 into dst: UnsafeMutablePointer<UInt64>) {
        let w = words(cols)
        for r in 0..<rows {
            let src = x + r * ld, out = dst + r * w
            for q in 0..<w {
                var word: UInt64 = 0
                let base = q * 64, count = min(64, cols - base)
                for t in 0..<count where src[base + t] < 0 { word |= 1 << UInt64(t) }
                out[q] = word
            }
        }
    }

    /// C[i, j] = Σ_p A[i, p]·B[j, p] for ±1 rows: A is m rows, B n rows (both k long, `words(k)`
    /// words per row). C is Int32, row stride `ldc`.
    ///
    /// B is first regrouped so that one 512-bit load holds the same word of 8 consecutive rows
    /// (`bt[block][word][row]`, the bits past k cleared). Then each A word, broadcast, meets 32
    /// rows of B in four XOR–popcount–add steps (four A rows at a time share each B load), and
    /// every accumulator lane is one (i, j) pair: no horizontal sums at all, which is what made
    /// short rows (k = 1024) slow.
    public static func multiply(m: Int, n: Int, k: Int, a: UnsafePointer<UInt64>, b: UnsafePointer<UInt64>,
                                c: UnsafeMutablePointer<Int32>, ldc: Int, threads: Int = Parallel.defaultThreads) {
        if m <= 0 || n <= 0 { return }
        let w = words(k)
        if w == 0 {
            for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) }
            return
        }
        let tailMask: UInt64 = k % 64 == 0 ? ~0 : (1 << UInt64(k % 64)) - 1
        let blocks = (n + 7) / 8
        let bt = UnsafeMutablePointer<UInt64>.allocate(capacity: blocks * w * 8)
        defer { bt.deallocate() }
        Parallel.forEach(blocks, threads: threads) { blk, _ in
            for q in 0..<w {
                let mask = q == w - 1 ? tailMask : ~0
                for r in 0..<8 {
                    let j = blk * 8 + r
                    bt[(blk * w + q) * 8 + r] = j < n ? b[j * w + q] & mask : 0
                }
            }
        }
        let quads = (blocks + 3) / 4
        // Four A rows share every B load where both fit; the rest go one row at a time.
        Parallel.forEach((m + 3) / 4, threads: threads) { group, _ in
            let i0 = group * 4
            for quad in 0..<quads {
                let b0 = quad * 4, nb = min(4, blocks - b0), columns = min(32, n - b0 * 8)
                if i0 + 4 <= m && nb == 4 {
                    fourRowsTimesFourBlocks(rows: a + i0 * w, w: w, tailMask: tailMask, bt: bt + b0 * w * 8, k: k,
                                            out: c + i0 * ldc + b0 * 8, ldc: ldc, columns: columns)
                } else {
                    for i in i0..<min(m, i0 + 4) {
                        rowTimesBlocks(row: a + i * w, w: w, tailMask: tailMask, bt: bt + b0 * w * 8, blocks: nb, k: k,
                                       out: c + i * ldc + b0 * 8, columns: columns)
                    }
                }
            }
        }
    }

    /// Four A rows against four 8-row blocks of regrouped B: 16 accumulators, each B load used
    /// four times.
    @inline(__always)
    static func fourRowsTimesFourBlocks(rows: UnsafePointer<UInt64>, w: Int, tailMask: UInt64, bt: UnsafePointer<UInt64>,
                                        k: Int, out: UnsafeMutablePointer<Int32>, ldc: Int, columns: Int) {
        typealias V = SIMD8<UInt64>
        var s00 = V(), s01 = V(), s02 = V(), s03 = V(), s10 = V(), s11 = V(), s12 = V(), s13 = V()
        var s20 = V(), s21 = V(), s22 = V(), s23 = V(), s30 = V(), s31 = V(), s32 = V(), s33 = V()
        let raw = UnsafeRawPointer(bt), stride = w * 64
        for q in 0..<w {
            let mask = q == w - 1 ? tailMask : ~0
            let o = q * 64
            let b0 = raw.loadUnaligned(fromByteOffset: o, as: V.self)
            let b1 = raw.loadUnaligned(fromByteOffset: o + stride, as: V.self)
            let b2 = raw.loadUnaligned(fromByteOffset: o + 2 * stride, as: V.self)
            let b3 = raw.loadUnaligned(fromByteOffset: o + 3 * stride, as: V.self)
            let x0 = V(repeating: rows[q] & mask), x1 = V(repeating: rows[w + q] & mask)
            let x2 = V(repeating: rows[2 * w + q] & mask), x3 = V(repeating: rows[3 * w + q] & mask)
            s00 &+= (x0 ^ b0).nonzeroBitCount; s01 &+= (x0 ^ b1).nonzeroBitCount
            s02 &+= (x0 ^ b2).nonzeroBitCount; s03 &+= (x0 ^ b3).nonzeroBitCount
            s10 &+= (x1 ^ b0).nonzeroBitCount; s11 &+= (x1 ^ b1).nonzeroBitCount
            s12 &+= (x1 ^ b2).nonzeroBitCount; s13 &+= (x1 ^ b3).nonzeroBitCount
            s20 &+= (x2 ^ b0).nonzeroBitCount; s21 &+= (x2 ^ b1).nonzeroBitCount
            s22 &+= (x2 ^ b2).nonzeroBitCount; s23 &+= (x2 ^ b3).nonzeroBitCount
            s30 &+= (x3 ^ b0).nonzeroBitCount; s31 &+= (x3 ^ b1).nonzeroBitCount
            s32 &+= (x3 ^ b2).nonzeroBitCount; s33 &+= (x3 ^ b3).nonzeroBitCount
        }
        let kk = SIMD8<Int32>(repeating: Int32(truncatingIfNeeded: k))
        @inline(__always) func store(_ s: V, _ r: Int, _ block: Int) {
            let dots = kk &- 2 &* SIMD8<Int32>(truncatingIfNeeded: s)
            let dst = out + r * ldc + block * 8
            let n = min(8, columns - block * 8)
            if n == 8 { UnsafeMutableRawPointer(dst).storeBytes(of: dots, as: SIMD8<Int32>.self) } else {
                for t in 0..<max(0, n) { dst[t] = dots[t] }
            }
        }
        store(s00, 0, 0); store(s01, 0, 1); store(s02, 0, 2); store(s03, 0, 3)
        store(s10, 1, 0); store(s11, 1, 1); store(s12, 1, 2); store(s13, 1, 3)
        store(s20, 2, 0); store(s21, 2, 1); store(s22, 2, 2); store(s23, 2, 3)
        store(s30, 3, 0); store(s31, 3, 1); store(s32, 3, 2); store(s33, 3, 3)
    }

    /// One A row against up to four 8-row blocks of regrouped B: dots for up to 32 columns.
    @inline(__always)
    static func rowTimesBlocks(row: UnsafePointer<UInt64>, w: Int, tailMask: UInt64, bt: UnsafePointer<UInt64>,
                               blocks: Int, k: Int, out: UnsafeMutablePointer<Int32>, columns: Int) {
        typealias V = SIMD8<UInt64>
        var s0 = V(), s1 = V(), s2 = V(), s3 = V()
        let raw = UnsafeRawPointer(bt), stride = w * 64
        if blocks == 4 {
            for q in 0..<w {
                let x = V(repeating: q == w - 1 ? row[q] & tailMask : row[q])
                let o = q * 64
                s0 &+= (x ^ raw.loadUnaligned(fromByteOffset: o, as: V.self)).nonzeroBitCount
                s1 &+= (x ^ raw.loadUnaligned(fromByteOffset: o + stride, as: V.self)).nonzeroBitCount
                s2 &+= (x ^ raw.loadUnaligned(fromByteOffset: o + 2 * stride, as: V.self)).nonzeroBitCount
                s3 &+= (x ^ raw.loadUnaligned(fromByteOffset: o + 3 * stride, as: V.self)).nonzeroBitCount
            }
        } else {
            for q in 0..<w {
                let x = V(repeating: q == w - 1 ? row[q] & tailMask : row[q])
                let o = q * 64
                s0 &+= (x ^ raw.loadUnaligned(fromByteOffset: o, as: V.self)).nonzeroBitCount
                if blocks > 1 { s1 &+= (x ^ raw.loadUnaligned(fromByteOffset: o + stride, as: V.self)).nonzeroBitCount }
                if blocks > 2 { s2 &+= (x ^ raw.loadUnaligned(fromByteOffset: o + 2 * stride, as: V.self)).nonzeroBitCount }
            }
        }
        let kk = SIMD8<Int32>(repeating: Int32(truncatingIfNeeded: k))
        @inline(__always) func store(_ s: V, _ block: Int) {
            let dots = kk &- 2 &* SIMD8<Int32>(truncatingIfNeeded: s)
            let n = min(8, columns - block * 8)
            if n == 8 {
                UnsafeMutableRawPointer(out + block * 8).storeBytes(of: dots, as: SIMD8<Int32>.self)
            } else if n > 0 {
                for t in 0..<n { out[block * 8 + t] = dots[t] }
            }
        }
        store(s0, 0); store(s1, 1); store(s2, 2); store(s3, 3)
    }

    /// popcount(a XOR b) over `words` words: the oracle and the edge path.
    @inline(__always)
    static func popcount(_ a: UnsafePointer<UInt64>, _ b: UnsafePointer<UInt64>, words: Int) -> Int {
        var s = 0
        for q in 0..<words { s &+= (a[q] ^ b[q]).nonzeroBitCount }
        return s
    }

    /// The oracle on unpacked ±1 floats: C[i, j] = Σ_p sign(A[i, p])·sign(B[j, p]).
    public static func reference(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                                 c: UnsafeMutablePointer<Int32>, ldc: Int) {
        for i in 0..<m {
            for j in 0..<n {
                var s: Int32 = 0
                for p in 0..<k { s += ((a[i * k + p] < 0) == (b[j * k + p] < 0)) ? 1 : -1 }
                c[i * ldc + j] = s
            }
        }
    }
}
