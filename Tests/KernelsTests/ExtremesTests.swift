import Testing
import Kernels

/// The one-pass extremes agree with the plain loop on every length around the kernel's 16-float
/// steps, with the extremes placed in the vector body and in the tail, with ±∞, and report NaN
/// wherever one sits (first lane, last vector, tail) and for an empty buffer.
@Test func extremesMatchThePlainLoop() {
    var r = TestRandom(seed: 11)
    for n in [1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 47, 100, 1000] {
        var x = (0..<n).map { _ in Float(r.int(-100_000...100_000)) / 1000 }
        for spot in Set([0, n / 2, n - 1]) {
            var y = x
            y[spot] = -1e30
            y[(spot + 1) % n] = 1e30
            y.withUnsafeBufferPointer { p in
                let (fast, plain) = (Extremes.of(p), Extremes.reference(p))
                #expect(fast.min == plain.min && fast.max == plain.max, "n \(n), spot \(spot)")
                #expect(plain.min == (n == 1 ? 1e30 : -1e30) && plain.max == 1e30)
            }
            y[spot] = .nan
            y.withUnsafeBufferPointer { p in
                let fast = Extremes.of(p)
                #expect(fast.min.isNaN && fast.max.isNaN, "n \(n), NaN at \(spot)")
            }
        }
        x[n - 1] = -.infinity
        x[0] = .infinity
        x.withUnsafeBufferPointer { p in
            let fast = Extremes.of(p)
            #expect(fast.min == (n == 1 ? .infinity : -.infinity) && fast.max == .infinity, "n \(n) with ±∞")
        }
    }
    [Float]().withUnsafeBufferPointer { p in
        let e = Extremes.of(p)
        #expect(e.min.isNaN && e.max.isNaN)
    }
}
