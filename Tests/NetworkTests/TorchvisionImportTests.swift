import Foundation
import Testing
import TestSupport
import Network
import Tensors

/// Small torchvision architectures from both PyTorch exporters (scripts/gen-test-models.py):
/// mpq's logits match ONNX Runtime's, and every convolution and linear layer is a layer that
/// sensitivity, search and quantizers see.
let torchvisionFixtures = repositoryRoot.appendingPathComponent("Tests/Fixtures/torchvision").path
let torchvisionModels = ["resnet18", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "squeezenet1_1", "shufflenet_v2",
                         "googlenet", "densenet121", "regnet", "convnext_tiny", "vit"]
    .flatMap { [($0, "torchscript"), ($0, "dynamo")] }.map { "\($0.0).\($0.1)" }

@Test(arguments: torchvisionModels)
func torchvisionModelsMatchONNXRuntime(_ name: String) throws {
    let model = try ONNXImporter.load(path: "\(torchvisionFixtures)/\(name).onnx")
    let arrays = Dictionary(try NPZ.read("\(torchvisionFixtures)/\(name).npz").map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
    let (x, y) = (arrays["x"]!, arrays["y"]!)
    let out = try model.run(x).output
    #expect(out.shape == y.shape)
    let scale = max(1, y.scalars.map(abs).max() ?? 1)
    let error = zip(out.scalars, y.scalars).map { abs($0 - $1) }.max() ?? .infinity
    #expect(error <= 1e-4 * scale, "\(name): max |Δ| \(error) against ONNX Runtime (outputs up to \(scale))")
    #expect(!model.layers.isEmpty)
    // Every Conv, Gemm and constant-weight MatMul is a layer.
    let weighted = model.nodes.filter { node in
        switch node.op { case .conv, .gemm: return model.parameters[node.inputs[1]] != nil; default: return false }
    }
    #expect(model.layers.count == weighted.count, "\(name): \(model.layers.count) layers of \(weighted.count) weighted nodes")
}
