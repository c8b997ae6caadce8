/// Walks protobuf wire format without a schema and reports the first byte where it stops
/// making sense (a truncated varint, a length past the end, an invalid wire type), descending
/// into the ONNX fields that hold messages. SwiftProtobuf says *that* a file is malformed;
/// this says *where*.
enum ProtobufScan {
    struct Problem { var offset: Int; var reason: String }

    /// Field numbers that hold sub-messages, per message kind, for the ONNX messages we read.
    static let messageFields: [String: [Int: String]] = [
        "model": [7: "graph", 8: "opset"],
        "graph": [1: "node", 5: "tensor", 11: "value", 12: "value", 13: "value"],
        "node": [5: "attribute"],
        "attribute": [5: "tensor"],
        "value": [:], "tensor": [:], "opset": [:],
    ]

    static func firstProblem(_ bytes: [UInt8]) -> Problem? {
        if bytes.isEmpty { return Problem(offset: 0, reason: "the file is empty") }
        return scan(bytes, from: 0, to: bytes.count, kind: "model", depth: 0)
    }

    /// A base-128 varint at `i` (advanced past it), or nil when it runs past `end` or 64 bits.
    static func varint(_ b: [UInt8], at i: inout Int, end: Int) -> UInt64? {
        var v: UInt64 = 0, shift: UInt64 = 0
        while i < end && shift < 64 {
            let byte = b[i]; i += 1
            v |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return v }
            shift += 7
        }
        return nil
    }

    static func scan(_ b: [UInt8], from start: Int, to end: Int, kind: String, depth: Int) -> Problem? {
        var i = start
        func varint() -> UInt64? { Self.varint(b, at: &i, end: end) }
        while i < end {
            let at = i
            guard let key = varint() else { return Problem(offset: at, reason: "truncated field key") }
            let field = Int(key >> 3), wire = key & 7
            guard field > 0 else { return Problem(offset: at, reason: "field number 0") }
            switch wire {
            case 0: guard varint() != nil else { return Problem(offset: at, reason: "truncated varint in field \(field)") }
            case 1: i += 8
            case 5: i += 4
            case 2:
                guard let length = varint(), length <= UInt64(end - i) else {
                    return Problem(offset: at, reason: "field \(field) claims more bytes than remain (\(end - i))")
                }
                let bodyStart = i
                i += Int(length)
                if depth < 8, let sub = messageFields[kind]?[field],
                   let p = scan(b, from: bodyStart, to: i, kind: sub, depth: depth + 1) { return p }
            default: return Problem(offset: at, reason: "invalid wire type \(wire) in field \(field)")
            }
            if i > end { return Problem(offset: at, reason: "field \(field) runs past the end") }
        }
        return nil
    }
}

extension ProtobufScan {
    /// The key–value pairs a message keeps in field `field` as StringStringEntryProto
    /// (key = 1, value = 2), read from bytes the generated code did not parse (its unknown
    /// fields): TensorProto's external_data (field 13) is not in our minimal schema.
    static func stringPairs(_ b: [UInt8], field wanted: Int) -> [(key: String, value: String)] {
        var out: [(String, String)] = []
        func fields(_ from: Int, _ to: Int, _ visit: (Int, Int, Int) -> Void) {
            var i = from
            func varint() -> UInt64? { Self.varint(b, at: &i, end: to) }
            while i < to {
                guard let key = varint() else { return }
                switch key & 7 {
                case 0: guard varint() != nil else { return }
                case 1: i += 8
                case 5: i += 4
                case 2:
                    guard let n = varint(), n <= UInt64(to - i) else { return }
                    visit(Int(key >> 3), i, i + Int(n))
                    i += Int(n)
                default: return
                }
            }
        }
        fields(0, b.count) { field, start, end in
            guard field == wanted else { return }
            var key = "", value = ""
            fields(start, end) { f, s, e in
                let text = String(decoding: b[s..<e], as: UTF8.self)
                if f == 1 { key = text } else if f == 2 { value = text }
            }
            out.append((key, value))
        }
        return out
    }
}
