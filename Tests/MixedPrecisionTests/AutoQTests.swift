import Foundation
import Testing
import TestSupport
import MixedPrecision
import Network
import Quantization

/// AutoQ on the CNN: every episode's policy meets the size budget, the ends stay at 8 bits, the
/// widths are per kernel, the returned policy is the best rewarded and measured as reported, and
/// the same seed gives the same search; a budget below the all-narrowest cost is an error naming
/// that cost; the accuracy-guaranteed mode trades cost in its reward.
@Test func autoQKeepsTheBudgetAndIsDeterministic() throws {
    let model = try Zoo.make("cnn")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_cnn.npz")
    let validation = try FashionMNIST.load(.train, limit: 300)
    let budget = try CostModel.size.uniformCost(model, bits: 4)
    var o = AutoQ.Options()
    o.episodes = 6; o.agent.warmup = 3; o.updates = 4; o.agent.hidden = (32, 32); o.seed = 2
    var lines: [String] = []
    let r = try AutoQ(options: o).run(model, validation: validation, cost: .size, budget: budget) { lines.append($0.line) }
    #expect(lines.count == 6 && lines[0].hasPrefix("episode 1/6 · reward"))
    let policyCost = try CostModel.size.cost(r.policy)
    #expect(r.history.allSatisfy { $0.cost <= budget } && policyCost <= budget)
    #expect(r.policy.entries.first?.weight?.uniformBits == 8 && r.policy.entries.last?.weight?.uniformBits == 8)
    #expect(r.reward == r.history.map(\.reward).max())
    let measured = try model.quantized(policy: r.policy).accuracy(on: validation)
    #expect(r.accuracy == measured)
    let again = try AutoQ(options: o).run(model, validation: validation, cost: .size, budget: budget)
    #expect(again.history.map(\.reward) == r.history.map(\.reward))
    let cheapest = try CostModel.size.cost(layer: model, first: 8, rest: 2)
    #expect {
        try AutoQ(options: o).run(model, validation: validation, cost: .size, budget: cheapest * 0.9)
    } throws: { ($0 as? MixedPrecisionError)?.message.contains(String(format: "%.6g", cheapest)) == true }
    var g = o
    g.mode = .accuracyGuaranteed(costWeight: 0.5); g.episodes = 2
    let float = try model.accuracy(on: validation), reference = try CostModel.size.uniformCost(model, bits: 8)
    let a = try AutoQ(options: g).run(model, validation: validation, cost: .size, budget: budget)
    #expect(a.history.allSatisfy { abs($0.reward - (($0.accuracy - float) - 0.5 * $0.cost / reference)) < 1e-9 })
}

private extension CostModel {
    /// The model's cost with the first and last layer at `first` bits and the rest at `rest`.
    func cost(layer model: Model, first: Int, rest: Int) throws -> Double {
        try model.layers.indices.reduce(0.0) { $0 + (try cost(model.layers[$1], bits: $1 == 0 || $1 == model.layers.count - 1 ? first : rest)) }
    }
}

/// A search that crashed after three episodes continues from its checkpoint and ends as the
/// unbroken search did (both agents' networks, optimizers, replay and generators, the evaluated
/// policies and the best restored); a checkpoint of another search, or a file that is not one,
/// is refused with a clear error.
@Test func autoQContinuesFromItsCheckpoint() throws {
    let model = try Zoo.make("cnn")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_cnn.npz")
    let validation = try FashionMNIST.load(.train, limit: 200)
    let budget = try CostModel.size.uniformCost(model, bits: 4)
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-autoq-\(getpid())").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var o = AutoQ.Options()
    o.episodes = 6; o.agent.warmup = 2; o.updates = 3; o.agent.hidden = (16, 16); o.seed = 5
    o.checkpoint = "\(dir)/search.npz"
    let third = "\(dir)/after-three.npz"
    let whole = try AutoQ(options: o).run(model, validation: validation, cost: .size, budget: budget) { e in
        if e.index == 2 { try? FileManager.default.copyItem(atPath: "\(dir)/search.npz", toPath: third) }
    }
    // The crash: only the file as it was after the third episode survives.
    try FileManager.default.removeItem(atPath: "\(dir)/search.npz")
    try FileManager.default.copyItem(atPath: third, toPath: "\(dir)/search.npz")
    var lines: [String] = []
    let resumed = try AutoQ(options: o).run(model, validation: validation, cost: .size, budget: budget) { lines.append($0.line) }
    #expect(lines.count == 3 && lines[0].hasPrefix("episode 4/6"))
    #expect(resumed.history.map(\.reward) == whole.history.map(\.reward) && resumed.history.map(\.line) == whole.history.map(\.line))
    #expect(resumed.policy == whole.policy && resumed.accuracy == whole.accuracy && resumed.evaluations == whole.evaluations)
    var other = o
    other.seed = 6
    #expect {
        try AutoQ(options: other).run(model, validation: validation, cost: .size, budget: budget)
    } throws: { ($0 as? MixedPrecisionError)?.message.contains("another search") == true }
    try Data("not a checkpoint".utf8).write(to: URL(fileURLWithPath: "\(dir)/search.npz"))
    #expect(throws: (any Error).self) { try AutoQ(options: o).run(model, validation: validation, cost: .size, budget: budget) }
}
