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

/// The sensitivity-guided lowering on the CNN at a 3-bit average: from every kernel at 8 bits it
/// meets the budget without overshooting by more than one kernel step, its ΣΩ is within 10% of the
/// exact solver's optimum on the same table (and below the widest-first rule's), no kernel rises
/// above the width it started at, and a table of another model is refused.
@Test func autoQLowersTheLeastSensitiveKernelsFirst() throws {
    let model = try Zoo.make("cnn")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_cnn.npz")
    let data = try FashionMNIST.load(.train, limit: 128)
    let table = try KernelWiseTable.measure(model: model, data: data, bits: Array(2...8))
    let n = model.layers.count, pinned: Set<Int> = [0, n - 1]
    let budget = try CostModel.size.cost(layer: model, first: 8, rest: 3)
    let lowering = try AutoQ.SensitivityLowering(model: model, table: table, cost: .size, widths: 2...8, pinned: pinned)
    let start = model.layers.map { Array(repeating: 8, count: $0.weightShape[0]) }
    let preference = model.layers.map { l in (0..<l.weightShape[0]).map { _ in [Float(0.5)] } }
    let acts = [Int?](repeating: nil, count: n)
    var w = start
    var costs = try model.layers.indices.map { try CostModel.size.cost(AutoQ.entry(model.layers[$0], widths: w[$0], activation: nil)) }
    try lowering.lower(&w, preference: preference, activations: acts, costs: &costs, budget: budget)
    let total = costs.reduce(0, +)
    let policy = try AutoQ.policy(model, widths: w, activations: acts)
    #expect(abs(try CostModel.size.cost(policy) - total) < 1e-6 && total <= budget)
    let widestStep = model.layers.map { Double($0.parameterCount / $0.weightShape[0]) / 8 }.max()!
    #expect(budget - total <= widestStep)
    #expect(w[0].allSatisfy { $0 == 8 } && w[n - 1].allSatisfy { $0 == 8 })
    let exact = try table.search(model: model, size: budget, pinned: [model.layers[0].name: 8, model.layers[n - 1].name: 8])
    let optimum = lowering.sensitivity(model.layers.indices.map { exact.policy.entries[$0].weight!.widths(channels: model.layers[$0].weightShape[0]) })
    let greedy = lowering.sensitivity(w)
    #expect(greedy >= optimum * (1 - 1e-9) && greedy <= optimum * 1.1, "greedy ΣΩ \(greedy), optimum \(optimum)")
    // Capped start: kernels the agent put at 4 bits never end wider.
    var capped = start
    for i in 1..<(n - 1) { for k in capped[i].indices where k % 2 == 0 { capped[i][k] = 4 } }
    var c2 = try model.layers.indices.map { try CostModel.size.cost(AutoQ.entry(model.layers[$0], widths: capped[$0], activation: nil)) }
    var w2 = capped
    try lowering.lower(&w2, preference: preference, activations: acts, costs: &c2, budget: budget)
    #expect(zip(w2, capped).allSatisfy { zip($0, $1).allSatisfy { $0 <= $1 } } && c2.reduce(0, +) <= budget)
    let other = try Zoo.make("mlp")
    #expect { try AutoQ.SensitivityLowering(model: other, table: table, cost: .size, widths: 2...8, pinned: []) }
        throws: { ($0 as? MixedPrecisionError)?.message.contains("sensitivity table must be of this model") == true }
}

/// A latency budget (a measured table's cost model; here a table with made-up entries): a
/// kernel-wise layer costs its entry at its widest kernel's width (the engine stores and runs it
/// there), and AutoQ meets the budget in every episode, with the widest-first and the
/// sensitivity-guided lowering alike.
@Test func autoQMeetsALatencyBudget() throws {
    let model = try Zoo.make("cnn")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_cnn.npz")
    let validation = try FashionMNIST.load(.train, limit: 200)
    var values: [String: [Int: Double]] = [:]
    for l in model.layers { values[l.name] = Dictionary(uniqueKeysWithValues: (2...8).map { ($0, Double(l.macs) * Double(4 + $0) * 1e-9) }) }
    let table = CostModel.table(name: "made-up", values: values)
    let layer = model.layers[1]
    let mixed = Policy.Entry(layer: layer, weight: Policy.Weight.reference(bits: 6).perChannel((0..<layer.weightShape[0]).map { $0 == 0 ? 6 : 3 }), activation: nil)
    #expect(try table.cost(mixed) == values[layer.name]![6])
    let budget = try model.layers.indices.reduce(0.0) { $0 + values[model.layers[$1].name]![$1 == 0 || $1 == model.layers.count - 1 ? 8 : 4]! }
    var o = AutoQ.Options()
    o.episodes = 4; o.agent.warmup = 2; o.updates = 2; o.agent.hidden = (16, 16); o.seed = 3
    let sensitivity = try KernelWiseTable.measure(model: model, data: try FashionMNIST.load(.train, limit: 64), bits: Array(2...8))
    for s in [nil, sensitivity] {
        let r = try AutoQ(options: o).run(model, validation: validation, cost: table, budget: budget, sensitivity: s)
        let final = try table.cost(r.policy)
        #expect(r.history.allSatisfy { $0.cost <= budget } && final <= budget, "\(s == nil ? "widest" : "sensitivity"): \(r.history.map(\.cost)), budget \(budget)")
    }
}

/// Options and budgets out of range end in errors naming what was expected, before any episode.
@Test func autoQRefusesBadOptions() throws {
    let model = try Zoo.make("cnn")
    let validation = try FashionMNIST.load(.train, limit: 50)
    func message(_ o: AutoQ.Options, budget: Double = 1e6) -> String {
        do { _ = try AutoQ(options: o).run(model, validation: validation, cost: .size, budget: budget); return "" } catch {
            return (error as? MixedPrecisionError)?.message ?? "\(error)"
        }
    }
    var o = AutoQ.Options()
    o.episodes = 0
    #expect(message(o).contains("expected episodes 1…100000"))
    o.episodes = 2
    #expect(message(o, budget: .nan).contains("positive finite budget"))
    o.mode = .accuracyGuaranteed(costWeight: .infinity)
    #expect(message(o).contains("finite cost weight"))
    o.mode = .resourceConstrained; o.activationBits = 4...8
    #expect(message(o).contains("needs calibration images"))
}
