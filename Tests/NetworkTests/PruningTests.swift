import Foundation
import Testing
import TestSupport
import Network
import Tensors

/// Channels whose weights, bias and batch-norm scale are zero contribute nothing downstream;
/// pruning exactly those (they have the least L1 norm) leaves the outputs unchanged — through a
/// batch norm into the next convolution (ResNet-20's block conv1) and through pooling and a
/// flatten into a linear layer (the CNN's conv3 → fc1). Keep 1 is the model itself.
@Test func pruningDeadChannelsKeepsTheOutputs() throws {
    for (zoo, path, name) in [("resnet20", "fmnist_resnet20.npz", "layers.3.conv1"), ("cnn", "fmnist_cnn.npz", "conv3")] {
        let model = try Zoo.make(zoo)
        try model.loadStateDict(path: "\(referenceDirectory)/\(path)")
        let layer = try #require(model.layers.first { $0.name == name })
        let cout = layer.weightShape[0], per = layer.parameterCount / cout
        let dead = Set((0..<cout).filter { $0 % 4 == 1 })
        func zero(_ tensorName: String, rows: Int) {
            guard let t = model.parameters[tensorName] else { return }
            var s = t.scalars
            let width = t.count / rows
            for c in dead { for j in 0..<width { s[c * width + j] = 0 } }
            model.parameters[tensorName] = Tensor(checkedShape: t.shape, scalars: s)
        }
        zero(layer.weight, rows: cout)
        if let b = layer.bias { zero(b, rows: cout) }
        let bnPrefix = name.replacingOccurrences(of: "conv", with: "bn")
        zero("\(bnPrefix).weight", rows: cout); zero("\(bnPrefix).bias", rows: cout)
        #expect(per > 0 && model.prunableLayers.contains(name))
        let x = try FashionMNIST.load(.test, limit: 16).images
        let before = try model.run(x).output
        let pruned = try model.pruned(keep: [name: Double(cout - dead.count) / Double(cout)])
        #expect(pruned.layers.first { $0.name == name }?.weightShape[0] == cout - dead.count)
        let after = try pruned.run(x).output
        let worst = zip(before.scalars, after.scalars).map { abs($0 - $1) }.max()!
        #expect(worst < 1e-4, "\(zoo): outputs moved by \(worst)")
        #expect(pruned.layers.reduce(0) { $0 + $1.macs } < model.layers.reduce(0) { $0 + $1.macs })
        let same = try model.pruned(keep: Dictionary(uniqueKeysWithValues: model.prunableLayers.map { ($0, 1.0) }))
        #expect(try same.run(x).output == before)
    }
}

/// Layers whose channels an addition or the output shares cannot be pruned alone; ratios outside
/// (0, 1] and unknown layers are refused with the prunable layers named.
@Test func pruningRefusesSharedChannels() throws {
    let resnet = try Zoo.make("resnet20")
    #expect(resnet.prunableLayers.count == 9 && resnet.prunableLayers.allSatisfy { $0.hasSuffix("conv1") })
    #expect { try resnet.pruned(keep: ["layers.0.conv2": 0.5]) } throws: { "\($0)".contains("Add") }
    #expect { try resnet.pruned(keep: ["nothing": 0.5]) } throws: { "\($0)".contains("layers.0.conv1") }
    #expect(throws: NetworkError.self) { try resnet.pruned(keep: ["layers.0.conv1": 0]) }
    #expect(throws: NetworkError.self) { try resnet.pruned(keep: ["layers.0.conv1": .nan]) }
    #expect(throws: NetworkError.self) { try resnet.pruned(keep: ["fc": 0.5]) }
}
