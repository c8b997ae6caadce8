import Foundation
import MixedPrecision
import Network
import Tensors

/// Policy evaluations per minute, the pace of APQ's sample measurement: `eval.resnet20.policies`,
/// ResNet-20 (reference weights) quantized weight-only per channel under random policies over
/// {2, 3, 4, 5, 6, 8} and evaluated on 5,000 training images (1,000 with --quick), nothing cached.
/// No anchor runs beside it; the bar is 60 per minute.
struct EvalBenchmarks {
    var quick: Bool
    var referenceDirectory: String

    func run(wanted: (String) -> Bool, emit: (BenchResult) -> Void) {
        guard wanted("eval.resnet20.policies") else { return }
        do {
            let model = try Zoo.make("resnet20")
            try model.loadStateDict(path: "\(referenceDirectory)/fmnist_resnet20.npz")
            let validation = try FashionMNIST.load(.train, limit: quick ? 1000 : 5000)
            let policies = try PolicySamples.random(model, count: quick ? 2 : 6, bits: [2, 3, 4, 5, 6, 8], seed: 7)
            _ = try PolicySamples().measure(model, validation: validation, policies: [policies[0]])  // warm-up
            let start = Date()
            _ = try PolicySamples().measure(model, validation: validation, policies: policies)
            let perMinute = Double(policies.count) * 60 / Date().timeIntervalSince(start)
            emit(BenchResult("eval.resnet20.policies", ours: perMinute, anchor: "none", anchorValue: 0, unit: "policies/min",
                             note: "weight-only per-channel, \(validation.count) images each"))
        } catch {
            FileHandle.standardError.write(Data("eval benchmarks: \(error)\n".utf8))
        }
    }
}
