import Testing
import Kernels

struct GEMMCase: CustomStringConvertible, Sendable {
    var m: Int, n: Int, k: Int, transA: Bool, transB: Bool, alpha: Float, beta: Float, threads: Int
    var description: String { "m\(m) n\(n) k\(k) tA\(transA) tB\(transB) α\(alpha) β\(beta) t\(threads)" }
}

/// Every awkward (m, n) pair at a few depths, both transposes, and α/β variants.
let gemmCases: [GEMMCase] = {
    var r = TestRandom(seed: 7)
    var cases: [GEMMCase] = []
    for m in awkwardSizes {
        for n in awkwardSizes {
            let k = awkwardSizes[r.int(0...(awkwardSizes.count - 1))]
            cases.append(GEMMCase(m: m, n: n, k: k, transA: r.next() % 2 == 0, transB: r.next() % 2 == 0,
                                  alpha: [1, -0.5, 2][r.int(0...2)], beta: [0, 1, 0.25][r.int(0...2)],
                                  threads: 1 + r.int(0...1)))
        }
    }
    cases.append(GEMMCase(m: 300, n: 290, k: 600, transA: false, transB: false, alpha: 1, beta: 0, threads: 2))
    cases.append(GEMMCase(m: 16, n: 3136, k: 144, transA: false, transB: false, alpha: 1, beta: 0, threads: 2))
    cases.append(GEMMCase(m: 257, n: 33, k: 1030, transA: true, transB: true, alpha: 1, beta: 1, threads: 2))
    // Deeper than a packed B's slices where A's rows are read in place (`SGEMM.rowsDepth`): three of 700.
    cases.append(GEMMCase(m: 40, n: 45, k: 2100, transA: false, transB: true, alpha: 1, beta: 0.25, threads: 2))
    // A short product walking K in three slices inside each task (packing its own B slivers),
    // tall ones whose rows are cut into equal parts per worker, and more workers than cores.
    cases.append(GEMMCase(m: 64, n: 392, k: 576, transA: false, transB: false, alpha: 1, beta: 0.25, threads: 2))
    cases.append(GEMMCase(m: 1000, n: 70, k: 300, transA: false, transB: true, alpha: 1, beta: 0, threads: 2))
    cases.append(GEMMCase(m: 385, n: 45, k: 70, transA: true, transB: false, alpha: -0.5, beta: 1, threads: 2))
    cases.append(GEMMCase(m: 700, n: 50, k: 70, transA: false, transB: false, alpha: 1, beta: 0, threads: 3))
    return cases
}()

/// f32 error bound. Each C element is a K-term dot product, then α· and +β·C. Summation of K
/// products in any order has |error| ≤ γ_K · Σ|a||b| with γ_K = K·u/(1 − K·u), u = 2⁻²⁴; the
/// α multiply, β multiply-add and the reference's own rounding add a few u·|terms| more.
func gemmBound(k: Int, absDot: Double, alpha: Float, beta: Float, c0: Float) -> Double {
    let u = 0x1p-24
    let gamma = Double(k + 3) * u / (1 - Double(k + 3) * u)
    return gamma * (Double(abs(alpha)) * absDot + Double(abs(beta * c0))) + 1e-30
}

/// A case's operands, with leading dimensions larger than the rows (to catch stride mistakes),
/// C's starting values, and the reference's C.
func gemmOperands(_ t: GEMMCase, _ r: inout TestRandom)
    -> (lda: Int, ldb: Int, ldc: Int, a: [Float], b: [Float], c0: [Float], reference: [Float]) {
    let lda = (t.transA ? t.m : t.k) + 3, ldb = (t.transB ? t.k : t.n) + 5, ldc = t.n + 2
    let a = r.floats((t.transA ? t.k : t.m) * lda), b = r.floats((t.transB ? t.n : t.k) * ldb)
    let c0 = r.floats(t.m * ldc)
    var ref = c0
    SGEMM.reference(m: t.m, n: t.n, k: t.k, alpha: t.alpha, a: a, lda: lda, transA: t.transA,
                    b: b, ldb: ldb, transB: t.transB, beta: t.beta, c: &ref, ldc: ldc)
    return (lda, ldb, ldc, a, b, c0, ref)
}

/// Σ_p |op(A)[i, p]·op(B)[p, j]|, the scale of C[i, j]'s rounding error.
func absoluteDot(_ t: GEMMCase, _ a: [Float], _ lda: Int, _ b: [Float], _ ldb: Int, _ i: Int, _ j: Int) -> Double {
    var sum = 0.0
    for p in 0..<t.k {
        let x = t.transA ? a[p * lda + i] : a[i * lda + p]
        let y = t.transB ? b[j * ldb + p] : b[p * ldb + j]
        sum += abs(Double(x) * Double(y))
    }
    return sum
}

/// Each case on both micro-kernels (12×32 wide, 6×16 AVX2) where this CPU runs them.
@Test(arguments: gemmCases, [SGEMM.MicroKernel.wide, .avx2])
func sgemmMatchesReference(_ t: GEMMCase, _ kernel: SGEMM.MicroKernel) {
    guard kernel.runs else { return }
    var r = TestRandom(seed: UInt64(t.m * 1_000_003 + t.n * 1009 + t.k))
    let (lda, ldb, ldc, a, b, c0, ref) = gemmOperands(t, &r)
    var c = c0
    SGEMM.multiply(m: t.m, n: t.n, k: t.k, alpha: t.alpha, a: a, lda: lda, transA: t.transA,
                   b: b, ldb: ldb, transB: t.transB, beta: t.beta, c: &c, ldc: ldc, threads: t.threads, microKernel: kernel)
    var worst = 0.0
    for i in 0..<t.m {
        for j in 0..<t.n {
            let absDot = absoluteDot(t, a, lda, b, ldb, i, j)
            let err = abs(Double(c[i * ldc + j]) - Double(ref[i * ldc + j]))
            let bound = gemmBound(k: t.k, absDot: absDot, alpha: t.alpha, beta: t.beta, c0: c0[i * ldc + j])
            worst = max(worst, err / bound)
        }
        // Padding columns between n and ldc must be untouched.
        for j in t.n..<ldc { #expect(c[i * ldc + j] == c0[i * ldc + j]) }
    }
    #expect(worst <= 1, "error reached \(worst)× the γ_K bound")
}

/// B packed once (`SGEMM.PackedB`: K in equal slices, read in place by one parallel region)
/// gives the reference's product within the same bound, on every case and both micro-kernels;
/// every other case adds a bias and a ReLU (one rounding more: the bias's).
@Test(arguments: gemmCases, [SGEMM.MicroKernel.wide, .avx2])
func packedSgemmMatchesReference(_ t: GEMMCase, _ kernel: SGEMM.MicroKernel) {
    guard kernel.runs else { return }
    var r = TestRandom(seed: UInt64(t.m * 1_000_003 + t.n * 1009 + t.k + 17))
    let (lda, ldb, ldc, a, b, c0, ref) = gemmOperands(t, &r)
    let bias = r.floats(t.n), epilogue = (t.m + t.n) % 2 == 0
    var c = c0
    let packed = SGEMM.PackedB(k: t.k, n: t.n, b: b, ldb: ldb, transB: t.transB, microKernel: kernel)
    _ = bias.withUnsafeBufferPointer { bp in
        SGEMM.multiply(m: t.m, alpha: t.alpha, a: a, lda: lda, transA: t.transA, packed: packed, beta: t.beta, c: &c, ldc: ldc,
                       bias: epilogue ? bp.baseAddress : nil, relu: epilogue, threads: t.threads)
    }
    var worst = 0.0
    for i in 0..<t.m {
        for j in 0..<t.n {
            let absDot = absoluteDot(t, a, lda, b, ldb, i, j)
            var expected = Double(ref[i * ldc + j])
            var bound = gemmBound(k: t.k, absDot: absDot, alpha: t.alpha, beta: t.beta, c0: c0[i * ldc + j])
            if epilogue {
                expected = max(expected + Double(bias[j]), 0)
                bound += 0x1p-23 * (abs(Double(ref[i * ldc + j])) + abs(Double(bias[j])))
            }
            worst = max(worst, abs(Double(c[i * ldc + j]) - expected) / bound)
        }
        for j in t.n..<ldc { #expect(c[i * ldc + j] == c0[i * ldc + j]) }
    }
    #expect(worst <= 1, "\(t) packed: error reached \(worst)× the bound")
}

@Test func sgemmBetaZeroIgnoresNaNInC() {
    let a: [Float] = [1, 2, 3, 4], b: [Float] = [1, 0, 0, 1]
    var c = [Float](repeating: .nan, count: 4)
    SGEMM.multiply(m: 2, n: 2, k: 2, a: a, lda: 2, b: b, ldb: 2, beta: 0, c: &c, ldc: 2)
    #expect(c == [1, 2, 3, 4])
}

@Test func sgemmEmptyDepthScalesC() {
    var c: [Float] = [1, 2, 3]
    SGEMM.multiply(m: 1, n: 3, k: 0, a: [], lda: 1, b: [], ldb: 3, beta: 2, c: &c, ldc: 3)
    #expect(c == [2, 4, 6])
}

/// A's sliver packing (8×8 blocks in registers with AVX2, any height up to the sliver's MR)
/// equals the plain loop exactly and writes nothing past its k·MR floats.
@Test func rowPackingMatchesItsReference() {
    var r = TestRandom(seed: 12)
    for k in awkwardSizes + [16, 40] {
        for mr in [6, 8, 12] {
            for rows in 1...mr {
                let ld = k + 5
                let src = (0..<(rows * ld)).map { _ in Float(r.int(-1000...1000)) / 7 }
                var fast = [Float](repeating: .nan, count: k * mr + 8), plain = [Float](repeating: .nan, count: k * mr + 8)
                src.withUnsafeBufferPointer { s in
                    SGEMM.packRows(k: k, rows: rows, src: s.baseAddress!, ld: ld, mr: mr, into: &fast)
                    SGEMM.packTransposedReference(k: k, n: rows, src: s.baseAddress!, ld: ld, nr: mr, into: &plain)
                }
                #expect(fast[..<(k * mr)].elementsEqual(plain[..<(k * mr)]), "k \(k) rows \(rows) mr \(mr): the packed sliver differs from the plain loop")
                #expect(fast[(k * mr)...].allSatisfy { $0.isNaN }, "k \(k) rows \(rows) mr \(mr): wrote past the sliver")
            }
        }
    }
}

/// The transposed packing (16×16 blocks in registers with AVX-512, 8×8 with AVX2, ragged edges
/// element by element) equals its plain loop exactly, on every awkward depth and width up to one
/// sliver, at an odd row stride.
@Test func transposedPackingMatchesItsReference() {
    var r = TestRandom(seed: 11)
    for k in awkwardSizes + [16, 32, 48] {
        for n in [1, 7, 15, 16, 17, 31, 32] {
            let ld = k + 3
            let src = (0..<(n * ld)).map { _ in Float(r.int(-1000...1000)) / 7 }
            for nr in [16, 32] where n <= nr {
                var fast = [Float](repeating: .nan, count: k * nr), plain = [Float](repeating: .nan, count: k * nr)
                src.withUnsafeBufferPointer { s in
                    SGEMM.packTransposed(k: k, n: n, src: s.baseAddress!, ld: ld, nr: nr, into: &fast)
                    SGEMM.packTransposedReference(k: k, n: n, src: s.baseAddress!, ld: ld, nr: nr, into: &plain)
                }
                #expect(fast.elementsEqual(plain), "k \(k) n \(n) nr \(nr): the packed sliver differs from the plain loop")
            }
        }
    }
}

/// The kernel that reads A's rows in place (AVX-512: 1…12 rows × 1…32 columns, ragged columns
/// masked) gives the packing kernels' sums exactly — the same products added in the same order,
/// β·C fused in both — on every case whose A is not transposed, each with and without the bias
/// and ReLU (in the kernel, as `SGEMM.epilogue` after the packing kernels), ragged columns and
/// rows included.
@Test(arguments: gemmCases.filter { !$0.transA })
func rowsInPlaceEqualPackedRows(_ t: GEMMCase) {
    guard SGEMM.rowsInPlace else { return }
    let p = PackedRowsCase(t, seed: UInt64(t.m * 31 + t.n * 7 + t.k))
    for epilogue in [false, true] {
        let (fast, plain) = (p.run(inPlace: true, epilogue: epilogue).c, p.run(inPlace: false, epilogue: epilogue).c)
        let differ = zip(fast, plain).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(differ == 0, "\(t) epilogue \(epilogue): \(differ) differ")
    }
}

/// A case's operands with B packed for the wide kernel, and its product through
/// `multiply(packed:)` (on A, or another A of the same layout): C and what the call returned.
struct PackedRowsCase {
    let t: GEMMCase, lda: Int, ldc: Int, a: [Float], c0: [Float], bias: [Float], packed: SGEMM.PackedB
    init(_ t: GEMMCase, seed: UInt64) {
        var r = TestRandom(seed: seed)
        let (lda, ldb, ldc, a, b, c0, _) = gemmOperands(t, &r)
        (self.t, self.lda, self.ldc, self.a, self.c0) = (t, lda, ldc, a, c0)
        bias = r.floats(t.n)
        packed = SGEMM.PackedB(k: t.k, n: t.n, b: b, ldb: ldb, transB: t.transB, microKernel: .wide)
    }
    func run(_ other: [Float]? = nil, inPlace: Bool, epilogue: Bool) -> (c: [Float], finite: Bool) {
        var c = c0
        let finite = bias.withUnsafeBufferPointer { bp in
            SGEMM.multiply(m: t.m, alpha: t.alpha, a: other ?? a, lda: lda, packed: packed, beta: t.beta, c: &c, ldc: ldc,
                           bias: epilogue ? bp.baseAddress : nil, relu: epilogue, threads: t.threads, rowsInPlace: inPlace)
        }
        return (c, finite)
    }
}

/// What `multiply(packed:)` reports: true when the in-place kernel stored only finite values
/// (before the ReLU), so A held no NaN or infinity; false for one such element of A anywhere —
/// the last row, the last K slice, a ragged column block — and always from the packing path.
/// An element past K in A's row (the leading dimension's padding) is not read: still true.
@Test(arguments: gemmCases.filter { !$0.transA })
func packedProductReportsNonFiniteInput(_ t: GEMMCase) {
    guard SGEMM.rowsInPlace else { return }
    let p = PackedRowsCase(t, seed: UInt64(t.m * 131 + t.n * 17 + t.k))
    var r = TestRandom(seed: UInt64(t.k))
    let epilogue = (t.m + t.k) % 2 == 0
    #expect(p.run(inPlace: true, epilogue: epilogue).finite, "\(t): finite operands reported as not finite")
    #expect(!p.run(inPlace: false, epilogue: epilogue).finite, "\(t): the packing path vouched for A")
    var padded = p.a
    padded[(t.m - 1) * p.lda + t.k] = .nan
    #expect(p.run(padded, inPlace: true, epilogue: epilogue).finite, "\(t): an element past K was read")
    let places = [(t.m - 1, t.k - 1), (0, 0), (r.int(0...(t.m - 1)), r.int(0...(t.k - 1)))]
    for (value, (i, k)) in zip([Float.nan, .infinity, -.infinity], places) {
        var a = p.a
        a[i * p.lda + k] = value
        #expect(!p.run(a, inPlace: true, epilogue: true).finite, "\(t): \(value) at (\(i), \(k)) not reported (ReLU)")
        #expect(!p.run(a, inPlace: true, epilogue: false).finite, "\(t): \(value) at (\(i), \(k)) not reported")
    }
}
