import CKernels

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
    /// Whether packing uses the AVX-512 VBMI2 path (tests turn it off to check the Swift one).
    nonisolated(unsafe) public static var useVBMI2 = hasVBMI2
    public static let hasVBMI2 = mpq_cpu_has_avx512_vbmi2() != 0

    /// Bytes needed for `count` codes of `bits` each.
    public static func byteCount(codes count: Int, bits: Int) -> Int { (count * bits + 7) / 8 }

    /// Packs `count` codes (their low `bits` bits) from `src` into `dst`, which must hold
    /// `byteCount(codes: count, bits: bits)` bytes. Trailing bits of the last byte are zero.
    public static func pack(_ src: UnsafePointer<UInt8>, count: Int, bits: Int, into dst: UnsafeMutablePointer<UInt8>) {
        precondition((1...8).contains(bits), "bits must be in 1…8")
        if count <= 0 { return }
        // One specialised copy of the loop per width: with w a constant every shift is an
        // immediate and LLVM keeps the lanes in vector registers (with w in a register it
        // scalarises them: 9 GB/s instead of 60+).
        // Lanes are squeezed together with vpcompressb where the CPU has it (the Swift loops below
        // are the fallback and the oracle; the stdlib's narrowing inits they use are sometimes
        // left as calls, which made 1- and 4-bit packing 3× slower in one build).
        if useVBMI2 {
            let groups = count / 8
            mpq_pack_vbmi2(src, Int64(groups), Int32(bits), dst)
            packTail(src, from: groups * 8, count: count, bits: bits, into: dst)
            return
        }
        switch bits {
        case 1: packWidth(src, count: count, width: Width1.self, into: dst)
        case 2: packWidth(src, count: count, width: Width2.self, into: dst)
        case 3: packWidth(src, count: count, width: Width3.self, into: dst)
        case 4: packWidth(src, count: count, width: Width4.self, into: dst)
        case 5: packWidth(src, count: count, width: Width5.self, into: dst)
        case 6: packWidth(src, count: count, width: Width6.self, into: dst)
        case 7: packWidth(src, count: count, width: Width7.self, into: dst)
        default: dst.update(from: src, count: count)
        }
    }

    @inline(never)
    private static func packWidth<W: PackingWidth>(_ src: UnsafePointer<UInt8>, count: Int, width: W.Type,
                                                   into dst: UnsafeMutablePointer<UInt8>) {
        let w = W.bits, bits = W.bits
        var i = 0
        let outBytes = byteCount(codes: count, bits: bits)
        let raw = UnsafeRawPointer(src), out = UnsafeMutableRawPointer(dst)
        let m = Masks(bits: w)
        // 64 codes → 8·w bytes, one lane per 8 codes. Widths 1, 2 and 4 store the lanes in one go.
        let fields = SIMD8<UInt64>(repeating: UInt64((1 << w) - 1) &* 0x0101_0101_0101_0101)
        @inline(__always) func group(_ i: Int) -> SIMD8<UInt64> {
            m.compress(raw.loadUnaligned(fromByteOffset: i, as: SIMD8<UInt64>.self) & fields)
        }
        switch w {
        case 1:
            while i + 64 <= count {
                out.storeBytes(of: SIMD8<UInt8>(truncatingIfNeeded: group(i)), toByteOffset: i / 8, as: SIMD8<UInt8>.self)
                i += 64
            }
        case 2:
            while i + 64 <= count {
                out.storeBytes(of: SIMD8<UInt16>(truncatingIfNeeded: group(i)), toByteOffset: i / 4, as: SIMD8<UInt16>.self)
                i += 64
            }
        case 4:
            while i + 64 <= count {
                out.storeBytes(of: SIMD8<UInt32>(truncatingIfNeeded: group(i)), toByteOffset: i / 2, as: SIMD8<UInt32>.self)
                i += 64
            }
        default:
            // Each lane's 8-byte store overlaps the next lane's: stop while a full one still fits.
            while i + 64 <= count && (i / 8) * w + 8 * w + 8 <= outBytes {
                var v = group(i)
                let base = (i / 8) * w
                withUnsafeBytes(of: &v) { lanes in
                    for l in 0..<8 {
                        out.storeBytes(of: lanes.load(fromByteOffset: l * 8, as: UInt64.self),
                                       toByteOffset: base + l * w, as: UInt64.self)
                    }
                }
                i += 64
            }
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
        switch bits {
        case 1: unpackWidth(src, first: first, count: count, width: Width1.self, signed: signed, into: dst)
        case 2: unpackWidth(src, first: first, count: count, width: Width2.self, signed: signed, into: dst)
        case 3: unpackWidth(src, first: first, count: count, width: Width3.self, signed: signed, into: dst)
        case 4: unpackWidth(src, first: first, count: count, width: Width4.self, signed: signed, into: dst)
        case 5: unpackWidth(src, first: first, count: count, width: Width5.self, signed: signed, into: dst)
        case 6: unpackWidth(src, first: first, count: count, width: Width6.self, signed: signed, into: dst)
        case 7: unpackWidth(src, first: first, count: count, width: Width7.self, signed: signed, into: dst)
        default: dst.update(from: src + first, count: count)
        }
    }

    @inline(never)
    private static func unpackWidth<W: PackingWidth>(_ src: UnsafePointer<UInt8>, first: Int, count: Int, width: W.Type,
                                                     signed: Bool, into dst: UnsafeMutablePointer<UInt8>) {
        let w = W.bits, bits = W.bits
        var done = 0
        // Reach a group boundary bit by bit, then go 64 codes at a time.
        while done < count && (first + done) % 8 != 0 {
            dst[done] = code(src, index: first + done, bits: bits, signed: signed); done += 1
        }
        let m = Masks(bits: w)
        let streamBytes = byteCount(codes: first + count, bits: bits)
        let raw = UnsafeRawPointer(src), out = UnsafeMutableRawPointer(dst)
        let signBit = SIMD64<UInt8>(repeating: UInt8(1 << (w - 1)))
        fast: while count - done >= 64 {
            let base = (first + done) / 8 * w
            var g: SIMD8<UInt64>
            switch w {
            // Widths 1, 2, 4: each lane's bytes sit in whole words; shift them out with constant
            // vector shifts (the standard library's widening init is sometimes left as a call).
            case 1:
                let x = word(raw, base)
                g = (SIMD8(repeating: x) &>> SIMD8(0, 8, 16, 24, 32, 40, 48, 56)) & SIMD8(repeating: 0xFF)
            case 2:
                let x0 = word(raw, base), x1 = word(raw, base + 8)
                g = (SIMD8(x0, x0, x0, x0, x1, x1, x1, x1) &>> SIMD8(0, 16, 32, 48, 0, 16, 32, 48)) & SIMD8(repeating: 0xFFFF)
            case 4:
                let x0 = word(raw, base), x1 = word(raw, base + 8), x2 = word(raw, base + 16), x3 = word(raw, base + 24)
                g = (SIMD8(x0, x0, x1, x1, x2, x2, x3, x3) &>> SIMD8(0, 32, 0, 32, 0, 32, 0, 32)) & SIMD8(repeating: 0xFFFF_FFFF)
            default:
                // Each lane reads 8 bytes from its group's start; the last must stay in bounds.
                if base + 7 * w + 8 > streamBytes { break fast }
                g = SIMD8()
                for l in 0..<8 { g[l] = raw.loadUnaligned(fromByteOffset: base + l * w, as: UInt64.self) }
            }
            var bytes = unsafeBitCast(m.spread(g), to: SIMD64<UInt8>.self)
            if signed { bytes = (bytes ^ signBit) &- signBit }
            out.storeBytes(of: bytes, toByteOffset: done, as: SIMD64<UInt8>.self)
            done += 64
        }
        while done < count {
            dst[done] = code(src, index: first + done, bits: bits, signed: signed); done += 1
        }
    }

    /// Masks and shifts that move 8 fields of w bits between the low 8·w bits of a word and one
    /// byte each, in three halving steps (4+4 fields, then 2+2, then 1+1) instead of eight.
    /// Each step keeps the low part in place and shifts the high part by the gap between them;
    /// both parts are masked so that no field lands on another (w > 4 leaves gaps < w).
    struct Masks {
        /// Per step (byte, quarter, half): where the low part sits, where the high part sits when
        /// packed (`packedHigh`) and when spread (`spreadHigh`), and the distance between them.
        let byteLow, bytePackedHigh, byteSpreadHigh, byteShift: UInt64
        let quarterLow, quarterPackedHigh, quarterSpreadHigh, quarterShift: UInt64
        let halfLow, halfPackedHigh, halfSpreadHigh, halfShift: UInt64
        init(bits w: Int) {
            func ones(_ n: Int) -> UInt64 { n >= 64 ? ~0 : (1 << UInt64(n)) - 1 }
            let rep16: UInt64 = 0x0001_0001_0001_0001, rep32: UInt64 = 0x0000_0001_0000_0001
            byteLow = ones(w) &* rep16
            bytePackedHigh = (ones(w) << UInt64(w)) &* rep16
            byteSpreadHigh = (ones(w) << 8) &* rep16
            byteShift = UInt64(8 - w)
            quarterLow = ones(2 * w) &* rep32
            quarterPackedHigh = (ones(2 * w) << UInt64(2 * w)) &* rep32
            quarterSpreadHigh = (ones(2 * w) << 16) &* rep32
            quarterShift = UInt64(16 - 2 * w)
            halfLow = ones(4 * w)
            halfPackedHigh = ones(4 * w) << UInt64(4 * w)
            halfSpreadHigh = ones(4 * w) << 32
            halfShift = UInt64(32 - 4 * w)
        }

        /// 8 bytes, one field each (already masked to w bits) → 8 fields in the low 8·w bits.
        @inline(__always) func compress(_ x: SIMD8<UInt64>) -> SIMD8<UInt64> {
            typealias V = SIMD8<UInt64>
            var v = (x & V(repeating: byteLow)) | ((x &>> V(repeating: byteShift)) & V(repeating: bytePackedHigh))
            v = (v & V(repeating: quarterLow)) | ((v &>> V(repeating: quarterShift)) & V(repeating: quarterPackedHigh))
            return (v & V(repeating: halfLow)) | ((v &>> V(repeating: halfShift)) & V(repeating: halfPackedHigh))
        }

        /// `compress` on two words: lanes of 128-bit registers are cheap to extract.
        @inline(__always) func compress(_ x: SIMD2<UInt64>) -> SIMD2<UInt64> {
            let y = compress(SIMD8(lowHalf: SIMD4(lowHalf: x, highHalf: .zero), highHalf: .zero))
            return y.lowHalf.lowHalf
        }

        /// 8 fields in the low 8·w bits (higher bits ignored) → one field per byte.
        @inline(__always) func spread(_ x: SIMD8<UInt64>) -> SIMD8<UInt64> {
            typealias V = SIMD8<UInt64>
            var v = (x & V(repeating: halfLow)) | ((x &<< V(repeating: halfShift)) & V(repeating: halfSpreadHigh))
            v = (v & V(repeating: quarterLow)) | ((v &<< V(repeating: quarterShift)) & V(repeating: quarterSpreadHigh))
            return (v & V(repeating: byteLow)) | ((v &<< V(repeating: byteShift)) & V(repeating: byteSpreadHigh))
        }
    }

    /// Eight bytes as a little-endian word, through memcpy (always inlined).
    @inline(__always)
    static func word(_ p: UnsafeRawPointer, _ offset: Int) -> UInt64 {
        var v: UInt64 = 0
        withUnsafeMutableBytes(of: &v) { $0.baseAddress!.copyMemory(from: p + offset, byteCount: 8) }
        return UInt64(littleEndian: v)
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

/// Code widths as types, so that each packing loop is specialised for a constant width.
protocol PackingWidth { static var bits: Int { get } }
enum Width1: PackingWidth { static var bits: Int { 1 } }
enum Width2: PackingWidth { static var bits: Int { 2 } }
enum Width3: PackingWidth { static var bits: Int { 3 } }
enum Width4: PackingWidth { static var bits: Int { 4 } }
enum Width5: PackingWidth { static var bits: Int { 5 } }
enum Width6: PackingWidth { static var bits: Int { 6 } }
enum Width7: PackingWidth { static var bits: Int { 7 } }
