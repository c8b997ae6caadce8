import Testing
import Kernels

/// The batch-1 products at 8, 4 and 2 bits equal the plain dot products of the codes, for row
/// counts off the thread split and lengths off the 64/128/256-code blocks, with codes at the
/// ends of each width's range (2 bits: 12 blocks, a full group of 8 for the AVX2 kernel's 16-bit
/// sums and a partial one; 1,001 rows: an uneven split between the workers).
@Test(arguments: [(8, 1, 1), (8, 70, 200), (4, 3, 129), (4, 130, 4096), (2, 65, 257), (2, 200, 1000), (2, 9, 2817), (8, 1001, 64)])
func gemvMatchesDotProducts(_ shape: (Int, Int, Int)) {
    let (bits, n, k) = shape
    var r = TestRandom(seed: UInt64(bits * 10_000 + n * 100 + k))
    let lo = bits == 8 ? -128 : -(1 << (bits - 1)), hi = bits == 8 ? 127 : (1 << (bits - 1)) - 1
    var codes = (0..<(n * k)).map { _ in Int8(lo + Int(r.next() % UInt64(hi - lo + 1))) }
    codes[0] = Int8(lo); codes[n * k - 1] = Int8(hi)
    // Codes 255 in the first half of x: the 16-bit pair sums of the AVX2 kernels at their bound.
    let x = (0..<k).map { p in p < k / 2 ? 255 : UInt8(truncatingIfNeeded: r.next()) }
    let w = GEMV.Weights(codes: codes, n: n, k: k, bits: bits)
    let dots = (0..<n).map { j in Int32((0..<k).reduce(0) { $0 + Int(x[$1]) * Int(codes[j * k + $1]) }) }
    // Every kernel this CPU runs: the plain reference, VNNI, AVX2.
    for backend in [IGEMM.Backend.swift, .vnni, .avx2] where backend.runs {
        var y = [Int32](repeating: 0, count: n)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { GEMV.multiply(w, x: xp.baseAddress!, y: $0.baseAddress!, threads: 2, backend: backend) }
        }
        #expect(y == dots, "\(shape) \(backend)")
    }
    #expect(w.data.count == n * ((k + 64 * 8 / bits - 1) / (64 * 8 / bits)) * 64)
}

/// Every code at the top (and for 8 bits also the bottom) of its range against x all 255: the
/// AVX2 kernels' 16-bit pair sums at their largest still add up exactly.
@Test func gemvAtTheSixteenBitBound() {
    let (n, k) = (3, 4096 + 64 * 5)
    let x = [UInt8](repeating: 255, count: k)
    for (bits, code) in [(8, Int8.min), (8, Int8.max), (4, 7), (4, -8), (2, 1), (2, -2)] {
        let w = GEMV.Weights(codes: [Int8](repeating: code, count: n * k), n: n, k: k, bits: bits)
        for backend in [IGEMM.Backend.swift, .vnni, .avx2] where backend.runs {
            var y = [Int32](repeating: 0, count: n)
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { GEMV.multiply(w, x: xp.baseAddress!, y: $0.baseAddress!, threads: 1, backend: backend) }
            }
            #expect(y == [Int32](repeating: Int32(255 * k * Int(code)), count: n), "\(bits) bits, code \(code), \(backend)")
        }
    }
}
