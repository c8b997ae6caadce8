import Testing
import Kernels

/// (x·m + 2^(s−1)) >> s in Int64, saturated to Int32: the engine's dyadic requantization, written
/// out here independently of `Requantize.Scales.apply`.
private func dyadic(_ x: Int32, _ m: Int64, _ s: Int) -> Int32 {
    let v = (Int64(x) * m + (s > 0 ? Int64(1) << (s - 1) : 0)) >> s
    return Int32(min(max(v, Int64(Int32.min)), Int64(Int32.max)))
}

/// The elementwise steps (sums rescaled, with and without accumulation; codes clamped; signs
/// of sums and of codes packed) agree with the plain loops and with the formula, for channel counts off the 8-lane
/// vectors and the 64-bit words, pixel strides wider than the channels, one scale for all
/// channels or one each, shifts all ≥ 32 (the kernels' short form) or spread over 0…62, and
/// values at Int32's ends (saturation) and at the rounding point.
@Test(arguments: [(1, 3, true), (7, 2, false), (8, 5, true), (13, 4, false), (20, 3, true), (48, 2, false), (64, 3, false), (70, 2, true), (130, 2, false)])
func requantizeMatchesThePlainLoops(_ shape: (Int, Int, Bool)) {
    let (channels, pixels, perChannel) = shape
    var r = TestRandom(seed: UInt64(channels * 100 + pixels))
    let stride = channels + 3
    for shiftRange in [32...62, 0...62, 1...40] {
        let count = perChannel ? channels : 1
        var multipliers = (0..<count).map { _ in Int64(r.int(0...Int(Int32.max))) }
        var shifts = (0..<count).map { _ in r.int(shiftRange) }
        if perChannel && channels > 2 { multipliers[0] = 0; multipliers[1] = Int64(Int32.max); shifts[1] = shiftRange.lowerBound }
        let scales = Requantize.Scales(multipliers: multipliers, shifts: shifts, channels: channels)
        let src = (0..<(pixels * stride)).map { i -> Int32 in
            switch i % 11 {
            case 0: return Int32.min
            case 1: return Int32.max
            case 2: return -1
            default: return Int32(truncatingIfNeeded: r.next())
            }
        }
        let old = (0..<(pixels * stride)).map { _ in Int32(truncatingIfNeeded: r.next()) }
        func m(_ c: Int) -> Int64 { multipliers[perChannel ? c : 0] }
        func s(_ c: Int) -> Int { shifts[perChannel ? c : 0] }
        for accumulate in [false, true] {
            for backend in [IGEMM.Backend.avx2, .vnni] where backend.runs {
                var fast = old, plain = old
                src.withUnsafeBufferPointer { x in
                    fast.withUnsafeMutableBufferPointer {
                        Requantize.sums(pixels: pixels, scales, src: x.baseAddress!, srcStride: stride, dst: $0.baseAddress!, dstStride: stride,
                                        accumulate: accumulate, backend: backend)
                    }
                    plain.withUnsafeMutableBufferPointer {
                        Requantize.referenceSums(pixels: pixels, scales, src: x.baseAddress!, srcStride: stride, dst: $0.baseAddress!, dstStride: stride,
                                                 accumulate: accumulate)
                    }
                }
                let formula = (0..<(pixels * stride)).map { i -> Int32 in
                    let (c, q) = (i % stride, { dyadic(src[i], m(i % stride), s(i % stride)) })
                    return c >= channels ? old[i] : accumulate ? old[i] &+ q() : q()
                }
                #expect(fast == plain, "sums \(shape) shifts \(shiftRange) accumulate \(accumulate) \(backend)")
                #expect(plain == formula, "reference sums \(shape) shifts \(shiftRange) accumulate \(accumulate)")
            }
        }
        for (lo, hi) in [(Int32(0), Int32(255)), (-128, 127), (-8, 7), (0, 0)] {
            for backend in [IGEMM.Backend.avx2, .vnni] where backend.runs {
                var fast = [UInt8](repeating: 0xAA, count: pixels * stride), plain = fast
                src.withUnsafeBufferPointer { x in
                    fast.withUnsafeMutableBufferPointer {
                        Requantize.codes(pixels: pixels, scales, src: x.baseAddress!, srcStride: stride, dst: $0.baseAddress!, dstStride: stride, lo: lo, hi: hi,
                                         backend: backend)
                    }
                    plain.withUnsafeMutableBufferPointer {
                        Requantize.referenceCodes(pixels: pixels, scales, src: x.baseAddress!, srcStride: stride, dst: $0.baseAddress!, dstStride: stride,
                                                  lo: lo, hi: hi)
                    }
                }
                let formula = (0..<(pixels * stride)).map { i -> UInt8 in
                    i % stride >= channels ? 0xAA : UInt8(truncatingIfNeeded: min(max(dyadic(src[i], m(i % stride), s(i % stride)), lo), hi))
                }
                #expect(fast == plain, "codes \(shape) shifts \(shiftRange) \(lo)…\(hi) \(backend)")
                #expect(plain == formula, "reference codes \(shape) shifts \(shiftRange) \(lo)…\(hi)")
            }
        }
    }
    // Signs: one bit per channel, words past the last channel clear.
    let words = (channels + 63) / 64
    let src = (0..<(pixels * stride)).map { i in i % 7 == 0 ? 0 : Int32(truncatingIfNeeded: r.next()) }
    var fast = [UInt64](repeating: .max, count: pixels * words), plain = fast
    src.withUnsafeBufferPointer { x in
        fast.withUnsafeMutableBufferPointer { Requantize.signs(pixels: pixels, channels: channels, src: x.baseAddress!, srcStride: stride, dst: $0.baseAddress!) }
        plain.withUnsafeMutableBufferPointer {
            Requantize.referenceSigns(pixels: pixels, channels: channels, src: x.baseAddress!, srcStride: stride, dst: $0.baseAddress!)
        }
    }
    let formula = (0..<(pixels * words)).map { i -> UInt64 in
        let (p, q) = (i / words, i % words)
        var word: UInt64 = 0
        for t in 0..<min(64, channels - q * 64) where src[p * stride + q * 64 + t] < 0 { word |= 1 << UInt64(t) }
        return word
    }
    #expect(fast == plain, "signs \(shape)")
    #expect(plain == formula, "reference signs \(shape)")
    // Signs of signed codes (bytes; the stride's padding bytes random, never counted).
    let codes = r.bytes(pixels * stride)
    var fastCodes = [UInt64](repeating: .max, count: pixels * words), plainCodes = fastCodes
    codes.withUnsafeBufferPointer { x in
        fastCodes.withUnsafeMutableBufferPointer {
            Requantize.signs(pixels: pixels, channels: channels, codes: x.baseAddress!, srcStride: stride, dst: $0.baseAddress!)
        }
        plainCodes.withUnsafeMutableBufferPointer {
            Requantize.referenceSigns(pixels: pixels, channels: channels, codes: x.baseAddress!, srcStride: stride, dst: $0.baseAddress!)
        }
    }
    let codesFormula = (0..<(pixels * words)).map { i -> UInt64 in
        let (p, q) = (i / words, i % words)
        var word: UInt64 = 0
        for t in 0..<min(64, channels - q * 64) where codes[p * stride + q * 64 + t] >= 128 { word |= 1 << UInt64(t) }
        return word
    }
    #expect(fastCodes == plainCodes, "code signs \(shape)")
    #expect(plainCodes == codesFormula, "reference code signs \(shape)")
}

/// The identity scales leave every value as it is (the add of a branch already at the target
/// scale), or add it with Int32 wrap-around.
@Test func requantizeIdentityKeepsValues() {
    let src: [Int32] = [Int32.min, -7, -1, 0, 1, 7, Int32.max, 12345, -54321, 3, 4, 5, 6, 7, 8, 9, 10]
    for accumulate in [false, true] {
        var out = [Int32](repeating: 2, count: src.count)
        src.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer {
                Requantize.sums(pixels: 1, .identity(channels: src.count), src: x.baseAddress!, srcStride: src.count, dst: $0.baseAddress!,
                                dstStride: src.count, accumulate: accumulate)
            }
        }
        #expect(out == src.map { accumulate ? $0 &+ 2 : $0 })
    }
}
