import Foundation
import Kernels
import Network
import Quantization
import Tensors

/// Measured latency of each layer at each weight width on this machine: the time the integer
/// engine (`IntegerModel`, W·A8) takes for the layer on one image on one core — its kernel,
/// with requantization and any fused residual add — best of repeated runs. Convolutions over
/// many pixels multiply every width from 2 to 8 bits as int8 (each weight is reused across the
/// pixels, so the kernel is bound by arithmetic and the CPU has nothing narrower than int8):
/// their time is measured once and is the same at every width. Layers with one output pixel —
/// linear layers — run as a matrix–vector product reading each weight once per image, stored at
/// 8, 4 or 2 bits (`GEMV`): their entries are measured at each storage width (3–4 bits take the
/// 4-bit time, 2 bits the 2-bit one, 5–8 the 8-bit one), so on wide linear layers fewer bits do
/// buy time and a latency budget can trade one for the other. At 1 bit the entry is the layer as W1A1 — XNOR-popcount on packed signs with its
/// output packed into the next layer's signs (`IntegerModel.binaryLayerMilliseconds`): binary
/// weights with binary inputs, as a binary network runs it, which is where time does fall.
/// Activation quantization of the image and pooling are not in it.
public struct LatencyTable: Sendable, Equatable, Codable {
    /// Milliseconds per image, by layer name and weight bits.
    public var milliseconds: [String: [Int: Double]]
    /// Identifies the machine and model the table was measured for (the cache key).
    public var key: String

    /// As a cost model for bit allocation.
    public var costModel: CostModel { .table(name: "latency", values: milliseconds) }

    /// Times every layer (entries for every width in `bits`, 1…8), each the best of repeated
    /// runs lasting at least `minimumTime` seconds. `progress` sees (done, total).
    public static func measure(_ model: Model, bits: [Int], minimumTime: Double = 0.02,
                               progress: ((Int, Int) -> Void)? = nil) throws -> LatencyTable {
        guard bits.allSatisfy({ (1...8).contains($0) }), !bits.isEmpty else {
            throw MixedPrecisionError("latency table: the integer engine runs 1…8-bit weights (1: W1A1); got \(bits)")
        }
        var rng = RandomGenerator(seed: 1)
        let calibration = try Tensor.random([8] + model.inputShape, .normal(mean: 0, std: 1), using: &rng)
        let engine: IntegerModel
        do {
            // A binary network is timed on its real-valued skeleton (same layers and shapes).
            let skeleton = try model.strippingBinarization()
            engine = try IntegerModel(model: skeleton, policy: try Policy.uniform(skeleton, bits: 8, activationBits: 8), calibration: calibration)
        } catch let e as QuantizationError {
            throw MixedPrecisionError("latency table: the integer engine cannot run '\(model.name)': \(e.message)")
        }
        progress?(0, 1)
        let times = try engine.layerMilliseconds(minimumTime: minimumTime)
        let binary = bits.contains(1) ? try engine.binaryLayerMilliseconds(minimumTime: minimumTime) : [:]
        let vector = bits.contains { $0 > 1 && $0 <= 4 } ? try engine.vectorLayerMilliseconds(minimumTime: minimumTime) : [:]
        progress?(1, 1)
        var table: [String: [Int: Double]] = [:]
        for layer in model.layers {
            guard let t = times[layer.name], !bits.contains(1) || binary[layer.name] != nil else {
                throw MixedPrecisionError("latency table: the engine has no layer '\(layer.name)'")
            }
            table[layer.name] = Dictionary(uniqueKeysWithValues: bits.map { b in
                if b == 1 { return (b, binary[layer.name]!) }
                if b <= 4, let v = vector[layer.name], let narrow = v[b <= 2 ? 2 : 4] { return (b, narrow) }
                return (b, t)
            })
        }
        return LatencyTable(milliseconds: table, key: cacheKey(model, bits: bits))
    }

    /// What a cached table must match: the CPU, the kernel, the layers' shapes, the widths.
    public static func cacheKey(_ model: Model, bits: [Int]) -> String {
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }.map { String($0.split(separator: ":").last ?? "").trimmingCharacters(in: .whitespaces) } ?? "unknown cpu"
        let layers = model.layers.map { "\($0.name)\($0.weightShape)\($0.macs)" }.joined(separator: ";")
        return "engine 5|\(cpu)|\(IGEMM.activeBackend.rawValue)|\(layers)|bits \(bits.sorted())"
    }

    /// The cache directory: $MPQ_CACHE, else ~/.cache/mpq.
    public static var cacheDirectory: String {
        if let d = ProcessInfo.processInfo.environment["MPQ_CACHE"], !d.isEmpty { return d }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/mpq").path
    }

    /// The table from the cache when one was measured for the same key, else measured now and
    /// cached (written atomically). `measured` tells which.
    public static func cached(_ model: Model, bits: [Int], directory: String = cacheDirectory,
                              progress: ((Int, Int) -> Void)? = nil) throws -> (table: LatencyTable, measured: Bool) {
        let key = cacheKey(model, bits: bits)
        var h = FNV1a()
        h.bytes(key)
        let path = "\(directory)/latency-\(model.name)-\(String(h.value, radix: 16)).json"
        if let data = FileManager.default.contents(atPath: path),
           let table = try? JSONDecoder().decode(LatencyTable.self, from: data), table.key == key {
            return (table, false)
        }
        let table = try measure(model, bits: bits, progress: progress)
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if let data = try? JSONEncoder().encode(table) { try? FileIO.writeAtomically([UInt8](data), to: path) }
        return (table, true)
    }
}
