/// NumPy's `.npy` format (versions 1, 2 and 3).
///
/// A magic string `\x93NUMPY`, a version, the header's length (2 bytes in v1, 4 in v2/v3), and
/// a Python dict literal such as `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`,
/// then the raw data. Reading accepts floats (f2/f4/f8), signed and unsigned integers of 1–8
/// bytes and booleans, either byte order, C or Fortran order, and converts to Float32 (integers
/// beyond 2²⁴ lose precision). Writing produces v1.0 little-endian float32 in C order.
public enum NPY {
    public static func read(_ path: String) throws -> Tensor { try decode(try FileIO.read(path)[...], path: path) }

    public static func write(_ t: Tensor, to path: String) throws { try FileIO.writeAtomically(encode(t), to: path) }

    public static func decode(_ bytes: ArraySlice<UInt8>, path: String) throws -> Tensor {
        var r = ByteReader(Array(bytes), path: path)
        let magic = try r.take(6, "magic")
        guard Array(magic) == [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59] else {
            throw r.fail("expected the .npy magic \\x93NUMPY, found \(magic.map(hex).joined(separator: " "))", at: 0)
        }
        let major = try r.uint8("version")
        _ = try r.uint8("version")
        guard (1...3).contains(major) else { throw r.fail("unsupported .npy version \(major); expected 1, 2 or 3", at: 6) }
        let headerLength = major == 1 ? try r.uint16LE("header length") : try r.uint32LE("header length")
        let headerStart = r.offset
        let headerBytes = try r.take(headerLength, "header")
        let header = String(decoding: headerBytes, as: UTF8.self)
        var parser = HeaderParser(text: header, reader: r, start: headerStart)
        let dict = try parser.parseDict()
        guard case .string(let descr)? = dict["descr"] else { throw r.fail("header has no 'descr'", at: headerStart) }
        guard case .tuple(let shape)? = dict["shape"] else { throw r.fail("header has no 'shape'", at: headerStart) }
        var fortran = false
        if case .bool(let f)? = dict["fortran_order"] { fortran = f }
        let type = try ElementType(descr: descr, reader: r, at: headerStart)
        let n: Int
        do { n = try Tensor.elementCount(of: shape) } catch { throw r.fail("shape \(shape): \(error)", at: headerStart) }
        let (need, overflow) = n.multipliedReportingOverflow(by: type.size)
        guard !overflow, need <= r.remaining else {
            throw r.fail("shape \(shape) of \(descr) needs \(overflow ? "more than Int.max" : String(need)) bytes, found \(r.remaining)")
        }
        let data = try r.take(need, "data")
        var values = [Float](repeating: 0, count: n)
        let s = data.startIndex
        for i in 0..<n {
            var bits: UInt64 = 0
            for t in 0..<type.size {
                let byte = UInt64(data[s + i * type.size + (type.littleEndian ? t : type.size - 1 - t)])
                bits |= byte << UInt64(8 * t)
            }
            values[i] = type.value(bits)
        }
        if fortran && shape.count > 1 {
            // Column-major on disk: element with multi-index I sits at Σ I_d · Π_{e<d} shape_e.
            var c = [Float](repeating: 0, count: n)
            let cStrides = Tensor.strides(of: shape)
            var fStrides = [Int](repeating: 1, count: shape.count)
            for d in 1..<shape.count { fStrides[d] = fStrides[d - 1] * shape[d - 1] }
            for flat in 0..<n {
                var rem = flat, off = 0
                for d in 0..<shape.count { off += rem / cStrides[d] * fStrides[d]; rem %= cStrides[d] }
                c[flat] = values[off]
            }
            values = c
        }
        return Tensor(uncheckedShape: shape, scalars: values)
    }

    public static func encode(_ t: Tensor) -> [UInt8] {
        let shapeText = t.rank == 1 ? "(\(t.shape[0]),)" : "(" + t.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
        // Pad so that the data starts on a 64-byte boundary, as NumPy does.
        let fixed = 10
        let total = (fixed + header.utf8.count + 1 + 63) / 64 * 64
        header += String(repeating: " ", count: total - fixed - header.utf8.count - 1) + "\n"
        var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0]
        out.appendLE(header.utf8.count, bytes: 2)
        out += Array(header.utf8)
        out.reserveCapacity(out.count + 4 * t.count)
        for v in t.scalars { out.appendLE(Int(v.bitPattern), bytes: 4) }
        return out
    }

    struct ElementType {
        enum Kind { case float, signed, unsigned, bool }
        var kind: Kind, size: Int, littleEndian: Bool

        init(descr: String, reader r: ByteReader, at offset: Int) throws {
            let chars = Array(descr)
            guard chars.count >= 3, let size = Int(String(chars[2...])) else {
                throw r.fail("unsupported dtype '\(descr)'", at: offset)
            }
            littleEndian = chars[0] != ">"
            self.size = size
            switch (chars[1], size) {
            case ("f", 2), ("f", 4), ("f", 8): kind = .float
            case ("i", 1), ("i", 2), ("i", 4), ("i", 8): kind = .signed
            case ("u", 1), ("u", 2), ("u", 4), ("u", 8): kind = .unsigned
            case ("b", 1): kind = .bool
            default:
                throw r.fail("unsupported dtype '\(descr)'; expected float (f2/f4/f8), int, uint or bool", at: offset)
            }
        }

        func value(_ bits: UInt64) -> Float {
            switch kind {
            case .float:
                switch size {
                case 2: return Float(Float16(bitPattern: UInt16(bits)))
                case 4: return Float(bitPattern: UInt32(bits))
                default: return Float(Double(bitPattern: bits))
                }
            case .signed:
                let shift = UInt64(64 - 8 * size)
                return Float(Int64(bitPattern: bits << shift) >> Int64(shift))
            case .unsigned: return Float(bits)
            case .bool: return bits != 0 ? 1 : 0
            }
        }
    }

    /// The subset of Python literals .npy headers use: a dict of strings, booleans and int tuples.
    enum HeaderValue { case string(String), bool(Bool), tuple([Int]) }

    struct HeaderParser {
        let chars: [Character]
        var i = 0
        let reader: ByteReader
        let start: Int

        init(text: String, reader: ByteReader, start: Int) { chars = Array(text); self.reader = reader; self.start = start }

        func fail(_ what: String) -> TensorError {
            reader.fail("header: expected \(what), found \(i < chars.count ? "'\(chars[i])'" : "the end")", at: start + i)
        }
        mutating func skipSpace() { while i < chars.count && chars[i].isWhitespace { i += 1 } }
        mutating func expect(_ c: Character) throws {
            skipSpace()
            guard i < chars.count && chars[i] == c else { throw fail("'\(c)'") }
            i += 1
        }
        mutating func peek() -> Character? { skipSpace(); return i < chars.count ? chars[i] : nil }

        // dict := '{' (string ':' value ','?)* '}'
        mutating func parseDict() throws -> [String: HeaderValue] {
            try expect("{")
            var d: [String: HeaderValue] = [:]
            while peek() != "}" {
                let key = try parseString()
                try expect(":")
                d[key] = try parseValue()
                if peek() == "," { i += 1 }
                if d.count > 16 { throw fail("at most 16 keys") }
            }
            try expect("}")
            return d
        }
        // string := "'" chars "'" | '"' chars '"'
        mutating func parseString() throws -> String {
            guard let q = peek(), q == "'" || q == "\"" else { throw fail("a quoted string") }
            i += 1
            var s = ""
            while i < chars.count && chars[i] != q { s.append(chars[i]); i += 1 }
            try expect(q)
            return s
        }
        // value := string | 'True' | 'False' | '(' (int ',')* int? ')'
        mutating func parseValue() throws -> HeaderValue {
            switch peek() {
            case "'", "\"": return .string(try parseString())
            case "(":
                i += 1
                var dims: [Int] = []
                while peek() != ")" {
                    var digits = ""
                    while i < chars.count && chars[i].isNumber { digits.append(chars[i]); i += 1 }
                    guard let v = Int(digits) else { throw fail("a non-negative integer dimension") }
                    dims.append(v)
                    if peek() == "," { i += 1 } else if peek() != ")" { throw fail("',' or ')'") }
                    if dims.count > 32 { throw fail("at most 32 dimensions") }
                }
                i += 1
                return .tuple(dims)
            default:
                if chars[i...].starts(with: "True") { i += 4; return .bool(true) }
                if chars[i...].starts(with: "False") { i += 5; return .bool(false) }
                throw fail("a string, True, False or a tuple")
            }
        }
    }
}
