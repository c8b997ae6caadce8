import Foundation
import Kernels
import Tensors

/// A quantized tensor as it is stored: integer codes packed at `bits` per code (the
/// little-endian bit stream of `BitPacking`; signed codes in two's complement), with a scale
/// and a zero point per slice. `byteCount` is exact: packed codes, Float32 scales, and one byte
/// per zero point when the scheme has them.
///
/// Kernel-wise tensors (`channelBits`) give each output channel (slice of dimension 0) its own
/// width: channel after channel, each code at its channel's width, one continuous bit stream
/// (so ⌈Σ_c P_c·b_c / 8⌉ bytes, the cost models' count); a 1-bit channel holds binary codes.
///
/// File format (`save`/`load`): "MPQT", a little-endian UInt32 header length, a JSON header
/// (shape, bits, scheme, slice size, scales, zero points, and channelBits when kernel-wise),
/// then the packed bytes.
public struct PackedTensor: Sendable, Equatable {
    public struct Header: Codable, Sendable, Equatable {
        public var shape: [Int]
        public var bits: Int
        public var scheme: String
        public var sliceSize: Int
        public var scales: [Float]
        public var zeroPoints: [Int]
        /// One width per output channel (kernel-wise); nil: every code at `bits`.
        public var channelBits: [Int]? = nil
    }

    public var header: Header
    public var bytes: [UInt8]

    public var shape: [Int] { header.shape }
    public var bits: Int { header.bits }
    public var count: Int { header.shape.reduce(1, *) }
    var signed: Bool { header.scheme != Quantizer.Scheme.asymmetric.rawValue && header.scheme != Quantizer.Scheme.binary.rawValue }

    /// Quantizes `x` with `quantizer` and packs the codes.
    public init(_ x: Tensor, quantizer: Quantizer) throws {
        guard quantizer.bits <= 8 else { throw QuantizationError("pack: codes of \(quantizer.bits) bits do not pack; 1…8 bits do") }
        guard quantizer.scheme != .gaussian else { throw QuantizationError("pack: the gaussian scheme's mid-rise codes are not packed yet; use symmetric, symmetric_full, asymmetric, binary or ternary") }
        let r = try quantizer.quantize(x)
        let slices = r.scales.count, size = x.count / max(1, slices)
        var codes = [UInt8](repeating: 0, count: x.count)
        for i in 0..<x.count {
            let s = r.scales[i / size], z = r.zeroPoints[i / size]
            let v = r.dequantized.scalars[i]
            let q: Int
            switch quantizer.scheme {
            case .binary: q = v < 0 ? 1 : 0                                 // bit 1 = −α
            case .ternary: q = s > 0 ? Int((v / s).rounded()) : 0           // −1, 0, 1
            default: q = s > 0 ? Int((v / s).rounded()) + z : 0
            }
            codes[i] = UInt8(truncatingIfNeeded: q)
        }
        header = Header(shape: x.shape, bits: quantizer.bits, scheme: quantizer.scheme.rawValue, sliceSize: size,
                        scales: r.scales, zeroPoints: r.zeroPoints)
        bytes = BitPacking.pack(codes, bits: quantizer.bits)
    }

    init(header: Header, bytes: [UInt8]) { self.header = header; self.bytes = bytes }

    /// Quantizes `x` with a policy's weight quantizer, kernel-wise when it gives each output
    /// channel a width (symmetric-family schemes; a 1-bit channel is binary).
    public init(_ x: Tensor, weight: Policy.Weight) throws {
        guard let widths = weight.channelBits else { try self.init(x, quantizer: weight.quantizer); return }
        guard x.rank >= 1, x.shape[0] == widths.count, x.count > 0 else {
            throw QuantizationError("pack: expected \(widths.count) output channels (one per width), found shape \(x.shape)")
        }
        guard [.symmetric, .symmetricFull, .powerOfTwo].contains(weight.quantizer.scheme) else {
            throw QuantizationError("pack: per-channel widths pack symmetric, symmetric_full and pow2 codes; the scheme is \(weight.quantizer.scheme.rawValue)")
        }
        let r = try weight.quantize(x)
        let per = x.count / widths.count
        var codes = [UInt8](repeating: 0, count: x.count)
        for i in 0..<x.count {
            let s = r.scales[i / per], v = r.dequantized.scalars[i]
            codes[i] = widths[i / per] == 1 ? (v < 0 ? 1 : 0) : UInt8(truncatingIfNeeded: s > 0 ? Int((v / s).rounded()) : 0)
        }
        self.init(header: Header(shape: x.shape, bits: widths.max()!, scheme: weight.quantizer.scheme.rawValue, sliceSize: per,
                                 scales: r.scales, zeroPoints: r.zeroPoints, channelBits: widths),
                  bytes: Self.packStream(codes, per: per, widths: widths))
    }

    /// Codes of `widths[c]` bits for channel c (`per` codes each), one little-endian bit stream.
    static func packStream(_ codes: [UInt8], per: Int, widths: [Int]) -> [UInt8] {
        let total = widths.reduce(0) { $0 + per * $1 }
        var out = [UInt8](repeating: 0, count: (total + 7) / 8)
        var bit = 0
        for (i, code) in codes.enumerated() {
            let w = widths[i / per]
            for k in 0..<w where (code >> UInt8(k)) & 1 == 1 { out[(bit + k) / 8] |= 1 << UInt8((bit + k) % 8) }
            bit += w
        }
        return out
    }

    /// The codes of a kernel-wise stream, sign-extended from each channel's width.
    static func unpackStream(_ bytes: [UInt8], per: Int, widths: [Int], signed: Bool) -> [Int] {
        var out = [Int](repeating: 0, count: per * widths.count)
        var bit = 0
        for i in out.indices {
            let w = widths[i / per]
            var v = 0
            for k in 0..<w where (bytes[(bit + k) / 8] >> UInt8((bit + k) % 8)) & 1 == 1 { v |= 1 << k }
            if signed && w > 1 && v >= 1 << (w - 1) { v -= 1 << w }
            out[i] = v
            bit += w
        }
        return out
    }

    /// Stored bytes: packed codes + 4 per scale + 1 per zero point (asymmetric only).
    public var byteCount: Int {
        bytes.count + 4 * header.scales.count + (header.scheme == Quantizer.Scheme.asymmetric.rawValue ? header.zeroPoints.count : 0)
    }

    /// The float values the codes stand for.
    public func dequantize() -> Tensor {
        let size = header.sliceSize
        if let widths = header.channelBits {
            let codes = Self.unpackStream(bytes, per: size, widths: widths, signed: true)
            return Tensor(checkedShape: shape, scalars: codes.indices.map { i in
                let s = header.scales[i / size]
                return widths[i / size] == 1 ? (codes[i] == 1 ? -s : s) : Float(codes[i]) * s
            })
        }
        let codes = BitPacking.unpack(bytes, count: count, bits: bits, signed: signed)
        var out = [Float](repeating: 0, count: count)
        for i in 0..<count {
            let s = header.scales[i / size]
            switch header.scheme {
            case Quantizer.Scheme.binary.rawValue: out[i] = codes[i] == 1 ? -s : s
            case Quantizer.Scheme.asymmetric.rawValue: out[i] = Float(Int(codes[i]) - header.zeroPoints[i / size]) * s
            default: out[i] = Float(Int(Int8(bitPattern: codes[i]))) * s
            }
        }
        return Tensor(checkedShape: shape, scalars: out)
    }

    public func save(to path: String) throws {
        let json = try JSONEncoder().encode(header)
        var out = Array("MPQT".utf8)
        let n = UInt32(json.count)
        out += [UInt8(n & 0xFF), UInt8((n >> 8) & 0xFF), UInt8((n >> 16) & 0xFF), UInt8(n >> 24)]
        out += json
        out += bytes
        try FileIO.writeAtomically(out, to: path)
    }

    public static func load(_ path: String) throws -> PackedTensor {
        let data = try FileIO.read(path)
        guard data.count >= 8, Array(data[0..<4]) == Array("MPQT".utf8) else {
            throw QuantizationError("\(path): not a packed tensor (expected the magic 'MPQT' at byte 0)")
        }
        let n = Int(data[4]) | Int(data[5]) << 8 | Int(data[6]) << 16 | Int(data[7]) << 24
        guard n <= data.count - 8 else { throw QuantizationError("\(path): the header claims \(n) bytes, but only \(data.count - 8) follow at byte 8") }
        let header: Header
        do { header = try JSONDecoder().decode(Header.self, from: Data(data[8..<(8 + n)])) }
        catch { throw QuantizationError("\(path): the header at byte 8 is not valid: \(error)") }
        guard header.shape.allSatisfy({ $0 >= 0 }), let count = try? Tensor.elementCount(of: header.shape),
              (1...8).contains(header.bits), header.sliceSize >= 1, count % header.sliceSize == 0,
              header.scales.count == count / header.sliceSize, header.zeroPoints.count == header.scales.count,
              Quantizer.Scheme(rawValue: header.scheme) != nil else {
            throw QuantizationError("\(path): the header is inconsistent (shape \(header.shape), \(header.bits) bits, slices of \(header.sliceSize), \(header.scales.count) scales)")
        }
        // Codes are bits wide: a zero point outside 0…2^bits − 1 (asymmetric; 0 otherwise) or a
        // negative scale describes no quantizer, and would overflow the dequantization.
        let asymmetric = header.scheme == Quantizer.Scheme.asymmetric.rawValue
        if let (i, z) = header.zeroPoints.enumerated().first(where: { asymmetric ? !(0...((1 << header.bits) - 1)).contains($0.1) : $0.1 != 0 }) {
            throw QuantizationError("\(path): zero point \(i) is \(z); expected \(asymmetric ? "0…\((1 << header.bits) - 1) for \(header.bits)-bit codes" : "0 for the \(header.scheme) scheme")")
        }
        if let (i, s) = header.scales.enumerated().first(where: { !($0.1 >= 0 && $0.1.isFinite) }) {
            throw QuantizationError("\(path): scale \(i) is \(s); expected a finite number ≥ 0")
        }
        if let widths = header.channelBits {
            guard header.shape.first == widths.count, widths.allSatisfy({ (1...8).contains($0) }), header.sliceSize * widths.count == count,
                  widths.max() == header.bits else {
                throw QuantizationError("\(path): channelBits must give one width in 1…8 per output channel (\(header.shape.first ?? 0)), each channel one slice, the widest equal to bits; found \(widths.count) widths")
            }
        }
        let expected = header.channelBits.map { ($0.reduce(0) { $0 + header.sliceSize * $1 } + 7) / 8 }
            ?? BitPacking.byteCount(codes: count, bits: header.bits)
        guard data.count - 8 - n == expected else {
            throw QuantizationError("\(path): expected \(expected) bytes of codes after byte \(8 + n), found \(data.count - 8 - n)")
        }
        return PackedTensor(header: header, bytes: Array(data[(8 + n)...]))
    }
}
