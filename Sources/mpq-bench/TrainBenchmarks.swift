import Foundation
import MixedPrecision
import Network
import Tensors

/// Training throughput of the differentiable searches beside plain training, on ResNet-20 (the
/// reference weights) over the first 2,560 Fashion-MNIST training images (1,280 with --quick),
/// batch 128, one epoch each, images/s: `train.resnet20` (plain SGD, no anchor here: PyTorch is not
/// installed), `train.resnet20.search.edmips` and `train.resnet20.search.hmq` (one search epoch,
/// validation on 64 other images inside the epoch's time), each with plain training as its anchor —
/// the ratio is the search's speed as a fraction of plain training's (the bar: ≥ 1/3).
struct TrainBenchmarks {
    var quick: Bool
    var referenceDirectory: String

    func run(wanted: (String) -> Bool, emit: (BenchResult) -> Void) {
        let names = ["train.resnet20", "train.resnet20.search.edmips", "train.resnet20.search.hmq"]
        guard names.contains(where: wanted) else { return }
        do {
            let model = try Zoo.make("resnet20")
            try model.loadStateDict(path: "\(referenceDirectory)/fmnist_resnet20.npz")
            let all = try FashionMNIST.load(.train, limit: (quick ? 1280 : 2560) + 64)
            let (train, validation) = try all.split(Double(all.count - 64) / Double(all.count), seed: 1)
            var options = TrainingOptions()
            options.epochs = 1; options.schedule = .oneCycle(peak: 0.01)
            // A short warm-up first (thread pool, scratch buffers), as every figure here is a steady pace.
            try model.copy().train(on: try train.split(0.1, seed: 2).0, options: options)
            let plain = Double(train.count) / (try model.copy().train(on: train, options: options).seconds)
            emit(BenchResult("train.resnet20", ours: plain, anchor: "none", anchorValue: 0, unit: "images/s",
                             note: "plain SGD epoch, batch 128, \(train.count) images"))
            if wanted("train.resnet20.search.edmips") {
                var e = EdMIPS(); e.searchEpochs = 1; e.fineTuneEpochs = 0
                let r = try e.run(model.copy(), train: train, validation: validation)
                emit(BenchResult("train.resnet20.search.edmips", ours: Double(train.count) / r.history[0].seconds, anchor: "mpq plain",
                                 anchorValue: plain, unit: "images/s", note: "one EdMIPS search epoch (W and A over 1…4 bits)"))
            }
            if wanted("train.resnet20.search.hmq") {
                var h = HMQ(); h.searchEpochs = 1; h.fineTuneEpochs = 0
                let r = try h.run(model.copy(), train: train, validation: validation)
                emit(BenchResult("train.resnet20.search.hmq", ours: Double(train.count) / r.history[0].seconds, anchor: "mpq plain",
                                 anchorValue: plain, unit: "images/s", note: "one HMQ search epoch (weights over 2…8 bits × 8 thresholds)"))
            }
        } catch {
            FileHandle.standardError.write(Data("train benchmarks: \(error)\n".utf8))
        }
    }
}
