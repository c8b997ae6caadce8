import Foundation
import Network
import Quantization
import Runtime
import Tensors

/// Measured policies for APQ's predictor (../shared/METHODS.md §4): weight-only policies (the
/// reference per-channel quantizer at each layer's width, with bias correction when calibration
/// images are given) evaluated on a validation split, kept
/// in an on-disk cache keyed by the model's content, the validation data and the policy, so that
/// reruns and other methods reuse them and an interrupted measurement resumes where it stopped.
public struct PolicySamples: Sendable {
    public struct Sample: Codable, Equatable, Sendable {
        /// Weight bits per layer, in the model's order.
        public var bits: [Int]
        /// Keep ratios of the sampler's pruned layers (`prune`), when it prunes.
        public var keep: [Double]?
        public var accuracy: Double
        /// The mean KL(softmax(float) ‖ softmax(quantized)) of the model's outputs on the
        /// validation split (`OutputReference`), when measured with a reference.
        public var divergence: Double?
        public init(bits: [Int], keep: [Double]? = nil, accuracy: Double, divergence: Double? = nil) {
            self.bits = bits; self.keep = keep; self.accuracy = accuracy; self.divergence = divergence
        }
        public var point: Evolution.Point { Evolution.Point(bits: bits, keep: keep ?? []) }
    }

    /// The cache file (JSON: its key and the samples), rewritten atomically after each measured
    /// policy; nil measures without keeping anything.
    public var cache: String?
    /// Images whose measured output shifts are taken out of each quantized layer's bias or batch
    /// norm before evaluation (`Model.biasCorrected`); nil evaluates the quantized weights as they
    /// are. Post-training mixed precision (Sony MCT's included) applies this correction, and it
    /// makes low widths far less erratic: one 2-bit layer costs a few points, not tens.
    public var calibration: Tensor?
    /// Evaluates each policy as it deploys: in the integer engine, activations at 8 bits
    /// calibrated on `calibration` (which must be given, and also bias-corrects): on ResNet-20,
    /// 110 policies per minute against the float simulation's 74 (`eval.resnet20.policies`).
    public var engine: Bool
    /// Layers whose output channels each sample prunes (to its `keep` ratios, by L1 norm, as
    /// `Model.pruned`) before quantizing: APQ's joint space. No fine-tuning follows in the loop;
    /// with calibration images the pruned model's batch norms are recalibrated on them and it is
    /// bias-corrected like any other.
    public var prune: [String]
    public init(cache: String? = nil, calibration: Tensor? = nil, engine: Bool = false, prune: [String] = []) {
        self.cache = cache; self.calibration = calibration; self.engine = engine; self.prune = prune
    }

    /// The cache key: FNV-1a over the layers, every parameter and buffer, the validation images
    /// and labels, and the calibration images when bias-corrected — another model, split or
    /// protocol gets another cache.
    public static func key(model: Model, validation: Dataset, calibration: Tensor? = nil, engine: Bool = false, prune: [String] = []) -> String {
        var h = FNV1a()
        func mix(_ v: UInt64) { h.word(v) }
        func mix(_ s: String) { for b in s.utf8 { mix(UInt64(b)) } }
        func mix(_ t: Tensor) { t.withUnsafeScalars { for v in $0 { mix(UInt64(v.bitPattern)) } } }
        for l in model.layers { mix(l.name); mix(UInt64(l.parameterCount)) }
        for (name, t) in model.stateDict { mix(name); mix(t) }
        mix(validation.images)
        for y in validation.labels { mix(UInt64(bitPattern: Int64(y))) }
        if let calibration { mix("bias correction"); mix(calibration) }
        if engine { mix("integer engine, 8-bit activations") }
        if !prune.isEmpty { mix(calibration == nil ? "pruned by L1 norm" : "pruned by L1 norm, batch norms recalibrated"); for name in prune { mix(name) } }
        return h.hex
    }

    struct File: Codable {
        var key: String
        var samples: [Sample]
    }

    /// The cached samples for this model and split (none when the file is absent). A cache of
    /// another model, split or protocol is refused by its key; an entry that is not a policy of
    /// `layers` widths in 1…8 with an accuracy in 0…1 (and, when it has one, a finite divergence
    /// ≥ 0) is skipped, and `warn` told which and why, never trusted.
    public func cached(key: String, layers: Int, warn: (String) -> Void = { _ in }) throws -> [Sample] {
        guard let path = cache, FileManager.default.fileExists(atPath: path) else { return [] }
        let file: LenientFile
        do { file = try JSONDecoder().decode(LenientFile.self, from: Data(try FileIO.read(path))) } catch let e as TensorError { throw e } catch {
            throw MixedPrecisionError("samples: the cache \(path) is not a samples cache (expected JSON {key, samples}); give another path or remove it")
        }
        guard file.key == key else {
            throw MixedPrecisionError("samples: the cache \(path) holds samples of another model or validation split (key \(file.key), this one \(key)); give another path")
        }
        var out: [Sample] = []
        for (i, e) in file.samples.enumerated() {
            guard let bits = e.bits, bits.count == layers, bits.allSatisfy({ (1...8).contains($0) }) else {
                warn("samples: cache entry \(i) of \(path) skipped: expected \(layers) whole widths in 1…8"); continue
            }
            guard let accuracy = e.accuracy, accuracy.isFinite, (0...1).contains(accuracy) else {
                warn("samples: cache entry \(i) of \(path) skipped: expected an accuracy in 0…1\(e.accuracy.map { ", found \($0)" } ?? "")"); continue
            }
            if prune.isEmpty ? e.keep != nil : !(e.keep.map { $0.count == prune.count && $0.allSatisfy { $0.isFinite && $0 > 0 && $0 <= 1 } } ?? false) {
                warn("samples: cache entry \(i) of \(path) skipped: expected \(prune.isEmpty ? "no keep ratios" : "\(prune.count) keep ratios in (0, 1]")"); continue
            }
            if e.divergenceMalformed || !(e.divergence.map { $0.isFinite && $0 >= 0 } ?? true) {
                warn("samples: cache entry \(i) of \(path) skipped: expected a divergence ≥ 0\(e.divergence.map { ", found \($0)" } ?? "")"); continue
            }
            out.append(Sample(bits: bits, keep: e.keep, accuracy: accuracy, divergence: e.divergence))
        }
        return out
    }

    /// A cache file read entry by entry: a malformed entry decodes to nils (and is skipped by
    /// `cached`) instead of failing the whole file. Numbers go through JSONDecoder, which reads
    /// back exactly the doubles JSONEncoder wrote.
    struct LenientFile: Decodable {
        struct Entry: Decodable {
            var bits: [Int]?, keep: [Double]?, accuracy: Double?, divergence: Double?
            /// A divergence is there but is not a number (an absent or null one is fine: not measured).
            var divergenceMalformed = false
            enum Keys: String, CodingKey { case bits, keep, accuracy, divergence }
            init(from decoder: Decoder) {
                let c = try? decoder.container(keyedBy: Keys.self)
                bits = try? c?.decode([Int].self, forKey: .bits)
                keep = try? c?.decode([Double].self, forKey: .keep)
                accuracy = try? c?.decode(Double.self, forKey: .accuracy)
                do { divergence = try c?.decodeIfPresent(Double.self, forKey: .divergence) } catch { divergenceMalformed = true }
            }
        }
        var key: String
        var samples: [Entry]
    }

    /// Adds the samples of other cache files (shards measured elsewhere, e.g. by the Ray
    /// launcher) to this cache: every file must carry this cache's key; entries already here are
    /// kept as they are, bad entries skipped with a warning. Returns how many were added.
    public func merge(_ files: [String], key: String, layers: Int, warn: (String) -> Void = { _ in }) throws -> Int {
        guard let path = cache else { throw MixedPrecisionError("samples: merging needs a cache file to merge into") }
        var known = try cached(key: key, layers: layers, warn: warn)
        var seen = Set(known.map(\.point))
        var added = 0
        for f in files {
            var shard = self
            shard.cache = f
            for s in try shard.cached(key: key, layers: layers, warn: warn) where !seen.contains(s.point) {
                known.append(s); seen.insert(s.point); added += 1
            }
        }
        try FileIO.writeAtomically(Array(try JSONEncoder().encode(File(key: key, samples: known))), to: path)
        return added
    }

    /// One policy's accuracy under this protocol, and its output divergence from `reference`
    /// when given (the same forward pass); `patches`: the model's mean input patches on the
    /// calibration images (bias correction's one measurement, shared by every policy of one model).
    func measurement(_ model: Model, bits: [Int], validation: Dataset, patches: [String: [Double]]?,
                     reference: OutputReference?) throws -> (accuracy: Double, divergence: Double?) {
        let logits: Tensor
        if let calibration, let patches {
            let policy = try Policy(model: model, weightBits: bits, activationBits: engine ? Array(repeating: 8, count: bits.count) : nil)
            let corrected = try model.biasCorrected(for: policy, patches: patches)
            let moved = try policy.moved(to: corrected)
            logits = engine ? try IntegerModel(model: corrected, policy: moved, calibration: calibration).predict(validation.images)
                            : try corrected.quantized(policy: moved).predict(validation.images)
        } else {
            logits = try model.quantized(policy: try Policy(model: model, weightBits: bits)).predict(validation.images)
        }
        let predicted = try logits.argmax(axis: 1).scalars
        let accuracy = Double(zip(predicted, validation.labels).filter { Int($0) == $1 }.count) / Double(validation.count)
        return (accuracy, try reference?.divergence(logits))
    }

    /// The model with `keep` applied to the pruned layers (itself when every ratio is 1), its
    /// batch norms recalibrated on the calibration images when there are some
    /// (`Model.recalibratingBatchNorm`: the readers of pruned layers lost inputs).
    public func pruned(_ model: Model, keep: [Double]?) throws -> Model {
        guard let keep, keep.contains(where: { $0 < 1 }) else { return model }
        guard keep.count == prune.count else { throw MixedPrecisionError("samples: expected \(prune.count) keep ratios (one per pruned layer), found \(keep.count)") }
        do {
            let m = try model.pruned(keep: Dictionary(zip(prune, keep), uniquingKeysWith: { a, _ in a }))
            guard let calibration else { return m }
            return try m.recalibratingBatchNorm(on: calibration)
        } catch let e as NetworkError {
            throw MixedPrecisionError("samples: \(e.message)")
        }
    }

    /// `count` random policies, each layer's width drawn uniformly from `bits` (seeded).
    public static func random(_ model: Model, count: Int, bits: [Int], seed: UInt64) throws -> [[Int]] {
        try random(model, count: count, bits: bits, seed: seed, keep: nil).map(\.bits)
    }

    /// As `random`, each policy also drawing one of `keep.ratios` for each of `keep.layers` pruned
    /// layers (after its widths, from the same generator).
    public static func random(_ model: Model, count: Int, bits: [Int], seed: UInt64, keep: (layers: Int, ratios: [Double])?) throws -> [Evolution.Point] {
        guard (0...100_000).contains(count), !bits.isEmpty, bits.allSatisfy({ (1...8).contains($0) }) else {
            throw MixedPrecisionError("samples: expected a count of 0…100000 and widths in 1…8, found \(count) and \(bits)")
        }
        if let keep, keep.ratios.isEmpty || !keep.ratios.allSatisfy({ $0.isFinite && $0 > 0 && $0 <= 1 }) {
            throw MixedPrecisionError("samples: expected keep ratios in (0, 1], found \(keep.ratios)")
        }
        var rng = RandomGenerator(seed: seed)
        return (0..<count).map { _ in
            let b = model.layers.map { _ in bits[Int(rng.next() % UInt64(bits.count))] }
            guard let keep else { return Evolution.Point(bits: b) }
            return Evolution.Point(bits: b, keep: (0..<keep.layers).map { _ in keep.ratios[Int(rng.next() % UInt64(keep.ratios.count))] })
        }
    }

    /// Each policy's validation accuracy: from the cache when there, else measured and added to
    /// it. With `reference` (the float model's outputs on `validation`), each sample also carries
    /// its output divergence, and a cached one measured without it is measured again (its entry
    /// replaced). `progress` sees (done, total). Ctrl-C stops between policies; the samples measured so
    /// far are returned (and kept in the cache), with `interrupted` set.
    public func measure(_ model: Model, validation: Dataset, policies: [[Int]], reference: OutputReference? = nil,
                        progress: (Int, Int) -> Void = { _, _ in },
                        warn: (String) -> Void = { _ in }) throws -> (samples: [Sample], measured: Int, interrupted: Bool) {
        try measure(model, validation: validation, points: policies.map { Evolution.Point(bits: $0) }, reference: reference, progress: progress, warn: warn)
    }

    /// As `measure(_:validation:policies:…)` for points of the joint space: each point's model is
    /// the original pruned to its keep ratios (of the layers in `prune`), then quantized and measured.
    public func measure(_ model: Model, validation: Dataset, points: [Evolution.Point], reference: OutputReference? = nil,
                        progress: (Int, Int) -> Void = { _, _ in },
                        warn: (String) -> Void = { _ in }) throws -> (samples: [Sample], measured: Int, interrupted: Bool) {
        guard validation.count > 0 else { throw MixedPrecisionError("samples: the validation split is empty") }
        if let reference, reference.images != validation.count {
            throw MixedPrecisionError("samples: the divergence reference holds \(reference.images) images, the validation split \(validation.count)")
        }
        for p in points where p.bits.count != model.layers.count || !p.bits.allSatisfy({ (1...8).contains($0) }) {
            throw MixedPrecisionError("samples: a policy needs \(model.layers.count) widths in 1…8 (one per layer), found \(p.bits)")
        }
        for p in points where p.keep.count != prune.count || !p.keep.allSatisfy({ $0.isFinite && $0 > 0 && $0 <= 1 }) {
            throw MixedPrecisionError("samples: a policy needs \(prune.count) keep ratios in (0, 1] (one per pruned layer), found \(p.keep)")
        }
        if engine && calibration == nil { throw MixedPrecisionError("samples: the integer engine needs calibration images for its 8-bit activations") }
        let key = Self.key(model: model, validation: validation, calibration: calibration, engine: engine, prune: prune)
        var known = try cached(key: key, layers: model.layers.count, warn: warn)
        // Each point's entry in `known` (the first, when a file repeats one).
        var byPoint = Dictionary(known.indices.map { (known[$0].point, $0) }, uniquingKeysWith: { a, _ in a })
        var out: [Sample] = [], measured = 0
        // Bias correction's mean patches of the unpruned model, shared by its policies (a pruned
        // point's own are measured for it alone: keep vectors rarely repeat).
        var shared: [String: [Double]]? = nil
        for (i, point) in points.enumerated() {
            let keep = prune.isEmpty ? nil : point.keep
            let entry = byPoint[point]
            if let j = entry, reference == nil || known[j].divergence != nil {
                out.append(Sample(bits: point.bits, keep: keep, accuracy: known[j].accuracy, divergence: reference == nil ? nil : known[j].divergence))
                progress(i + 1, points.count); continue
            }
            if Interrupt.isRequested { Interrupt.clear(); return (out, measured, true) }
            let m = try pruned(model, keep: keep)
            var patches: [String: [Double]]? = m === model ? shared : nil
            if let calibration, patches == nil {
                try Policy(model: m, weightBits: point.bits).checkCalibration(calibration, for: "bias correction")
                patches = try BiasCorrection.meanPatches(m, calibration: calibration)
                if m === model { shared = patches }
            }
            let r = try measurement(m, bits: point.bits, validation: validation, patches: patches, reference: reference)
            let s = Sample(bits: point.bits, keep: keep, accuracy: r.accuracy, divergence: r.divergence)
            out.append(s); measured += 1
            if let j = entry { known[j] = s } else { known.append(s); byPoint[point] = known.count - 1 }
            if let path = cache {
                try FileIO.writeAtomically(Array(try JSONEncoder().encode(File(key: key, samples: known))), to: path)
            }
            progress(i + 1, points.count)
        }
        return (out, measured, false)
    }
}
