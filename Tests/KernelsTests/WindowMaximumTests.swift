import Testing
import Kernels

/// `WindowMaximum.row` against the plain loop — each window's taps row by row from the first, a
/// larger or NaN tap replacing the maximum — bit for bit: 2×2 windows (the tree) and 3×2 and
/// 3×3 ones, overlapping or not, 1…40 channels (vector and scalar tails), on values drawn from
/// a few (ties, −0 beside +0, infinities) with NaNs of distinct payloads (the last one wins).
@Test(arguments: [(2, 2, 2), (2, 2, 1), (3, 2, 2), (3, 3, 3), (3, 3, 2)])
func windowMaximumMatchesTapOrder(_ shape: (Int, Int, Int)) {
    let (kh, kw, stride) = shape
    var r = TestRandom(seed: UInt64(kh * 100 + kw * 10 + stride))
    let pool: [Float] = [0, -0.0, 1, -1, 2.5, .infinity, -.infinity]
    for channels in [1, 5, 16, 17, 32, 40] {
        let count = 5, pixels = (count - 1) * stride + kw, pixelStep = channels + 3, rowStep = pixels * pixelStep + 7
        let src = (0..<(kh * rowStep + 16)).map { _ -> Float in
            r.int(0...9) == 0 ? Float(bitPattern: 0x7fc0_0000 | UInt32(r.int(1...1000))) : pool[r.int(0...(pool.count - 1))]
        }
        var fast = [Float](repeating: 7, count: count * channels + 3), plain = fast
        src.withUnsafeBufferPointer { s in
            fast.withUnsafeMutableBufferPointer { f in
                WindowMaximum.row(s.baseAddress!, count: count, windowStep: stride * pixelStep, kh: kh, kw: kw, rowStep: rowStep,
                                  pixelStep: pixelStep, channels: channels, into: f.baseAddress!, dstStep: channels)
            }
        }
        for j in 0..<count {
            for c in 0..<channels {
                let first = j * stride * pixelStep + c
                var m = src[first]
                for u in 0..<kh { for v in 0..<kw where u > 0 || v > 0 {
                    let x = src[first + u * rowStep + v * pixelStep]
                    if x > m || x.isNaN { m = x }
                } }
                plain[j * channels + c] = m
            }
        }
        let differ = zip(fast, plain).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(differ == 0, "\(kh)×\(kw) stride \(stride), \(channels) channels: \(differ) differ")
    }
}

/// `WindowMaximum.unsignedRow` (the integer engine's max pooling of codes) against the plain
/// maximum of each window's bytes: 3×3 windows at stride 2 (ResNet's stem pool) and 2×2 at
/// stride 2, 1…130 channels (64-byte vectors and byte tails), codes over the whole byte range.
@Test func unsignedWindowMaximumMatchesThePlainMaximum() {
    var r = TestRandom(seed: 31)
    for (kh, kw, stride) in [(3, 3, 2), (2, 2, 2), (3, 2, 1)] {
        for channels in [1, 7, 64, 65, 130] {
            let count = 6, pixels = (count - 1) * stride + kw, pixelStep = channels + 4, rowStep = pixels * pixelStep + 9
            let src = (0..<(kh * rowStep + 64)).map { _ in UInt8(r.int(0...255)) }
            var fast = [UInt8](repeating: 7, count: count * channels + 5), plain = fast
            src.withUnsafeBufferPointer { s in
                fast.withUnsafeMutableBufferPointer { f in
                    WindowMaximum.unsignedRow(s.baseAddress!, count: count, windowStep: stride * pixelStep, kh: kh, kw: kw, rowStep: rowStep,
                                              pixelStep: pixelStep, channels: channels, into: f.baseAddress!, dstStep: channels)
                }
            }
            for j in 0..<count {
                for c in 0..<channels {
                    let first = j * stride * pixelStep + c
                    plain[j * channels + c] = (0..<kh).flatMap { u in (0..<kw).map { v in src[first + u * rowStep + v * pixelStep] } }.max()!
                }
            }
            #expect(fast == plain, "\(kh)×\(kw) stride \(stride), \(channels) channels")
        }
    }
}
