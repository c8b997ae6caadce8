import Foundation
import Kernels

/// Bit packing and unpacking, in bytes of unpacked codes per second, beside memcpy of the same
/// number of bytes. 4 Mi codes: the weights of a mid-sized network, beyond L2, inside L3.
struct PackBenchmarks {
    var quick: Bool
    var budget: Double

    func run(wanted: (String) -> Bool, emit: (BenchResult) -> Void) {
        guard (1...8).contains(where: { wanted("pack.u\($0)") || wanted("unpack.u\($0)") }) else { return }
        let count = quick ? 1 << 20 : 1 << 22
        var r = BenchRandom(seed: 2)
        let raw = r.bytes(count)
        var copy = [UInt8](repeating: 0, count: count)
        let memcpyTime = bestTime(budget: budget) {
            copy.withUnsafeMutableBytes { d in raw.withUnsafeBytes { s in _ = memcpy(d.baseAddress!, s.baseAddress!, count) } }
        }
        let memcpyRate = Double(count) / memcpyTime / 1e9
        for bits in 1...8 {
            let codes = raw.map { $0 & UInt8((1 << bits) - 1) }
            var packed = [UInt8](repeating: 0, count: BitPacking.byteCount(codes: count, bits: bits))
            var out = [UInt8](repeating: 0, count: count)
            if wanted("pack.u\(bits)") {
                let t = bestTime(budget: budget) { BitPacking.pack(codes, count: count, bits: bits, into: &packed) }
                emit(BenchResult("pack.u\(bits)", ours: Double(count) / t / 1e9, anchor: "memcpy",
                                 anchorValue: memcpyRate, unit: "GB/s"))
            } else {
                BitPacking.pack(codes, count: count, bits: bits, into: &packed)
            }
            if wanted("unpack.u\(bits)") {
                let t = bestTime(budget: budget) {
                    BitPacking.unpack(packed, count: count, bits: bits, signed: false, into: &out)
                }
                emit(BenchResult("unpack.u\(bits)", ours: Double(count) / t / 1e9, anchor: "memcpy",
                                 anchorValue: memcpyRate, unit: "GB/s"))
            }
        }
    }
}
