import Foundation
import Kernels
import MixedPrecision
import Network
import Tensors

/// Training throughput and second order beside PyTorch CPU, and the differentiable searches
/// beside plain training. Over the first 2,560 Fashion-MNIST training images (1,280 with
/// --quick), batch 128, one epoch each after a warm-up, images/s: `train.cnn` and
/// `train.resnet20` (the reference weights; SGD with Nesterov momentum, flips — mpq's default
/// training) beside PyTorch on the same images and recipe (scripts/torch-train.py, 2 threads;
/// anchor 0 when torch is missing); `train.resnet20.search.edmips` and `.hmq` (one search
/// epoch, validation on 64 other images inside the epoch's time) with plain training as their
/// anchor — the ratio is the search's speed as a fraction of plain training's (bar ≥ 1/3).
/// `hvp.resnet20`: Hutchinson samples per second over all layers of ResNet-20 on 256 images —
/// one Hessian-vector product with a Rademacher v over every weight
/// (`HessianAnalysis.blockQuadraticForms`) — beside PyTorch's double backward on the same.
struct TrainBenchmarks {
    var quick: Bool
    var referenceDirectory: String

    /// PyTorch's figure from scripts/torch-train.py (nil when it cannot run).
    func torch(_ arguments: [String], key: String) -> Double? {
        guard let out = pythonLines(["scripts/torch-train.py", "--threads", "2"] + arguments), out.ok else { return nil }
        return out.objects.last?[key] as? Double
    }

    func run(wanted: (String) -> Bool, emit: (BenchResult) -> Void) {
        let names = ["train.cnn", "train.resnet20", "train.resnet20.search.edmips", "train.resnet20.search.hmq", "hvp.resnet20",
                     "train.resnet20.conv.fwd", "train.resnet20.conv.bwd", "train.resnet20.conv.wgrad"]
        guard names.contains(where: wanted) else { return }
        do {
            let images = quick ? 1280 : 2560
            let all = try FashionMNIST.load(.train, limit: images + 64)
            let (train, validation) = try all.split(Double(all.count - 64) / Double(all.count), seed: 1)
            var options = TrainingOptions()
            options.epochs = 1; options.schedule = .oneCycle(peak: 0.01)
            var plainResNet = 0.0
            for name in ["cnn", "resnet20"] where wanted("train.\(name)") || (name == "resnet20" && names.dropFirst(2).dropLast().contains(where: wanted)) {
                let model = try Zoo.make(name)
                try model.loadStateDict(path: "\(referenceDirectory)/fmnist_\(name).npz")
                // A short warm-up first (thread pool, scratch buffers), as every figure here is a steady pace.
                try model.copy().train(on: try train.split(0.1, seed: 2).0, options: options)
                let plain = Double(train.count) / (try model.copy().train(on: train, options: options).seconds)
                if name == "resnet20" { plainResNet = plain }
                guard wanted("train.\(name)") else { continue }
                let anchor = torch(["--model", name, "--images", "\(train.count)"], key: "images_per_second")
                emit(BenchResult("train.\(name)", ours: plain, anchor: "pytorch", anchorValue: anchor ?? 0, unit: "images/s",
                                 note: "one epoch, SGD Nesterov, flips, batch 128, \(train.count) images, 2 threads" + (anchor == nil ? "; pytorch not available: pip install torch" : "")))
            }
            if wanted("train.resnet20.search.edmips") || wanted("train.resnet20.search.hmq") {
                let model = try Zoo.make("resnet20")
                try model.loadStateDict(path: "\(referenceDirectory)/fmnist_resnet20.npz")
                if wanted("train.resnet20.search.edmips") {
                    var e = EdMIPS(); e.searchEpochs = 1; e.fineTuneEpochs = 0
                    let r = try e.run(model.copy(), train: train, validation: validation)
                    emit(BenchResult("train.resnet20.search.edmips", ours: Double(train.count) / r.history[0].seconds, anchor: "mpq plain",
                                     anchorValue: plainResNet, unit: "images/s", note: "one EdMIPS search epoch (W and A over 1…4 bits)"))
                }
                if wanted("train.resnet20.search.hmq") {
                    var h = HMQ(); h.searchEpochs = 1; h.fineTuneEpochs = 0
                    let r = try h.run(model.copy(), train: train, validation: validation)
                    emit(BenchResult("train.resnet20.search.hmq", ours: Double(train.count) / r.history[0].seconds, anchor: "mpq plain",
                                     anchorValue: plainResNet, unit: "images/s", note: "one HMQ search epoch (weights over 2…8 bits × 8 thresholds)"))
                }
            }
            if wanted("hvp.resnet20") { try hvp(emit: emit) }
            if ["fwd", "bwd", "wgrad"].contains(where: { wanted("train.resnet20.conv.\($0)") }) { try convolutions(emit: emit) }
        } catch {
            FileHandle.standardError.write(Data("train benchmarks: \(error)\n".utf8))
        }
    }

    /// ResNet-20's convolutions as training runs them (batch 128, training mode, 2 threads), each
    /// alone on its own input from the reference network: GFLOP/s of the forward pass (2·MACs) and
    /// of the backward pass (input and weight gradients, 4·MACs) and of the weight gradient alone
    /// (2·MACs), summed over every convolution (best of a few runs each), beside the machine's
    /// measured FMA peak on 2 threads.
    func convolutions(emit: (BenchResult) -> Void) throws {
        let model = try Zoo.make("resnet20")
        try model.loadStateDict(path: "\(referenceDirectory)/fmnist_resnet20.npz")
        let batch = try FashionMNIST.load(.train, limit: 128).images
        let repeats = quick ? 2 : 4
        var forward = 0.0, backward = 0.0, weights = 0.0, flops = 0.0
        for layer in model.layers {
            guard case .conv(let a) = model.nodes[layer.node].op, let x = try model.inputs(of: layer.node, on: batch)[0] else { continue }
            let s = layer.weightShape
            var b = GraphBuilder(seed: 1)
            let y = try b.conv(b.input, "conv", in: s[1] * a.groups, out: s[0], kernel: s[2], stride: a.strides[0], padding: a.pads[0], groups: a.groups)
            let one = try b.model(name: layer.name, output: y, inputShape: Array(x.shape.dropFirst()))
            var bestForward = Double.infinity, bestBackward = Double.infinity, bestWeights = Double.infinity
            for _ in 0..<repeats {
                var start = Date()
                let (out, trace) = try one.run(x, training: true, keepTrace: true)
                bestForward = min(bestForward, Date().timeIntervalSince(start))
                start = Date()
                _ = try one.gradients(trace!, outputGradient: out, inputGradient: true)
                bestBackward = min(bestBackward, Date().timeIntervalSince(start))
                start = Date()
                _ = try one.gradients(trace!, outputGradient: out, inputGradient: false)
                bestWeights = min(bestWeights, Date().timeIntervalSince(start))
            }
            forward += bestForward; backward += bestBackward; weights += bestWeights
            flops += 2 * Double(layer.macs) * Double(x.shape[0])
        }
        let peak = FMAPeak.measure(threads: 2)
        let unit = FMAPeak.wide ? "512-bit" : "256-bit"
        emit(BenchResult("train.resnet20.conv.fwd", ours: flops / forward / 1e9, anchor: "fma peak", anchorValue: peak, unit: "GFLOP/s",
                         note: "ResNet-20's convolutions one by one at batch 128, training mode, 2 threads; peak: independent \(unit) FMA chains on 2 threads"))
        emit(BenchResult("train.resnet20.conv.bwd", ours: 2 * flops / backward / 1e9, anchor: "fma peak", anchorValue: peak, unit: "GFLOP/s",
                         note: "input and weight gradients of the same convolutions (4·MACs)"))
        emit(BenchResult("train.resnet20.conv.wgrad", ours: flops / weights / 1e9, anchor: "fma peak", anchorValue: peak, unit: "GFLOP/s",
                         note: "the weight gradient alone (2·MACs): per image, the direct 3×3 kernel where it applies, else im2col then dY·colᵀ"))
    }

    /// Hutchinson samples per second over all of ResNet-20's layers on 256 images.
    func hvp(emit: (BenchResult) -> Void) throws {
        let model = try Zoo.make("resnet20")
        try model.loadStateDict(path: "\(referenceDirectory)/fmnist_resnet20.npz")
        let data = try FashionMNIST.load(.train, limit: 256)
        let samples = quick ? 2 : 4
        var rng = RandomGenerator(seed: 5)
        func draw() -> [String: Tensor] {
            Dictionary(uniqueKeysWithValues: model.layers.map { l in
                (l.name, Tensor(checkedShape: l.weightShape, scalars: (0..<l.parameterCount).map { _ in rng.rademacher() }))
            })
        }
        // As PyTorch's figure: the forward trace (its graph) built once, spread over the samples.
        let start = Date()
        let analysis = try HessianAnalysis(model: model, data: data)
        for _ in 0..<samples { _ = try analysis.blockQuadraticForms(draw()) }
        let ours = Double(samples) / Date().timeIntervalSince(start)
        let theirs = torch(["--hvp", "--images", "256", "--samples", "\(samples)"], key: "seconds_per_sample")
        emit(BenchResult("hvp.resnet20", ours: ours, anchor: "pytorch", anchorValue: theirs.map { 1 / $0 } ?? 0, unit: "samples/s",
                         note: "one Hessian-vector product over every weight per sample, 256 images, 2 threads" + (theirs == nil ? "; pytorch not available: pip install torch" : "")))
    }
}
