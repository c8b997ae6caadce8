import Foundation
import Kernels
import Network
import Tensors

/// Measured latency of each layer at each weight width on this machine: the time of the
/// integer GEMM for the layer's shape (u8 activation patches × int8 or packed 2…7-bit weights
/// unpacked as they are read → Int32, through `IGEMM`), per image — the cost of keeping weights
/// packed in memory, where the width changes the time. im2col, requantization and the other ops
/// are not in it. (`IntegerModel` expands packed weights to int8 when it is built, since this
/// CPU multiplies nothing narrower than 8 bits: its speed does not depend on the width.)
public struct LatencyTable: Sendable, Equatable, Codable {
    /// Milliseconds per image, by layer name and weight bits.
    public var milliseconds: [String: [Int: Double]]
    public var batch: Int
    public var threads: Int
    /// Identifies the machine and model the table was measured for (the cache key).
    public var key: String

    /// As a cost model for bit allocation.
    public var costModel: CostModel { .table(name: "latency", values: milliseconds) }

    /// Times every layer at every width in `bits` (2…8): the best of repeated runs lasting at
    /// least `minimumTime` seconds. `progress` sees (done, total).
    public static func measure(_ model: Model, bits: [Int], batch: Int = 1, threads: Int = 1, minimumTime: Double = 0.02,
                               progress: ((Int, Int) -> Void)? = nil) throws -> LatencyTable {
        guard bits.allSatisfy({ (2...8).contains($0) }), !bits.isEmpty else {
            throw NetworkError("latency table: the integer kernels run 2…8-bit weights; got \(bits)")
        }
        guard (1...1024).contains(batch), (1...64).contains(threads) else {
            throw NetworkError("latency table: batch must be in 1…1024 and threads in 1…64")
        }
        var table: [String: [Int: Double]] = [:]
        var rng = RandomGenerator(seed: 1)
        var done = 0
        for layer in model.layers {
            let s = layer.weightShape
            let n = s[0], k = s.dropFirst().reduce(1, *)
            let pixels = max(1, layer.macs / max(1, layer.parameterCount))
            let m = pixels * batch
            let a = (0..<(m * k)).map { _ in UInt8(truncatingIfNeeded: rng.next() >> 56) }
            var c = [Int32](repeating: 0, count: m * n)
            var row: [Int: Double] = [:]
            for b in bits {
                try Interrupt.check()
                let levels = 1 << (b - 1)
                let codes = (0..<(n * k)).map { _ in Int8(truncatingIfNeeded: Int(rng.next() % UInt64(2 * levels - 1)) - (levels - 1)) }
                let rowBytes = BitPacking.byteCount(codes: k, bits: b)
                var packed = [UInt8](repeating: 0, count: n * rowBytes)
                if b < 8 {
                    codes.withUnsafeBufferPointer { src in
                        packed.withUnsafeMutableBufferPointer { dst in
                            for j in 0..<n {
                                let raw = UnsafeRawPointer(src.baseAddress! + j * k).assumingMemoryBound(to: UInt8.self)
                                BitPacking.pack(raw, count: k, bits: b, into: dst.baseAddress! + j * rowBytes)
                            }
                        }
                    }
                }
                let run = {
                    a.withUnsafeBufferPointer { ap in
                        c.withUnsafeMutableBufferPointer { cp in
                            if b == 8 {
                                codes.withUnsafeBufferPointer { bp in
                                    IGEMM.multiply(m: m, n: n, k: k, a: ap.baseAddress!, lda: k,
                                                   b: .int8(bp.baseAddress!, ld: k, transposed: true), c: cp.baseAddress!, ldc: n, threads: threads)
                                }
                            } else {
                                packed.withUnsafeBufferPointer { bp in
                                    IGEMM.multiply(m: m, n: n, k: k, a: ap.baseAddress!, lda: k,
                                                   b: .packed(bp.baseAddress!, bits: b, rowBytes: rowBytes), c: cp.baseAddress!, ldc: n, threads: threads)
                                }
                            }
                        }
                    }
                }
                row[b] = Stopwatch.best(budget: minimumTime, run) * 1000 / Double(batch)
                done += 1
                progress?(done, model.layers.count * bits.count)
            }
            table[layer.name] = row
        }
        return LatencyTable(milliseconds: table, batch: batch, threads: threads, key: cacheKey(model, bits: bits, batch: batch, threads: threads))
    }

    /// What a cached table must match: the CPU, the kernel, the layers' shapes, the widths.
    public static func cacheKey(_ model: Model, bits: [Int], batch: Int, threads: Int) -> String {
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }.map { String($0.split(separator: ":").last ?? "").trimmingCharacters(in: .whitespaces) } ?? "unknown cpu"
        let layers = model.layers.map { "\($0.name)\($0.weightShape)\($0.macs)" }.joined(separator: ";")
        return "\(cpu)|\(IGEMM.activeBackend.rawValue)|\(layers)|bits \(bits.sorted())|batch \(batch)|threads \(threads)"
    }

    /// The cache directory: $MPQ_CACHE, else ~/.cache/mpq.
    public static var cacheDirectory: String {
        if let d = ProcessInfo.processInfo.environment["MPQ_CACHE"], !d.isEmpty { return d }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/mpq").path
    }

    /// The table from the cache when one was measured for the same key, else measured now and
    /// cached (written atomically). `measured` tells which.
    public static func cached(_ model: Model, bits: [Int], batch: Int = 1, threads: Int = 1, directory: String = cacheDirectory,
                              progress: ((Int, Int) -> Void)? = nil) throws -> (table: LatencyTable, measured: Bool) {
        let key = cacheKey(model, bits: bits, batch: batch, threads: threads)
        var h: UInt64 = 0xcbf29ce484222325
        for b in key.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        let path = "\(directory)/latency-\(model.name)-\(String(h, radix: 16)).json"
        if let data = FileManager.default.contents(atPath: path),
           let table = try? JSONDecoder().decode(LatencyTable.self, from: data), table.key == key {
            return (table, false)
        }
        let table = try measure(model, bits: bits, batch: batch, threads: threads, progress: progress)
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if let data = try? JSONEncoder().encode(table) { try? FileIO.writeAtomically([UInt8](data), to: path) }
        return (table, true)
    }
}
