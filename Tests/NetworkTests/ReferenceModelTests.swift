import Foundation
import Testing
import TestSupport
import Network
import Tensors

/// A reference model's JSON figures.
struct Reference {
    let json: [String: Any]
    init(_ name: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(referenceDirectory)/fmnist_\(name).json"))
        json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }
    var accuracy: Double { json["fp32_test_acc"] as! Double }
    var logits: [[Double]] { json["logits_first16_test"] as! [[Double]] }
    var layers: [[String: Any]] { json["layers"] as! [[String: Any]] }
}

/// The test set, loaded once for every test that needs it.
let testSet: Dataset = try! FashionMNIST.load(.test)

func maxLogitError(_ model: Model, _ ref: Reference) throws -> Float {
    let logits = try model.run(try testSet.images.slice(0..<16)).output
    var worst: Float = 0
    for i in 0..<16 { for k in 0..<10 { worst = max(worst, abs(logits.scalars[i * 10 + k] - Float(ref.logits[i][k]))) } }
    return worst
}

@Test(arguments: ["mlp", "cnn", "resnet20"])
func stateDictReproducesReference(_ name: String) throws {
    let ref = try Reference(name)
    let model = try Zoo.make(name)
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_\(name).npz")
    #expect(try maxLogitError(model, ref) < 1e-4)
    let acc = try model.accuracy(on: testSet)
    #expect(abs(acc - ref.accuracy) <= 0.0002, "accuracy \(acc) vs \(ref.accuracy)")
    // Layers: names, shapes, parameter counts and MACs as the reference lists them.
    #expect(model.layers.map(\.name) == ref.layers.map { $0["name"] as! String })
    #expect(model.layers.map(\.macs) == ref.layers.map { $0["macs"] as! Int })
    #expect(model.layers.map(\.weightShape) == ref.layers.map { $0["weight_shape"] as! [Int] })
}

@Test(arguments: ["cnn", "resnet20"])
func foldingBatchNormKeepsTheFunction(_ name: String) throws {
    let model = try Zoo.make(name)
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_\(name).npz")
    let folded = try model.foldingBatchNorm()
    #expect(!folded.nodes.contains { if case .batchNorm = $0.op { true } else { false } })
    let x = try testSet.images.slice(0..<64)
    let a = try model.run(x).output, b = try folded.run(x).output
    let worst = zip(a.scalars, b.scalars).map { abs($0 - $1) }.max()!
    #expect(worst < 1e-4)
    #expect(folded.layers.map(\.name) == model.layers.map(\.name))
}

@Test func stateDictMismatchesAreNamed() throws {
    let model = try Zoo.make("cnn")
    do {
        try model.loadStateDict(path: "\(referenceDirectory)/fmnist_mlp.npz")
        Issue.record("loaded an MLP state dict into the CNN")
    } catch {
        let text = "\(error)"
        #expect(text.contains("missing") && text.contains("conv1.weight"))
        #expect(text.contains("wrong shapes") && text.contains("fc1.weight"))
        #expect(text.contains("unexpected fc3.weight"))
    }
}

@Test func zooSuggestsNames() {
    do { _ = try Zoo.make("resnet2"); Issue.record("no error") } catch {
        #expect("\(error)".contains("did you mean 'resnet20'"))
    }
}

@Test func saveAndLoadRoundTrip() throws {
    let model = try Zoo.make("resnet20", seed: 3)
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-model-\(getpid()).npz").path
    try model.save(path: path)
    let back = try Model.load(path: path)
    let x = try testSet.images.slice(0..<8)
    #expect(try model.run(x).output == back.run(x).output)
    #expect(back.layers.map(\.name) == model.layers.map(\.name))
    // The same file loads into a fresh model of the same architecture (its graph entry ignored).
    let fresh = try Zoo.make("resnet20", seed: 4)
    try fresh.loadStateDict(path: path)
    #expect(try fresh.run(x).output == model.run(x).output)
    // but not into another architecture, whose error names what does not fit.
    do { try Zoo.make("cnn").loadStateDict(path: path); Issue.record("no error") } catch {
        #expect("\(error)".contains("does not fit model 'cnn'") && !"\(error)".contains("__mpq_graph__"))
    }
}

@Test func wrongInputShapeIsAnError() throws {
    let model = try Zoo.make("cnn")
    #expect(throws: NetworkError.self) { try model.run(try Tensor.zeros([2, 3, 28, 28])) }
}
