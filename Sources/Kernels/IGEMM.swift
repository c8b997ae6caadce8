import CKernels
import Runtime

/// Integer GEMM with 32-bit accumulation: C (Int32) = op(A) · op(B) (+ C).
///
/// A holds activation codes (UInt8, or Int8 for the signed variant), B weight codes (Int8, or
/// packed 4/2/… bit signed codes). Packing lays K out in groups of 4 so that the VNNI kernel
/// (`vpdpbusd`, 64 u8×s8 products per instruction) can run; where VNNI is missing an AVX2 kernel
/// on the same layout (CKernels/igemm_avx2.c: codes widened to Int16, `vpmaddwd`), else a Swift
/// one, the one both are tested against. Signed A is shifted into
/// u8 (a + 128) and corrected with 128·Σ_p B[p, j] afterwards, which is exact in Int32.
///
/// Overflow: |a·b| ≤ 255·128, so sums stay exact for K ≤ 65,000.
public enum IGEMM {
    public enum Backend: String, Sendable {
        case automatic, swift, vnni, avx2
        /// Whether this CPU runs the backend's kernels.
        public var runs: Bool {
            switch self {
            case .automatic, .swift: true
            case .vnni: IGEMM.hasVNNI
            case .avx2: IGEMM.hasAVX2
            }
        }
        /// The kernel a request runs: `.automatic` is this CPU's best, one the CPU lacks is `.swift`.
        public var resolved: Backend { self == .automatic ? IGEMM.activeBackend : runs ? self : .swift }
    }

    /// Whether this CPU runs the VNNI kernel.
    public static let hasVNNI: Bool = mpq_cpu_has_avx512_vnni() != 0
    /// Whether this CPU runs the AVX2 convolution tile (CKernels/conv_avx2.c).
    public static let hasAVX2: Bool = mpq_cpu_has_avx2_fma() != 0

    nonisolated(unsafe) public static var backend: Backend = .automatic

    /// The kernel that `backend` selects on this CPU.
    public static var activeBackend: Backend {
        switch backend {
        case .automatic: return hasVNNI ? .vnni : hasAVX2 ? .avx2 : .swift
        case .vnni: return hasVNNI ? .vnni : .swift
        case .avx2: return hasAVX2 ? .avx2 : .swift
        case .swift: return .swift
        }
    }

    static let mr = 12, nr = 32
    nonisolated(unsafe) public static var kc = 512, mc = 192, nc = 4096

    /// How B is given: Int8 codes (row-major k×n, or n×k when `transposed`), or rows of packed
    /// signed codes at `bits` per code — row `j` of n holds the k codes of column j, `rowBytes`
    /// apart (the layout of a weight matrix Cout × K).
    public enum Weights {
        case int8(UnsafePointer<Int8>, ld: Int, transposed: Bool)
        case packed(UnsafePointer<UInt8>, bits: Int, rowBytes: Int)
    }

    /// C = A·B (+ C when `accumulate`), A unsigned m×k with row stride `lda`.
    public static func multiply(m: Int, n: Int, k: Int, a: UnsafePointer<UInt8>, lda: Int, b: Weights,
                                c: UnsafeMutablePointer<Int32>, ldc: Int, accumulate: Bool = false,
                                threads: Int = Parallel.defaultThreads) {
        run(m: m, n: n, k: k, a: a, lda: lda, flipSign: false, b: b, c: c, ldc: ldc,
            accumulate: accumulate, threads: threads)
    }

    /// C = A·B (+ C when `accumulate`), A signed m×k with row stride `lda`.
    public static func multiply(m: Int, n: Int, k: Int, a: UnsafePointer<Int8>, lda: Int, b: Weights,
                                c: UnsafeMutablePointer<Int32>, ldc: Int, accumulate: Bool = false,
                                threads: Int = Parallel.defaultThreads) {
        if m <= 0 || n <= 0 { return }
        let au = UnsafeRawPointer(a).assumingMemoryBound(to: UInt8.self)
        run(m: m, n: n, k: k, a: au, lda: lda, flipSign: true, b: b, c: c, ldc: ldc,
            accumulate: accumulate, threads: threads)
        // Undo the +128 shift of A: subtract 128 · column sums of B.
        var sums = [Int32](repeating: 0, count: n)
        var column = [UInt8](repeating: 0, count: max(k, 1))
        for j in 0..<n {
            var s: Int32 = 0
            column.withUnsafeMutableBufferPointer { col in
                weightColumn(b, j: j, from: 0, count: k, into: col.baseAddress!)
                for p in 0..<k { s &+= Int32(Int8(bitPattern: col[p])) }
            }
            sums[j] = s &* 128
        }
        for i in 0..<m {
            let row = c + i * ldc
            for j in 0..<n { row[j] &-= sums[j] }
        }
    }

    /// Copies codes `from..<from+count` of column `j` of B into `dst` as Int8 bit patterns.
    @inline(__always)
    static func weightColumn(_ b: Weights, j: Int, from: Int, count: Int, into dst: UnsafeMutablePointer<UInt8>) {
        switch b {
        case let .int8(p, ld, transposed):
            let raw = UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self)
            if transposed {
                dst.update(from: raw + j * ld + from, count: count)
            } else {
                for t in 0..<count { dst[t] = raw[(from + t) * ld + j] }
            }
        case let .packed(p, bits, rowBytes):
            BitPacking.unpack(p + j * rowBytes, first: from, count: count, bits: bits, signed: true, into: dst)
        }
    }

    static func run(m: Int, n: Int, k: Int, a: UnsafePointer<UInt8>, lda: Int, flipSign: Bool, b: Weights,
                    c: UnsafeMutablePointer<Int32>, ldc: Int, accumulate: Bool, threads: Int) {
        if m <= 0 || n <= 0 { return }
        if k <= 0 {
            if !accumulate { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
            return
        }
        let kernel = activeBackend
        let workers = max(1, threads)
        let tiles = (0..<workers).map { _ in Scratch<Int32>(capacity: mr * nr) }
        let columns = (0..<workers).map { _ in Scratch<UInt8>(capacity: roundUp(kc, 4)) }
        let flip: UInt8 = flipSign ? 0x80 : 0
        let driver = BlockedGEMM(mr: mr, nr: nr, kc: kc, mc: mc, nc: nc, kAlign: 4, elementBytes: 1)
        driver.run(m: m, n: n, k: k, threads: workers,
            packA: { mb, kb, row, col, dst in
                // Sliver layout: a[(g·MR + i)·4 + t] = A[row + i, col + 4g + t], zero-padded.
                let d = dst.assumingMemoryBound(to: UInt8.self)
                let groups = (kb + 3) / 4
                var i0 = 0
                while i0 < mb {
                    let sliver = d + i0 / mr * groups * mr * 4
                    let rows = min(mr, mb - i0)
                    for i in 0..<mr {
                        if i >= rows {
                            for g in 0..<groups { (sliver + (g * mr + i) * 4).update(repeating: 0, count: 4) }
                            continue
                        }
                        let src = a + (row + i0 + i) * lda + col
                        for p in 0..<kb { sliver[((p >> 2) * mr + i) * 4 + (p & 3)] = src[p] ^ flip }
                        for p in kb..<groups * 4 { sliver[((p >> 2) * mr + i) * 4 + (p & 3)] = 0 }
                    }
                    i0 += mr
                }
            },
            packB: { kb, nb, row, col, dst, w in
                // Sliver layout: b[(g·NR + j)·4 + t] = B[row + 4g + t, col + j], zero-padded.
                let d = dst.assumingMemoryBound(to: UInt8.self)
                let groups = (kb + 3) / 4
                let column = columns[w].reserve(groups * 4)
                for j in 0..<nr {
                    if j < nb {
                        weightColumn(b, j: col + j, from: row, count: kb, into: column)
                        for p in kb..<groups * 4 { column[p] = 0 }
                        for g in 0..<groups {
                            (d + (g * nr + j) * 4).update(from: column + g * 4, count: 4)
                        }
                    } else {
                        for g in 0..<groups { (d + (g * nr + j) * 4).update(repeating: 0, count: 4) }
                    }
                }
            },
            tile: { kb, ap, bp, i, j, mbr, nbr, first, w in
                let add = accumulate || !first
                let groups = (kb + 3) / 4
                let a8 = ap.assumingMemoryBound(to: UInt8.self), b8 = bp.assumingMemoryBound(to: Int8.self)
                let cij = c + i * ldc + j
                let full = mbr == mr && nbr == nr
                let out = full ? cij : tiles[w].pointer, ld = full ? ldc : nr
                if kernel == .vnni {
                    mpq_igemm_u8s8_vnni_12x32(Int64(groups), a8, b8, out, Int64(ld), full && add ? 1 : 0)
                } else if kernel == .avx2 {
                    mpq_igemm_u8s8_avx2_12x32(Int64(groups), a8, b8, out, Int64(ld), full && add ? 1 : 0)
                } else {
                    igemmSwiftKernel(groups: groups, a: a8, b: b8, c: out, ldc: ld, accumulate: full && add)
                }
                if !full {
                    for r in 0..<mbr {
                        let dst = cij + r * ldc, src = out + r * nr
                        if add { for q in 0..<nbr { dst[q] &+= src[q] } } else { dst.update(from: src, count: nbr) }
                    }
                }
            })
    }

    /// The oracle: C = A·B (+ C) by a plain triple loop, A unsigned or signed (`signedA`).
    public static func reference(m: Int, n: Int, k: Int, a: UnsafePointer<UInt8>, lda: Int, signedA: Bool,
                                 b: Weights, c: UnsafeMutablePointer<Int32>, ldc: Int, accumulate: Bool = false) {
        var column = [UInt8](repeating: 0, count: max(k, 1))
        for j in 0..<n {
            column.withUnsafeMutableBufferPointer { col in
                weightColumn(b, j: j, from: 0, count: k, into: col.baseAddress!)
                for i in 0..<m {
                    var s: Int32 = accumulate ? c[i * ldc + j] : 0
                    for p in 0..<k {
                        let x = signedA ? Int32(Int8(bitPattern: a[i * lda + p])) : Int32(a[i * lda + p])
                        s &+= x * Int32(Int8(bitPattern: col[p]))
                    }
                    c[i * ldc + j] = s
                }
            }
        }
    }
}

/// The Swift int8 micro-kernel on the VNNI layout (see `mpq_igemm_u8s8_vnni_12x32`): plain
/// widening multiply-adds, 16 columns at a time. Portable and exact, several times slower.
@inline(__always)
func igemmSwiftKernel(groups: Int, a: UnsafePointer<UInt8>, b: UnsafePointer<Int8>,
                      c: UnsafeMutablePointer<Int32>, ldc: Int, accumulate: Bool) {
    let mr = 12, nr = 32
    var acc = [SIMD16<Int32>](repeating: .zero, count: mr * 2)
    acc.withUnsafeMutableBufferPointer { acc in
        for g in 0..<groups {
            let bg = b + g * nr * 4
            for t in 0..<4 {
                var b0 = SIMD16<Int32>(), b1 = SIMD16<Int32>()
                for j in 0..<16 {
                    b0[j] = Int32(bg[j * 4 + t])
                    b1[j] = Int32(bg[(16 + j) * 4 + t])
                }
                for i in 0..<mr {
                    let x = SIMD16<Int32>(repeating: Int32(a[(g * mr + i) * 4 + t]))
                    acc[i * 2] &+= x &* b0
                    acc[i * 2 + 1] &+= x &* b1
                }
            }
        }
        for i in 0..<mr {
            let row = UnsafeMutableRawPointer(c + i * ldc)
            var lo = acc[i * 2], hi = acc[i * 2 + 1]
            if accumulate {
                lo &+= row.loadUnaligned(as: SIMD16<Int32>.self)
                hi &+= row.loadUnaligned(fromByteOffset: 64, as: SIMD16<Int32>.self)
            }
            row.storeBytes(of: lo, as: SIMD16<Int32>.self)
            row.storeBytes(of: hi, toByteOffset: 64, as: SIMD16<Int32>.self)
        }
    }
}
