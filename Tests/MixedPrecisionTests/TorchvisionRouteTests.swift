import Foundation
import Testing
import TestSupport
import MixedPrecision
import Network
import Quantization
import Tensors

/// HAWQ-V3's route on every torchvision export (Tests/Fixtures/torchvision, from
/// scripts/gen-test-models.py): Hessian traces (method auto: exact on piecewise-linear
/// networks, Hutchinson elsewhere — the transformer's softmax and the ConvNeXt's layer norms
/// are differentiated twice), the sensitivity table, the exact search at 4 average bits, and
/// the quantized model's run. Two images, the model's own predictions as labels; the weights
/// are random, so this checks that the route runs and keeps its promises (budget met, every
/// layer given a width, finite outputs), not accuracy. Prints each route's time.
let routeModels = ["resnet18", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "squeezenet1_1", "shufflenet_v2",
                   "googlenet", "densenet121", "regnet", "convnext_tiny", "vit"]
    .flatMap { [($0, "torchscript"), ($0, "dynamo")] }.map { "\($0.0).\($0.1)" }

@Test(arguments: routeModels)
func hawqRouteRunsOnTorchvisionModels(_ name: String) throws {
    let folder = repositoryRoot.appendingPathComponent("Tests/Fixtures/torchvision").path
    let model = try ONNXImporter.load(path: "\(folder)/\(name).onnx")
    let x = try #require(try NPZ.read("\(folder)/\(name).npz").first { $0.name == "x" }).tensor
    let labels = try model.run(x).output.argmax(axis: 1).scalars.map { Int($0) }
    let data = try Dataset(name: name, images: x, labels: labels, classes: 10)
    let start = Date()
    let traces = try HessianAnalysis.traces(model: model, data: data, method: .auto, samples: 8).mapValues(\.mean)
    let table = try SensitivityTable.hawq(model: model, traces: traces, bits: [2, 4, 8])
    let result = try Search(budgets: [.averageBits(4)]).run(table, model: model)
    let q = try model.quantized(policy: result.policy)
    let y = try q.run(x).output
    let seconds = Date().timeIntervalSince(start)
    print("HAWQ-V3 route on \(name): \(model.layers.count) layers, \(HessianAnalysis.TraceMethod.auto.resolved(model: model, layers: model.layers)) traces, average \(String(format: "%.2f", result.policy.averageBits)) bits, \(String(format: "%.2f", seconds)) s")
    #expect(traces.values.allSatisfy { $0.isFinite }, "\(name): a trace is not finite")
    #expect(result.policy.averageBits <= 4 + 1e-9)
    #expect(result.policy.entries.allSatisfy { $0.weight != nil }, "\(name): a layer has no width")
    #expect(y.shape == [x.shape[0], 10] && y.scalars.allSatisfy { $0.isFinite })
}
