import Foundation
import MixedPrecision
import Network
import Tensors

/// Policy evaluations per minute, the pace of APQ's sample measurement on ResNet-20 (reference
/// weights) under random per-channel weight policies over {2, 3, 4, 5, 6, 8}, each evaluated on
/// 5,000 training images (1,000 with --quick), nothing cached: `eval.resnet20.policies` as the
/// policy deploys (bias-corrected on 256 other images, the integer engine with 8-bit activations
/// calibrated on them), `eval.resnet20.policies.float` the float simulation of the weights alone.
/// No anchor runs beside them; the bar is 60 per minute.
struct EvalBenchmarks {
    var quick: Bool
    var referenceDirectory: String

    func run(wanted: (String) -> Bool, emit: (BenchResult) -> Void) {
        guard wanted("eval.resnet20.policies") else { return }
        do {
            let model = try Zoo.make("resnet20")
            try model.loadStateDict(path: "\(referenceDirectory)/fmnist_resnet20.npz")
            let validation = try FashionMNIST.load(.train, limit: quick ? 1000 : 5000)
            let calibration = try FashionMNIST.load(.test, limit: 256).images
            let policies = try PolicySamples.random(model, count: quick ? 2 : 6, bits: [2, 3, 4, 5, 6, 8], seed: 7)
            for (name, sampler, note) in [("eval.resnet20.policies", PolicySamples(calibration: calibration, engine: true), "integer engine, W·A8, bias-corrected"),
                                          ("eval.resnet20.policies.float", PolicySamples(), "float simulation, weights only")] where wanted(name) {
                _ = try sampler.measure(model, validation: validation, policies: [policies[0]])  // warm-up
                let start = Date()
                _ = try sampler.measure(model, validation: validation, policies: policies)
                let perMinute = Double(policies.count) * 60 / Date().timeIntervalSince(start)
                emit(BenchResult(name, ours: perMinute, anchor: "none", anchorValue: 0, unit: "policies/min",
                                 note: "\(note), \(validation.count) images each"))
            }
        } catch {
            FileHandle.standardError.write(Data("eval benchmarks: \(error)\n".utf8))
        }
    }
}
