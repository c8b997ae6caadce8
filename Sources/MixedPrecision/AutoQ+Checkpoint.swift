import Foundation
import Network
import Tensors

/// An AutoQ search's state after a whole episode — both agents (networks, targets, optimizers,
/// replay, generators), the evaluated policies with their accuracies, the history and the best
/// so far — written atomically to one .npz (the description as a JSON entry), so that a search
/// stopped by Ctrl-C or a crash continues from its last whole episode and ends as an unbroken
/// search would.
struct AutoQCheckpoint: Codable {
    /// What the search was: a checkpoint of another search (model, validation split, budget,
    /// options) is refused rather than continued.
    struct Search: Codable, Equatable {
        var key: String
        var cost: String, budget: Double
        var options: String
    }
    struct Evaluated: Codable {
        var widths: [[Int]], activations: [Int], accuracy: Double
    }
    struct Best: Codable {
        var widths: [[Int]], activations: [Int?], accuracy: Double, cost: Double, reward: Double
    }
    var search: Search
    /// Episodes done (the next one to run).
    var episodes: Int
    var high: DDPG.Snapshot, low: DDPG.Snapshot
    var evaluated: [Evaluated]
    var history: [AutoQ.Episode]
    var best: Best?

    static let entry = "__mpq_autoq_checkpoint__"

    /// Writes the description beside `tensors` (both agents' `DDPG.checkpoint`).
    func write(to path: String, tensors: [(name: String, tensor: Tensor)]) throws {
        let json = try JSONEncoder().encode(self)
        var arrays = tensors
        arrays.append((Self.entry, Tensor(checkedShape: [json.count], scalars: json.map { Float($0) })))
        try NPZ.write(arrays, to: path)
    }

    /// Reads `path`, checks it belongs to `search` and restores both agents from it.
    static func restore(from path: String, search: Search, high: inout DDPG, low: inout DDPG) throws -> AutoQCheckpoint {
        let arrays = try NPZ.read(path)
        let byName = Dictionary(arrays.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
        guard let entry = byName[entry] else { throw MixedPrecisionError("checkpoint \(path): not an AutoQ checkpoint (no \(Self.entry) entry)") }
        let c: AutoQCheckpoint
        do { c = try JSONDecoder().decode(AutoQCheckpoint.self, from: Data(entry.scalars.map { UInt8(clamping: Int($0)) })) } catch {
            throw MixedPrecisionError("checkpoint \(path): its description is unreadable: \(error)")
        }
        guard c.search == search else {
            throw MixedPrecisionError("checkpoint \(path) was written by another search (model and split \(c.search.key), \(c.search.cost) ≤ \(c.search.budget), \(c.search.options)); this one is \(search.key), \(search.cost) ≤ \(search.budget), \(search.options) — delete it or give another path")
        }
        guard c.episodes >= 0, c.history.count == c.episodes, (c.best == nil) == (c.episodes == 0) else {
            throw MixedPrecisionError("checkpoint \(path): its history (\(c.history.count) episodes) does not match its count (\(c.episodes))")
        }
        try high.restore(c.high, tensors: byName, prefix: "high", source: path)
        try low.restore(c.low, tensors: byName, prefix: "low", source: path)
        return c
    }
}
