/// 64-bit FNV-1a, the one content hash behind the caches' keys (samples, latency tables, AutoQ's
/// checkpoints) and the Hutchinson seeds. Feeding is byte by byte; `word` feeds a value's eight
/// bytes, least significant first.
struct FNV1a {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func byte(_ b: UInt8) { value = (value ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
    mutating func bytes(_ s: String) { for b in s.utf8 { byte(b) } }
    mutating func word(_ v: UInt64) { for i in 0..<8 { byte(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }

    /// Sixteen hex digits.
    var hex: String { String(format: "%016llx", value) }
}
