import Foundation
import Network
import Quantization
import Runtime
import Tensors

/// Measured policies for APQ's predictor (../shared/METHODS.md §4): weight-only policies (the
/// reference per-channel quantizer at each layer's width) evaluated on a validation split, kept
/// in an on-disk cache keyed by the model's content, the validation data and the policy, so that
/// reruns and other methods reuse them and an interrupted measurement resumes where it stopped.
public struct PolicySamples: Sendable {
    public struct Sample: Codable, Equatable, Sendable {
        /// Weight bits per layer, in the model's order.
        public var bits: [Int]
        public var accuracy: Double
        public init(bits: [Int], accuracy: Double) { self.bits = bits; self.accuracy = accuracy }
    }

    /// The cache file (JSON: its key and the samples), rewritten atomically after each measured
    /// policy; nil measures without keeping anything.
    public var cache: String?
    public init(cache: String? = nil) { self.cache = cache }

    /// The cache key: FNV-1a over the layers, every parameter and buffer, and the validation
    /// images and labels — another model or split gets another cache.
    public static func key(model: Model, validation: Dataset) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ v: UInt64) { for i in 0..<8 { h ^= (v >> (8 * UInt64(i))) & 0xff; h = h &* 0x0000_0100_0000_01b3 } }
        func mix(_ s: String) { for b in s.utf8 { mix(UInt64(b)) } }
        func mix(_ t: Tensor) { t.withUnsafeScalars { for v in $0 { mix(UInt64(v.bitPattern)) } } }
        for l in model.layers { mix(l.name); mix(UInt64(l.parameterCount)) }
        for (name, t) in model.stateDict { mix(name); mix(t) }
        mix(validation.images)
        for y in validation.labels { mix(UInt64(bitPattern: Int64(y))) }
        return String(format: "%016llx", h)
    }

    struct File: Codable {
        var key: String
        var samples: [Sample]
    }

    /// The cached samples for this model and split (none when the file is absent); a cache of
    /// another model or split is refused rather than mixed in.
    public func cached(key: String) throws -> [Sample] {
        guard let path = cache, FileManager.default.fileExists(atPath: path) else { return [] }
        let f: File
        do { f = try JSONDecoder().decode(File.self, from: Data(try FileIO.read(path))) } catch let e as TensorError { throw e } catch {
            throw MixedPrecisionError("samples: the cache \(path) is unreadable: \(error)")
        }
        guard f.key == key else {
            throw MixedPrecisionError("samples: the cache \(path) holds samples of another model or validation split (key \(f.key), this one \(key)); give another path")
        }
        return f.samples
    }

    /// `count` random policies, each layer's width drawn uniformly from `bits` (seeded).
    public static func random(_ model: Model, count: Int, bits: [Int], seed: UInt64) throws -> [[Int]] {
        guard (0...100_000).contains(count), !bits.isEmpty, bits.allSatisfy({ (1...8).contains($0) }) else {
            throw MixedPrecisionError("samples: expected a count of 0…100000 and widths in 1…8, found \(count) and \(bits)")
        }
        var rng = RandomGenerator(seed: seed)
        return (0..<count).map { _ in model.layers.map { _ in bits[Int(rng.next() % UInt64(bits.count))] } }
    }

    /// Each policy's validation accuracy: from the cache when there, else measured and added to
    /// it. `progress` sees (done, total). Ctrl-C stops between policies; the samples measured so
    /// far are returned (and kept in the cache), with `interrupted` set.
    public func measure(_ model: Model, validation: Dataset, policies: [[Int]], progress: (Int, Int) -> Void = { _, _ in })
        throws -> (samples: [Sample], measured: Int, interrupted: Bool) {
        guard validation.count > 0 else { throw MixedPrecisionError("samples: the validation split is empty") }
        for p in policies where p.count != model.layers.count || !p.allSatisfy({ (1...8).contains($0) }) {
            throw MixedPrecisionError("samples: a policy needs \(model.layers.count) widths in 1…8 (one per layer), found \(p)")
        }
        let key = Self.key(model: model, validation: validation)
        var known = try cached(key: key)
        var byBits = Dictionary(known.map { ($0.bits, $0.accuracy) }, uniquingKeysWith: { a, _ in a })
        var out: [Sample] = [], measured = 0
        for (i, bits) in policies.enumerated() {
            if let a = byBits[bits] { out.append(Sample(bits: bits, accuracy: a)); progress(i + 1, policies.count); continue }
            if Interrupt.isRequested { Interrupt.clear(); return (out, measured, true) }
            let q = try model.quantized(policy: try Policy(model: model, weightBits: bits))
            let s = Sample(bits: bits, accuracy: try q.accuracy(on: validation))
            out.append(s); known.append(s); byBits[bits] = s.accuracy; measured += 1
            if let path = cache {
                try FileIO.writeAtomically(Array(try JSONEncoder().encode(File(key: key, samples: known))), to: path)
            }
            progress(i + 1, policies.count)
        }
        return (out, measured, false)
    }
}
