/// SplitMix64: a tiny seeded generator so every test input is reproducible.
struct TestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func float() -> Float { Float(next() >> 40) / Float(1 << 24) * 2 - 1 }
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }
    mutating func floats(_ n: Int) -> [Float] { (0..<n).map { _ in float() } }
    mutating func bytes(_ n: Int, in range: ClosedRange<Int> = 0...255) -> [UInt8] {
        (0..<n).map { _ in UInt8(truncatingIfNeeded: int(range)) }
    }
}

/// The sizes that break tiled code: 1, primes, one past powers of two, tile multiples ± 1.
let awkwardSizes = [1, 3, 7, 12, 17, 31, 33, 65, 257]
