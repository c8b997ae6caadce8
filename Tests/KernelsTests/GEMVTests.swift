import Testing
import Kernels

/// The batch-1 products at 8, 4 and 2 bits equal the plain dot products of the codes, for row
/// counts off the thread split and lengths off the 64/128/256-code blocks, with codes at the
/// ends of each width's range.
@Test(arguments: [(8, 1, 1), (8, 70, 200), (4, 3, 129), (4, 130, 4096), (2, 65, 257), (2, 200, 1000)])
func gemvMatchesDotProducts(_ shape: (Int, Int, Int)) {
    let (bits, n, k) = shape
    var r = TestRandom(seed: UInt64(bits * 10_000 + n * 100 + k))
    let lo = bits == 8 ? -128 : -(1 << (bits - 1)), hi = bits == 8 ? 127 : (1 << (bits - 1)) - 1
    var codes = (0..<(n * k)).map { _ in Int8(lo + Int(r.next() % UInt64(hi - lo + 1))) }
    codes[0] = Int8(lo); codes[n * k - 1] = Int8(hi)
    let x = (0..<k).map { _ in UInt8(truncatingIfNeeded: r.next()) }
    let w = GEMV.Weights(codes: codes, n: n, k: k, bits: bits)
    var y = [Int32](repeating: 0, count: n)
    x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { GEMV.multiply(w, x: xp.baseAddress!, y: $0.baseAddress!, threads: 2) } }
    let dots = (0..<n).map { j in Int32((0..<k).reduce(0) { $0 + Int(x[$1]) * Int(codes[j * k + $1]) }) }
    #expect(y == dots, "\(shape)")
    #expect(w.data.count == n * ((k + 64 * 8 / bits - 1) / (64 * 8 / bits)) * 64)
}
