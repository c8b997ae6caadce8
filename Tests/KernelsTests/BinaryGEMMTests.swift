import Testing
import Kernels

/// METHODS.md's check: the binary dot product equals the float dot product of ±1 vectors for
/// every length 1…200 (so every tail length of the last word).
@Test func binaryDotMatchesFloatForEveryLength() {
    var r = TestRandom(seed: 3)
    for k in 1...200 {
        let m = 5, n = 6
        let a = r.floats(m * k).map { $0 < 0 ? Float(-1) : 1 }
        let b = r.floats(n * k).map { $0 < 0 ? Float(-1) : 1 }
        let w = BinaryGEMM.words(k)
        var pa = [UInt64](repeating: 0, count: m * w), pb = [UInt64](repeating: 0, count: n * w)
        BinaryGEMM.packSigns(a, rows: m, cols: k, ld: k, into: &pa)
        BinaryGEMM.packSigns(b, rows: n, cols: k, ld: k, into: &pb)
        // Garbage past k in the last word must not matter.
        for i in 0..<m where k % 64 != 0 { pa[i * w + w - 1] |= ~((1 << UInt64(k % 64)) - 1) }
        var c = [Int32](repeating: 0, count: m * n), ref = c
        BinaryGEMM.multiply(m: m, n: n, k: k, a: pa, b: pb, c: &c, ldc: n, threads: 2)
        BinaryGEMM.reference(m: m, n: n, k: k, a: a, b: b, c: &ref, ldc: n)
        var dots: [Int32] = []
        for i in 0..<m { for j in 0..<n { dots.append(Int32((0..<k).reduce(Float(0)) { $0 + a[i * k + $1] * b[j * k + $1] })) } }
        #expect(c == ref, "k = \(k)")
        #expect(c == dots, "k = \(k)")
    }
}

@Test(arguments: [(1, 1, 1), (4, 4, 512), (7, 9, 1000), (33, 17, 4096), (65, 3, 577)])
func binaryGEMMMatchesReference(_ shape: (Int, Int, Int)) {
    let (m, n, k) = shape
    var r = TestRandom(seed: UInt64(m * n * k))
    let a = r.floats(m * k), b = r.floats(n * k)
    let w = BinaryGEMM.words(k)
    var pa = [UInt64](repeating: 0, count: m * w), pb = [UInt64](repeating: 0, count: n * w)
    BinaryGEMM.packSigns(a, rows: m, cols: k, ld: k, into: &pa)
    BinaryGEMM.packSigns(b, rows: n, cols: k, ld: k, into: &pb)
    var c = [Int32](repeating: 0, count: m * n), ref = c
    BinaryGEMM.multiply(m: m, n: n, k: k, a: pa, b: pb, c: &c, ldc: n)
    BinaryGEMM.reference(m: m, n: n, k: k, a: a, b: b, c: &ref, ldc: n)
    #expect(c == ref)
}
