/// A bounds-checked cursor over bytes: every read that would run past the end throws a
/// `malformedFile` error naming the offset, so no file can make a reader trap.
struct ByteReader {
    let bytes: [UInt8]
    let path: String
    private(set) var offset = 0

    init(_ bytes: [UInt8], path: String, offset: Int = 0) { self.bytes = bytes; self.path = path; self.offset = offset }

    var remaining: Int { bytes.count - offset }

    func fail(_ reason: String, at: Int? = nil) -> TensorError {
        .malformedFile(path: path, offset: at ?? offset, reason: reason)
    }

    mutating func seek(_ to: Int) throws {
        guard to >= 0 && to <= bytes.count else { throw fail("offset \(to) is past the end (\(bytes.count) bytes)") }
        offset = to
    }

    mutating func take(_ n: Int, _ what: String) throws -> ArraySlice<UInt8> {
        guard n >= 0 && n <= remaining else {
            throw fail("truncated: expected \(n) bytes of \(what), found \(Swift.max(remaining, 0))")
        }
        defer { offset += n }
        return bytes[offset..<(offset + n)]
    }

    mutating func uint8(_ what: String) throws -> UInt8 { try take(1, what).first! }

    mutating func uint16LE(_ what: String) throws -> Int {
        let b = try take(2, what); let s = b.startIndex
        return Int(b[s]) | Int(b[s + 1]) << 8
    }

    mutating func uint32LE(_ what: String) throws -> Int {
        let b = try take(4, what); let s = b.startIndex
        return Int(b[s]) | Int(b[s + 1]) << 8 | Int(b[s + 2]) << 16 | Int(b[s + 3]) << 24
    }

    mutating func uint64LE(_ what: String) throws -> UInt64 {
        let b = try take(8, what); let s = b.startIndex
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(b[s + i]) << UInt64(8 * i) }
        return v
    }

    mutating func uint32BE(_ what: String) throws -> Int {
        let b = try take(4, what); let s = b.startIndex
        return Int(b[s]) << 24 | Int(b[s + 1]) << 16 | Int(b[s + 2]) << 8 | Int(b[s + 3])
    }
}

/// Little-endian appends for writers.
extension Array where Element == UInt8 {
    mutating func appendLE(_ v: Int, bytes n: Int) {
        for i in 0..<n { append(UInt8(truncatingIfNeeded: v >> (8 * i))) }
    }
    mutating func appendBE(_ v: Int, bytes n: Int) {
        for i in stride(from: n - 1, through: 0, by: -1) { append(UInt8(truncatingIfNeeded: v >> (8 * i))) }
    }
}
