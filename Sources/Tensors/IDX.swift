/// The IDX format of MNIST and Fashion-MNIST, plain or gzip-compressed.
///
/// Layout: two zero bytes, a type byte (0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32,
/// 0x0E f64), the number of dimensions, each dimension as a big-endian UInt32, then the data,
/// big-endian, row-major. The data size must match the dimensions exactly.
public enum IDX {
    public enum ElementType: UInt8, Sendable {
        case uint8 = 0x08, int8 = 0x09, int16 = 0x0B, int32 = 0x0C, float32 = 0x0D, float64 = 0x0E
        var size: Int {
            switch self { case .uint8, .int8: 1; case .int16: 2; case .int32, .float32: 4; case .float64: 8 }
        }
    }

    /// An IDX file's contents: the element type it declared and the values as floats.
    public struct Contents: Sendable {
        public var type: ElementType
        public var tensor: Tensor
        /// For `uint8` files, the raw bytes (images and labels), without a float copy's rounding.
        public var bytes: [UInt8]?
    }

    /// Decompressed files larger than this are refused (Fashion-MNIST's largest is 47 MB).
    nonisolated(unsafe) public static var sizeLimit = 1 << 30

    public static func read(_ path: String) throws -> Contents {
        try decode(try FileIO.read(path), path: path)
    }

    public static func decode(_ file: [UInt8], path: String) throws -> Contents {
        var raw = file
        if file.count >= 2 && file[0] == 0x1F && file[1] == 0x8B {
            raw = try Zlib.inflate(file[...], gzip: true, limit: sizeLimit, path: path)
        }
        var r = ByteReader(raw, path: path)
        let z0 = try r.uint8("magic"), z1 = try r.uint8("magic")
        let typeByte = try r.uint8("type"), rank = Int(try r.uint8("rank"))
        guard z0 == 0 && z1 == 0 else {
            throw r.fail("expected IDX magic 00 00, found \(hex(z0)) \(hex(z1)) (not an IDX file)", at: 0)
        }
        guard let type = ElementType(rawValue: typeByte) else {
            throw r.fail("unknown IDX element type \(hex(typeByte)); expected 08, 09, 0B, 0C, 0D or 0E", at: 2)
        }
        var shape: [Int] = []
        for _ in 0..<rank { shape.append(try r.uint32BE("dimension")) }
        let header = r.offset
        let n: Int
        do { n = try Tensor.elementCount(of: shape) } catch {
            throw r.fail("dimensions \(shape) are too large: \(error)", at: 4)
        }
        let (need, overflow) = n.multipliedReportingOverflow(by: type.size)
        guard !overflow && need == r.remaining else {
            throw r.fail("dimensions \(shape) need \(overflow ? "more than Int.max" : String(need)) bytes of data, found \(r.remaining)", at: header)
        }
        let data = try r.take(need, "data")
        var values = [Float](repeating: 0, count: n)
        var bytes: [UInt8]? = nil
        let s = data.startIndex
        func be(_ i: Int, _ size: Int) -> UInt64 {
            var v: UInt64 = 0
            for t in 0..<size { v = v << 8 | UInt64(data[s + i * size + t]) }
            return v
        }
        switch type {
        case .uint8:
            bytes = Array(data)
            for i in 0..<n { values[i] = Float(data[s + i]) }
        case .int8: for i in 0..<n { values[i] = Float(Int8(bitPattern: data[s + i])) }
        case .int16: for i in 0..<n { values[i] = Float(Int16(truncatingIfNeeded: be(i, 2))) }
        case .int32: for i in 0..<n { values[i] = Float(Int32(truncatingIfNeeded: be(i, 4))) }
        case .float32: for i in 0..<n { values[i] = Float(bitPattern: UInt32(be(i, 4))) }
        case .float64: for i in 0..<n { values[i] = Float(Double(bitPattern: be(i, 8))) }
        }
        return Contents(type: type, tensor: Tensor(uncheckedShape: shape, scalars: values), bytes: bytes)
    }

    /// Encodes a tensor as IDX of `type` (values are rounded and must fit the type).
    public static func encode(_ t: Tensor, as type: ElementType) throws -> [UInt8] {
        guard t.rank <= 255, t.shape.allSatisfy({ $0 <= Int(UInt32.max) }) else {
            throw TensorError.invalidArgument("IDX: shape \(t.shape) cannot be stored (rank ≤ 255, dims < 2³²)")
        }
        var out: [UInt8] = [0, 0, type.rawValue, UInt8(t.rank)]
        for d in t.shape { out.appendBE(d, bytes: 4) }
        out.reserveCapacity(out.count + t.count * type.size)
        for v in t.scalars {
            switch type {
            case .float32: out.appendBE(Int(v.bitPattern), bytes: 4)
            case .float64: out.appendBE(Int(truncatingIfNeeded: Double(v).bitPattern), bytes: 8)
            default:
                let (lo, hi): (Float, Float) = switch type {
                case .uint8: (0, 255); case .int8: (-128, 127); case .int16: (-32768, 32767)
                default: (-2_147_483_648, 2_147_483_520)
                }
                guard v.isFinite, v.rounded() >= lo, v.rounded() <= hi else {
                    throw TensorError.invalidArgument("IDX: value \(v) does not fit \(type)")
                }
                out.appendBE(Int(v.rounded()), bytes: type.size)
            }
        }
        return out
    }

    /// Writes a tensor as IDX, gzip-compressed when `gzip` is true; atomically.
    public static func write(_ t: Tensor, as type: ElementType, to path: String, gzip: Bool = false) throws {
        let bytes = try encode(t, as: type)
        try FileIO.writeAtomically(gzip ? Zlib.gzip(bytes) : bytes, to: path)
    }
}

func hex(_ b: UInt8) -> String {
    let digits = Array("0123456789ABCDEF")
    return String([digits[Int(b >> 4)], digits[Int(b & 15)]])
}
