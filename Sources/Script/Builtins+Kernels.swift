import Kernels
import Tensors

/// The kernel builtins: bit packing as the engine stores codes.
extension Builtins {
    static let kernels: [Builtin] = [
        Builtin("pack", category: "kernels", [.required("codes", .tensorLike), .required("bits", .integer)], returns: "Tensor",
                summary: "Packs integer codes (each in 0…2^bits−1, or signed −2^(bits−1)…) into bytes, LSB first; returns the bytes.",
                examples: [BuiltinExample("pack([1, 2, 3], bits: 4)", "Tensor[2] [33, 3]")]) { args, _ in
            let bits = try args.int("bits")
            guard (1...8).contains(bits) else { throw args.fail("bits must be in 1…8, got \(bits)") }
            let t = try args.tensor("codes")
            let lo = -(1 << (bits - 1)), hi = (1 << bits) - 1
            let codes = try t.scalars.map { x -> UInt8 in
                guard let c = Convert.whole(Double(x), in: lo...hi) else { throw args.fail("code \(x) does not fit \(bits) bits") }
                return UInt8(truncatingIfNeeded: c)
            }
            return .tensor(Tensor(BitPacking.pack(codes, bits: bits).map(Float.init)))
        },
        Builtin("unpack", category: "kernels", [.required("bytes", .tensorLike), .required("count", .integer), .required("bits", .integer),
                                                  .optional("signed", .bool, .bool(false))], returns: "Tensor",
                summary: "Unpacks `count` codes of `bits` each from bytes (the inverse of pack).",
                examples: [BuiltinExample("unpack(pack([1, 2, 3], bits: 4), 3, 4)", "Tensor[3] [1, 2, 3]")]) { args, _ in
            let bits = try args.int("bits"), count = try args.int("count")
            guard (1...8).contains(bits) else { throw args.fail("bits must be in 1…8, got \(bits)") }
            let bytes = try args.tensor("bytes").scalars.map { x -> UInt8 in
                guard let b = Convert.whole(Double(x), in: 0...255) else { throw args.fail("bytes must be whole numbers in 0…255, found \(x)") }
                return UInt8(b)
            }
            guard count >= 0, bytes.count >= BitPacking.byteCount(codes: count, bits: bits) else {
                throw args.fail("\(count) codes of \(bits) bits need \(BitPacking.byteCount(codes: count, bits: bits)) bytes, got \(bytes.count)")
            }
            let signed = try args.bool("signed")
            let codes = BitPacking.unpack(bytes, count: count, bits: bits, signed: signed)
            return .tensor(Tensor(codes.map { signed ? Float(Int8(bitPattern: $0)) : Float($0) }))
        },
    ]
}
