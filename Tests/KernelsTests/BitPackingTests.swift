import Testing
import Kernels

/// Every width, signed and unsigned, at counts that hit the 64-code fast path, its tail, and
/// streams shorter than one group.
@Test(arguments: 1...8, [false, true])
func packUnpackRoundTrip(bits: Int, signed: Bool) {
    var r = TestRandom(seed: UInt64(bits * 2 + (signed ? 1 : 0)))
    let lo = signed ? -(1 << (bits - 1)) : 0, hi = signed ? (1 << (bits - 1)) - 1 : (1 << bits) - 1
    for count in [0, 1, 5, 8, 63, 64, 65, 127, 200, 1000, 4099] {
        let codes = r.bytes(count, in: lo...hi)
        let packed = BitPacking.pack(codes, bits: bits)
        #expect(packed.count == (count * bits + 7) / 8)
        #expect(BitPacking.unpack(packed, count: count, bits: bits, signed: signed) == codes,
                "bits \(bits) signed \(signed) count \(count)")
        // The slow per-code reader agrees, and the documented bit order holds.
        packed.withUnsafeBufferPointer { p in
            for i in stride(from: 0, to: count, by: max(1, count / 37)) {
                #expect(BitPacking.code(p.baseAddress!, index: i, bits: bits, signed: signed) == codes[i])
                var value = 0
                for t in 0..<bits where (p[(i * bits + t) / 8] >> UInt8((i * bits + t) % 8)) & 1 == 1 { value |= 1 << t }
                #expect(UInt8(truncatingIfNeeded: value) & UInt8((1 << bits) - 1) == codes[i] & UInt8((1 << bits) - 1))
            }
        }
        // Unpacking a window that starts mid-stream.
        if count > 10 {
            let first = 3 + count / 3, n = count - first
            var out = [UInt8](repeating: 0, count: n)
            packed.withUnsafeBufferPointer { p in
                BitPacking.unpack(p.baseAddress!, first: first, count: n, bits: bits, signed: signed, into: &out)
            }
            #expect(out == Array(codes[first...]))
        }
    }
}

@Test func fourBitOrderIsLowNibbleFirst() {
    #expect(BitPacking.pack([0x1, 0x2, 0x3], bits: 4) == [0x21, 0x03])
    #expect(BitPacking.pack([1, 0, 1, 1, 0, 0, 0, 0, 1], bits: 1) == [0b0000_1101, 0b1])
}

/// The VBMI2 packing path and the Swift one write the same bytes at every width.
@Test(.serialized, arguments: 1...8)
func packPathsAgree(bits: Int) {
    var r = TestRandom(seed: UInt64(100 + bits))
    for count in [0, 7, 8, 63, 64, 65, 1000, 4097] {
        let codes = r.bytes(count)  // high bits set too: packing must ignore them
        BitPacking.useVBMI2 = false
        let swift = BitPacking.pack(codes, bits: bits)
        BitPacking.useVBMI2 = BitPacking.hasVBMI2
        let fast = BitPacking.pack(codes, bits: bits)
        #expect(fast == swift, "bits \(bits) count \(count)")
    }
}
