/// GEMM on ±1 values packed 64 per UInt64 word (XNOR-Net).
///
/// Packing: bit `p mod 64` of word `⌊p/64⌋` of a row is 1 when element p is −1 (x < 0) and 0
/// when it is +1 (x ≥ 0, so sign(0) = +1). For two rows of k elements,
/// dot = (agreements) − (disagreements) = k − 2·popcount(a XOR b), with the bits past k in the
/// last word masked out, so rows packed elsewhere with garbage tails still give exact results.
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
    public static func multiply(m: Int, n: Int, k: Int, a: UnsafePointer<UInt64>, b: UnsafePointer<UInt64>,
                                c: UnsafeMutablePointer<Int32>, ldc: Int, threads: Int = Parallel.defaultThreads) {
        if m <= 0 || n <= 0 { return }
        let w = words(k)
        if w == 0 {
            for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) }
            return
        }
        let tailMask: UInt64 = k % 64 == 0 ? ~0 : (1 << UInt64(k % 64)) - 1
        let rowBlocks = (m + 3) / 4
        Parallel.forEach(rowBlocks, threads: threads) { blk, _ in
            let i0 = blk * 4
            var j0 = 0
            while j0 < n {
                if i0 + 4 <= m && j0 + 4 <= n {
                    block4x4(k: k, w: w, tailMask: tailMask, a: a + i0 * w, b: b + j0 * w,
                             dots: c + i0 * ldc + j0, ldc: ldc)
                } else {
                    for i in i0..<min(m, i0 + 4) {
                        for j in j0..<min(n, j0 + 4) {
                            var ones = popcount(a + i * w, b + j * w, words: w)
                            ones -= ((a[i * w + w - 1] ^ b[j * w + w - 1]) & ~tailMask).nonzeroBitCount
                            c[i * ldc + j] = Int32(truncatingIfNeeded: k - 2 * ones)
                        }
                    }
                }
                j0 += 4
            }
        }
    }

    /// popcount(a XOR b) over `words` words: the oracle and the edge path.
    @inline(__always)
    static func popcount(_ a: UnsafePointer<UInt64>, _ b: UnsafePointer<UInt64>, words: Int) -> Int {
        var s = 0
        for q in 0..<words { s &+= (a[q] ^ b[q]).nonzeroBitCount }
        return s
    }

    /// Dot products of a 4×4 block of ±1 rows, eight words at a time with vector popcounts.
    @inline(__always)
    static func block4x4(k: Int, w: Int, tailMask: UInt64, a: UnsafePointer<UInt64>, b: UnsafePointer<UInt64>,
                         dots: UnsafeMutablePointer<Int32>, ldc: Int) {
        typealias V = SIMD8<UInt64>
        var s00 = V(), s01 = V(), s02 = V(), s03 = V()
        var s10 = V(), s11 = V(), s12 = V(), s13 = V()
        var s20 = V(), s21 = V(), s22 = V(), s23 = V()
        var s30 = V(), s31 = V(), s32 = V(), s33 = V()
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        let stride = w * 8
        var q = 0
        while q + 8 <= w {
            let o = q * 8
            let a0 = ra.loadUnaligned(fromByteOffset: o, as: V.self)
            let a1 = ra.loadUnaligned(fromByteOffset: o + stride, as: V.self)
            let a2 = ra.loadUnaligned(fromByteOffset: o + 2 * stride, as: V.self)
            let a3 = ra.loadUnaligned(fromByteOffset: o + 3 * stride, as: V.self)
            let b0 = rb.loadUnaligned(fromByteOffset: o, as: V.self)
            let b1 = rb.loadUnaligned(fromByteOffset: o + stride, as: V.self)
            let b2 = rb.loadUnaligned(fromByteOffset: o + 2 * stride, as: V.self)
            let b3 = rb.loadUnaligned(fromByteOffset: o + 3 * stride, as: V.self)
            s00 &+= (a0 ^ b0).nonzeroBitCount; s01 &+= (a0 ^ b1).nonzeroBitCount
            s02 &+= (a0 ^ b2).nonzeroBitCount; s03 &+= (a0 ^ b3).nonzeroBitCount
            s10 &+= (a1 ^ b0).nonzeroBitCount; s11 &+= (a1 ^ b1).nonzeroBitCount
            s12 &+= (a1 ^ b2).nonzeroBitCount; s13 &+= (a1 ^ b3).nonzeroBitCount
            s20 &+= (a2 ^ b0).nonzeroBitCount; s21 &+= (a2 ^ b1).nonzeroBitCount
            s22 &+= (a2 ^ b2).nonzeroBitCount; s23 &+= (a2 ^ b3).nonzeroBitCount
            s30 &+= (a3 ^ b0).nonzeroBitCount; s31 &+= (a3 ^ b1).nonzeroBitCount
            s32 &+= (a3 ^ b2).nonzeroBitCount; s33 &+= (a3 ^ b3).nonzeroBitCount
            q += 8
        }
        // Reduce the accumulators, add the scalar tail words, drop bits past k, and turn
        // disagreement counts into dot products. Every lane holds at most 64·⌈w/8⌉ ≤ k + 511
        // ones, so while that fits 16 bits four accumulators share one horizontal sum, each in
        // its own 16-bit field: a quarter of the reductions, which matter at small k.
        let packed = k + 511 < 1 << 16
        @inline(__always) func finishRow(_ i: Int, _ v0: V, _ v1: V, _ v2: V, _ v3: V) {
            var counts: (Int, Int, Int, Int)
            if packed {
                let all = (v0 | (v1 &<< 16) | (v2 &<< 32) | (v3 &<< 48)).wrappedSum()
                counts = (Int(all & 0xFFFF), Int((all >> 16) & 0xFFFF), Int((all >> 32) & 0xFFFF), Int(all >> 48))
            } else {
                counts = (Int(v0.wrappedSum()), Int(v1.wrappedSum()), Int(v2.wrappedSum()), Int(v3.wrappedSum()))
            }
            withUnsafeBytes(of: &counts) { raw in
                for j in 0..<4 {
                    var ones = raw.load(fromByteOffset: j * 8, as: Int.self)
                    if q < w { ones &+= popcount(a + i * w + q, b + j * w + q, words: w - q) }
                    if tailMask != ~0 {
                        ones &-= ((a[i * w + w - 1] ^ b[j * w + w - 1]) & ~tailMask).nonzeroBitCount
                    }
                    dots[i * ldc + j] = Int32(truncatingIfNeeded: k &- 2 &* ones)
                }
            }
        }
        finishRow(0, s00, s01, s02, s03)
        finishRow(1, s10, s11, s12, s13)
        finishRow(2, s20, s21, s22, s23)
        finishRow(3, s30, s31, s32, s33)
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
