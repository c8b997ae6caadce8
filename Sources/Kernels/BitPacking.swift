/// Packing of integer codes at 1…8 bits per code.
///
/// **Bit order.** Codes form a little-endian bit stream: code `i` occupies bits
/// `i·w ..< i·w + w` of the stream, where bit `t` of the stream is bit `t mod 8` (LSB first) of
/// byte `⌊t/8⌋`. So 8 codes always fill exactly `w` bytes, and at 4 bits code 0 is the low
/// nibble of byte 0. Signed codes are stored in `w`-bit two's complement (−2^(w−1) … 2^(w−1)−1);
/// 1-bit signed codes are {−1, 0} in two's complement, so ±1 data should use `BinaryGEMM`'s
/// sign packing instead. Codes out of range are wrapped to their low `w` bits: check ranges
/// before packing (the quantizers produce in-range codes).
///
/// The fast paths handle 64 codes at a time: one SIMD8<UInt64> lane per group of 8 codes.
public enum BitPacking {
    /// Bytes needed for `count` codes of `bits` each.
    public static func byteCount(codes count: Int, bits: Int) -> Int { (count * bits + 7) / 8 }

    /// Packs `count` codes (their low `bits` bits) from `src` into `dst`, which must hold
    /// `byteCount(codes: count, bits: bits)` bytes. Trailing bits of the last byte are zero.
    public static func pack(_ src: UnsafePointer<UInt8>, count: Int, bits: Int, into dst: UnsafeMutablePointer<UInt8>) {
        precondition((1...8).contains(bits), "bits must be in 1…8")
        if count <= 0 { return }
        if bits == 8 { dst.update(from: src, count: count); return }
        let mask = UInt64((1 << bits) - 1)
        let w = bits
        var i = 0
        let outBytes = byteCount(codes: count, bits: bits)
        // 64 codes → 8·w bytes; each lane's 8-byte store overlaps the next lane's, so stop while
        // a full 8-byte store still fits.
        let raw = UnsafeRawPointer(src), out = UnsafeMutableRawPointer(dst)
        while i + 64 <= count && (i / 8) * w + 8 * w + 8 <= outBytes {
            let x = raw.loadUnaligned(fromByteOffset: i, as: SIMD8<UInt64>.self)
            var v = x & SIMD8(repeating: mask)
            for j in 1..<8 {
                v |= ((x &>> UInt64(8 * j)) & SIMD8(repeating: mask)) &<< UInt64(w * j)
            }
            let base = (i / 8) * w
            for l in 0..<8 { out.storeBytes(of: v[l], toByteOffset: base + l * w, as: UInt64.self) }
            i += 64
        }
        packTail(src, from: i, count: count, bits: bits, into: dst)
    }

    /// Bit-at-a-time packing of codes `from..<count`; `from` must be a multiple of 8.
    private static func packTail(_ src: UnsafePointer<UInt8>, from: Int, count: Int, bits: Int,
                                 into dst: UnsafeMutablePointer<UInt8>) {
        let mask = UInt32((1 << bits) - 1)
        var acc: UInt32 = 0, filled = 0
        var o = from * bits / 8
        for i in from..<count {
            acc |= (UInt32(src[i]) & mask) << UInt32(filled)
            filled += bits
            while filled >= 8 {
                dst[o] = UInt8(truncatingIfNeeded: acc); o += 1
                acc >>= 8; filled -= 8
            }
        }
        if filled > 0 { dst[o] = UInt8(truncatingIfNeeded: acc) }
    }

    /// Unpacks codes `first..<first+count` of a packed stream into one byte each.
    /// Unsigned codes come out as 0…2^w−1; with `signed`, sign-extended into Int8's bit pattern.
    /// `src` must hold `byteCount(codes: first + count, bits: bits)` bytes.
    public static func unpack(_ src: UnsafePointer<UInt8>, first: Int = 0, count: Int, bits: Int, signed: Bool,
                              into dst: UnsafeMutablePointer<UInt8>) {
        precondition((1...8).contains(bits), "bits must be in 1…8")
        if count <= 0 { return }
        if bits == 8 { dst.update(from: src + first, count: count); return }
        var done = 0
        // Reach a group boundary bit by bit, then go 64 codes at a time.
        while done < count && (first + done) % 8 != 0 {
            dst[done] = code(src, index: first + done, bits: bits, signed: signed); done += 1
        }
        let w = bits
        let mask = UInt64((1 << w) - 1)
        let streamBytes = byteCount(codes: first + count, bits: bits)
        let raw = UnsafeRawPointer(src), out = UnsafeMutableRawPointer(dst)
        let signBit = SIMD64<UInt8>(repeating: UInt8(1 << (w - 1)))
        while count - done >= 64 {
            let base = (first + done) / 8 * w
            if base + 7 * w + 8 > streamBytes { break }
            var g = SIMD8<UInt64>()
            for l in 0..<8 { g[l] = raw.loadUnaligned(fromByteOffset: base + l * w, as: UInt64.self) }
            var v = g & SIMD8(repeating: mask)
            for j in 1..<8 {
                v |= ((g &>> UInt64(w * j)) & SIMD8(repeating: mask)) &<< UInt64(8 * j)
            }
            var bytes = unsafeBitCast(v, to: SIMD64<UInt8>.self)
            if signed { bytes = (bytes ^ signBit) &- signBit }
            out.storeBytes(of: bytes, toByteOffset: done, as: SIMD64<UInt8>.self)
            done += 64
        }
        while done < count {
            dst[done] = code(src, index: first + done, bits: bits, signed: signed); done += 1
        }
    }

    /// Code `index` of a packed stream (a plain, slow reader: the oracle for the fast paths).
    @inline(__always)
    public static func code(_ src: UnsafePointer<UInt8>, index: Int, bits: Int, signed: Bool) -> UInt8 {
        var value: UInt32 = 0
        let start = index * bits
        for t in 0..<bits {
            let bit = start + t
            value |= UInt32((src[bit >> 3] >> UInt8(bit & 7)) & 1) << UInt32(t)
        }
        if signed && value & (1 << UInt32(bits - 1)) != 0 { value |= ~UInt32(0) << UInt32(bits) }
        return UInt8(truncatingIfNeeded: value)
    }

    /// Convenience over arrays: packs Int8/UInt8-valued codes.
    public static func pack(_ codes: [UInt8], bits: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: byteCount(codes: codes.count, bits: bits))
        codes.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { d in
                if let sp = s.baseAddress, let dp = d.baseAddress { pack(sp, count: codes.count, bits: bits, into: dp) }
            }
        }
        return out
    }

    public static func unpack(_ packed: [UInt8], count: Int, bits: Int, signed: Bool) -> [UInt8] {
        precondition(packed.count >= byteCount(codes: count, bits: bits), "packed stream too short")
        var out = [UInt8](repeating: 0, count: count)
        packed.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { d in
                if let sp = s.baseAddress, let dp = d.baseAddress {
                    unpack(sp, count: count, bits: bits, signed: signed, into: dp)
                }
            }
        }
        return out
    }
}
