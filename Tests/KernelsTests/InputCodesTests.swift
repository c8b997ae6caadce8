import Testing
import Kernels

/// `InputCodes.plane` (the engine's image to codes) against the plain loop, byte for byte: exact
/// ties of both signs (x / scale = k + ½ rounds away from zero), values far past the range on
/// both sides, signed and unsigned ranges, 1…70 values (vector tails), codes 1 and 4 bytes apart.
@Test func inputCodesMatchThePlainLoop() {
    var r = TestRandom(seed: 41)
    for (lo, hi) in [(Int32(-128), Int32(127)), (0, 255), (-8, 7)] {
        for scale in [0.25, 0.0173, 3.0] {
            for count in [1, 7, 16, 33, 70] {
                let x: [Float] = (0..<count).map { i in
                    switch r.int(0...3) {
                    case 0: Float(r.int(-600...600)) * Float(scale) / 2    // k / 2: ties where k is odd
                    case 1: Float(r.int(-1_000_000...1_000_000))
                    default: Float(r.int(-4000...4000)) / 1000
                    }
                }
                for stride in [1, 4] {
                    var fast = [UInt8](repeating: 0xAA, count: count * stride), plain = fast
                    x.withUnsafeBufferPointer { xs in
                        fast.withUnsafeMutableBufferPointer { InputCodes.plane(xs.baseAddress!, count: count, scale: scale, lo: lo, hi: hi, into: $0.baseAddress!, stride: stride) }
                        plain.withUnsafeMutableBufferPointer { InputCodes.reference(xs.baseAddress!, count: count, scale: scale, lo: lo, hi: hi, into: $0.baseAddress!, stride: stride) }
                    }
                    #expect(fast == plain, "codes \(lo)…\(hi), scale \(scale), \(count) values, stride \(stride)")
                }
            }
        }
    }
}
