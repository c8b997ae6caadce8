import CKernels
import Runtime
/// Single-precision general matrix multiply, BLIS style: the loops of `BlockedGEMM` around a
/// 12×32 AVX-512 micro-kernel, or a 6×16 AVX2 one (CKernels/sgemm_avx2.c) on CPUs without
/// AVX-512. Edge tiles are computed into a small buffer, then merged.
public enum SGEMM {
    /// The micro-kernels: `wide` (12×32, or 8×32 for short products; 512-bit registers, plain
    /// Swift SIMD elsewhere) and `avx2` (6×16 in ymm registers).
    public enum MicroKernel: Sendable {
        case wide, avx2
        /// The kernel this CPU runs best: AVX-512 when it has it, else AVX2 + FMA when it has that.
        public static let best: MicroKernel = mpq_cpu_has_avx512f() == 0 && hasAVX2 ? .avx2 : .wide
        /// Whether this CPU can run the kernel at all (the wide one's Swift form runs anywhere).
        public var runs: Bool { self == .wide || Self.hasAVX2 }
        /// Probed once: `multiply` asks on every call.
        static let hasAVX2 = mpq_cpu_has_avx2_fma() == 1
        var mr: Int { self == .wide ? 12 : 6 }
        var nr: Int { self == .wide ? 32 : 16 }
    }
    /// Rows and columns of the micro-tile this CPU's kernel computes.
    public static let mr = MicroKernel.best.mr
    public static let nr = MicroKernel.best.nr
    /// Depth of a packed slice: an NR-sliver of B (KC·NR·4 = 32 KiB) stays in L1.
    public static var kc = 256
    /// Height of an A block (MC·KC·4 = 192 KiB), kept in L2.
    public static var mc = 192
    /// Width of a B panel (KC·NC·4 = 4 MiB), kept in L3.
    public static var nc = 4096

    /// C = α·op(A)·op(B) + β·C for row-major matrices.
    ///
    /// op(A) is m×k: element (i, p) is `a[i*lda + p]`, or `a[p*lda + i]` when `transA`.
    /// op(B) is k×n: element (p, j) is `b[p*ldb + j]`, or `b[j*ldb + p]` when `transB`.
    /// When β is 0, C is write-only. Arguments are not checked here: the Tensor layer does that.
    public static func multiply(
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, transA: Bool = false,
        b: UnsafePointer<Float>, ldb: Int, transB: Bool = false,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int,
        threads: Int = Parallel.defaultThreads, microKernel: MicroKernel = .best
    ) {
        if m <= 0 || n <= 0 { return }
        if k <= 0 || alpha == 0 {
            scale(m: m, n: n, beta: beta, c: c, ldc: ldc)
            return
        }
        let workers = max(1, min(threads, Parallel.availableCores * 4))
        // Short products (a conv's 16, 32 or 64 output channels) use the 8-row kernel when it
        // pads fewer rows than the 12-row one; tall ones keep the 12-row kernel's better
        // ratio of multiply-adds to loads.
        let microKernel = microKernel.runs ? microKernel : .wide
        let nr = microKernel.nr, tallest = microKernel.mr
        let mr = microKernel == .wide && m <= 96 && roundUp(m, 8) - m < roundUp(m, 12) - m ? 8 : tallest
        var tileBuffer = [Float](repeating: 0, count: workers * tallest * nr)
        let driver = BlockedGEMM(mr: mr, nr: nr, kc: kc, mc: mc / mr * mr, nc: nc, elementBytes: 4)
        tileBuffer.withUnsafeMutableBufferPointer { tileStorage in
        let tiles = tileStorage.baseAddress!
        driver.run(m: m, n: n, k: k, threads: workers,
            packA: { mb, kb, row, col, dst in
                packA(m: mb, k: kb, mr: mr, a: a, lda: lda, trans: transA, row: row, col: col,
                      into: dst.assumingMemoryBound(to: Float.self))
            },
            packB: { kb, nb, row, col, dst, _ in
                packB(k: kb, n: nb, nr: nr, b: b, ldb: ldb, trans: transB, row: row, col: col,
                      into: dst.assumingMemoryBound(to: Float.self))
            },
            tile: { kb, ap, bp, i, j, mbr, nbr, first, w in
                runTile(mr: mr, nr: nr, kb: kb, a: ap.assumingMemoryBound(to: Float.self), b: bp.assumingMemoryBound(to: Float.self),
                        c: c + i * ldc + j, ldc: ldc, rows: mbr, columns: nbr, alpha: alpha, beta: first ? beta : 1,
                        scratch: tiles + w * tallest * nr)
            })
        }
    }

    /// C = β·C (β = 0 writes zeros without reading C).
    static func scale(m: Int, n: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        for i in 0..<m {
            let row = c + i * ldc
            if beta == 0 { row.update(repeating: 0, count: n) } else if beta != 1 {
                for j in 0..<n { row[j] *= beta }
            }
        }
    }

    /// Packs rows `row..<row+m`, columns `col..<col+k` of op(A) into MR-row slivers, k-major,
    /// zero-padding the last sliver to MR rows.
    @inline(__always)
    static func packA(m: Int, k: Int, mr: Int, a: UnsafePointer<Float>, lda: Int, trans: Bool,
                      row: Int, col: Int, into dst: UnsafeMutablePointer<Float>) {
        var out = dst
        var i = 0
        while i < m {
            let rows = min(mr, m - i)
            if !trans {
                // 8×8 blocks transposed in registers (CKernels/transpose.c); the plain loop is
                // `packTransposedReference` with n = rows, nr = MR.
                mpq_pack_rows_f32(Int64(k), Int64(rows), a + (row + i) * lda + col, Int64(lda), out, Int64(mr))
            } else {
                let src = a + col * lda + row + i
                for p in 0..<k {
                    let s = src + p * lda
                    for r in 0..<rows { out[p * mr + r] = s[r] }
                    for r in rows..<mr { out[p * mr + r] = 0 }
                }
            }
            out += k * mr
            i += mr
        }
    }

    /// Packs rows `row..<row+k`, columns `col..<col+n` (n ≤ NR) of op(B) into one NR-column
    /// sliver, k-major, zero-padding to NR columns.
    @inline(__always)
    static func packB(k: Int, n: Int, nr: Int, b: UnsafePointer<Float>, ldb: Int, trans: Bool,
                      row: Int, col: Int, into dst: UnsafeMutablePointer<Float>) {
        if !trans {
            let src = b + row * ldb + col
            if n == nr && nr == 32 {
                for p in 0..<k {
                    let s = UnsafeRawPointer(src + p * ldb), d = UnsafeMutableRawPointer(dst + p * nr)
                    d.storeBytes(of: s.loadUnaligned(as: SIMD16<Float>.self), as: SIMD16<Float>.self)
                    d.storeBytes(of: s.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self),
                                 toByteOffset: 64, as: SIMD16<Float>.self)
                }
            } else if n == nr && nr == 16 {
                for p in 0..<k {
                    let s = UnsafeRawPointer(src + p * ldb), d = UnsafeMutableRawPointer(dst + p * nr)
                    d.storeBytes(of: s.loadUnaligned(as: SIMD16<Float>.self), as: SIMD16<Float>.self)
                }
            } else {
                for p in 0..<k {
                    let s = src + p * ldb, d = dst + p * nr
                    for j in 0..<n { d[j] = s[j] }
                    for j in n..<nr { d[j] = 0 }
                }
            }
        } else {
            // 16×16 blocks transposed in registers (CKernels/transpose.c); `packTransposedReference` is its plain loop.
            mpq_pack_transposed_f32(Int64(k), Int64(n), b + col * ldb + row, Int64(ldb), dst, Int64(nr))
        }
    }

    /// The plain loop of the transposed packing: dst[p·nr + j] = src[j·ld + p], zero past `n`.
    public static func packTransposedReference(k: Int, n: Int, src: UnsafePointer<Float>, ld: Int, nr: Int, into dst: UnsafeMutablePointer<Float>) {
        for p in 0..<k {
            let d = dst + p * nr
            for j in 0..<n { d[j] = src[j * ld + p] }
            for j in n..<nr { d[j] = 0 }
        }
    }

    /// A's packing as the GEMM runs it: rows `0..<rows` of `src` (row stride `ld`), columns
    /// `0..<k`, into one MR-row sliver (for tests against `packTransposedReference`).
    public static func packRows(k: Int, rows: Int, src: UnsafePointer<Float>, ld: Int, mr: Int, into dst: UnsafeMutablePointer<Float>) {
        mpq_pack_rows_f32(Int64(k), Int64(rows), src, Int64(ld), dst, Int64(mr))
    }

    /// The transposed packing as the GEMM runs it (for tests against the reference).
    public static func packTransposed(k: Int, n: Int, src: UnsafePointer<Float>, ld: Int, nr: Int, into dst: UnsafeMutablePointer<Float>) {
        mpq_pack_transposed_f32(Int64(k), Int64(n), src, Int64(ld), dst, Int64(nr))
    }

    /// The oracle: a plain triple loop accumulating in Double. Slow on purpose.
    public static func reference(
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, transA: Bool = false,
        b: UnsafePointer<Float>, ldb: Int, transB: Bool = false,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    let x = transA ? a[p * lda + i] : a[i * lda + p]
                    let y = transB ? b[j * ldb + p] : b[p * ldb + j]
                    s += Double(x) * Double(y)
                }
                let old = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])
                c[i * ldc + j] = Float(Double(alpha) * s + old)
            }
        }
    }
}

