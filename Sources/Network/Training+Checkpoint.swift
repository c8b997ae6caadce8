import Foundation
import Tensors

/// A training run's state at the end of an epoch — parameters, buffers, every optimizer's
/// moments and step count, the shuffled order, the random generator, the step — written
/// atomically to one .npz (the run's description and the generator as a JSON entry), so that a
/// run stopped by Ctrl-C or a crash continues from its last whole epoch and ends exactly as an
/// unbroken run would.
struct TrainingCheckpoint: Codable {
    /// What the run was: a checkpoint of another run is refused rather than continued.
    struct Run: Codable, Equatable {
        var examples: Int, batchSize: Int, epochs: Int, seed: UInt64
        var parameters: [String]
        var groups: Int
    }
    var run: Run
    var epoch: Int
    var step: Int
    var order: [Int]
    var random: RandomGenerator.Snapshot
    var loss: Double, accuracy: Double

    static let entry = "__mpq_checkpoint__"

    func write(to path: String, model: Model, optimizers: [OptimizerState]) throws {
        let json = try JSONEncoder().encode(self)
        var arrays = model.stateDict.map { (name: "model/\($0.0)", tensor: $0.1) }
        for (i, o) in optimizers.enumerated() { arrays += o.tensors(prefix: "optimizer\(i)") }
        arrays.append((Self.entry, Tensor(checkedShape: [json.count], scalars: json.map { Float($0) })))
        try NPZ.write(arrays, to: path)
    }

    /// Reads `path` and restores `model` and the optimizers (main first, then the groups') from
    /// it, after checking it belongs to `run`.
    static func restore(from path: String, run: Run, model: Model, optimizers: [Optimizer]) throws -> (TrainingCheckpoint, [OptimizerState]) {
        let arrays = try NPZ.read(path)
        let byName = Dictionary(arrays.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
        guard let entry = byName[entry] else { throw NetworkError("checkpoint \(path): not a training checkpoint (no \(Self.entry) entry)") }
        let c: TrainingCheckpoint
        do { c = try JSONDecoder().decode(TrainingCheckpoint.self, from: Data(entry.scalars.map { UInt8(clamping: Int($0)) })) } catch {
            throw NetworkError("checkpoint \(path): its description is unreadable: \(error)")
        }
        guard c.run == run else {
            throw NetworkError("checkpoint \(path) was written by another run (\(c.run.examples) examples, batch \(c.run.batchSize), \(c.run.epochs) epochs, seed \(c.run.seed), \(c.run.parameters.count) parameters); this one has \(run.examples), \(run.batchSize), \(run.epochs), \(run.seed), \(run.parameters.count) — delete it or give another path")
        }
        guard c.order.count == run.examples, Set(c.order).count == run.examples, c.order.allSatisfy({ (0..<run.examples).contains($0) }),
              (0...run.epochs).contains(c.epoch) else {
            throw NetworkError("checkpoint \(path): its shuffled order or epoch (\(c.epoch)) does not fit \(run.examples) examples and \(run.epochs) epochs")
        }
        let state = arrays.filter { $0.name.hasPrefix("model/") }.map { (name: String($0.name.dropFirst(6)), tensor: $0.tensor) }
        try model.loadStateDict(state, source: path)
        let restored = try optimizers.enumerated().map { i, o in
            try OptimizerState(o, tensors: byName, prefix: "optimizer\(i)", model: model)
        }
        return (c, restored)
    }
}
