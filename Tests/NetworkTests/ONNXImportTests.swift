import Foundation
import Testing
import TestSupport
import Network
import Tensors

@Test(arguments: ["mlp", "cnn", "resnet20"])
func onnxReproducesReference(_ name: String) throws {
    let ref = try Reference(name)
    let model = try ONNXImporter.load(path: "\(referenceDirectory)/fmnist_\(name).onnx")
    #expect(try maxLogitError(model, ref) < 1e-4)
    let acc = try model.accuracy(on: testSet)
    #expect(abs(acc - ref.accuracy) <= 0.0002, "accuracy \(acc) vs \(ref.accuracy)")
    // Layer names come from the exporter's node names, and match the state dict's.
    #expect(model.layers.map(\.name) == ref.layers.map { $0["name"] as! String })
    #expect(model.layers.map(\.macs) == ref.layers.map { $0["macs"] as! Int })
}

@Test func malformedONNXFilesNameTheProblem() throws {
    let bytes = try FileIO.read("\(referenceDirectory)/fmnist_cnn.onnx")
    func message(_ b: [UInt8]) -> String {
        do { _ = try ONNXImporter.load(bytes: b, name: "x", source: "x.onnx"); return "loaded" } catch { return "\(error)" }
    }
    #expect(message(Array(bytes.prefix(bytes.count / 2))).contains("at byte"))
    #expect(message([]).contains("empty"))
    #expect(message(Array("hello, not a model at all".utf8)).contains("not a valid ONNX file"))
    var garbage = bytes
    for i in stride(from: 100, to: 400, by: 1) { garbage[i] = 0xFF }
    #expect(message(garbage) != "loaded")
}

@Test func unsupportedOperatorsAndOpsetsAreNamed() throws {
    let bytes = try FileIO.read("\(referenceDirectory)/fmnist_cnn.onnx")
    // Every unsupported operator is listed at once, with its count.
    var proto = try Onnx_ModelProto(serializedBytes: bytes)
    proto.graph.node[1].opType = "Celu"
    proto.graph.node[2].opType = "NonMaxSuppression"
    proto.graph.node[3].opType = "Celu"
    let edited: [UInt8] = try proto.serializedBytes()
    do { _ = try ONNXImporter.load(bytes: edited, name: "x", source: "x.onnx"); Issue.record("loaded") } catch {
        #expect("\(error)".contains("Celu (2 nodes), NonMaxSuppression (1 node)"), "\(error)")
    }
    for version in [5, 22] {
        var old = try Onnx_ModelProto(serializedBytes: bytes)
        old.opsetImport[0].version = Int64(version)
        do { _ = try ONNXImporter.load(bytes: try old.serializedBytes(), name: "x", source: "x.onnx"); Issue.record("loaded") } catch {
            #expect("\(error)".contains("opset \(version)"))
        }
    }
}

/// ONNX Runtime's own static int8 QDQ models: int8 weights and Int32 biases fold into float
/// constants, each QuantizeLinear→DequantizeLinear pair on an activation becomes one
/// FakeQuantize (round half to even, the zero point's type's range). The accuracy equals
/// ONNX Runtime's (`ort.ort_int8_static_qdq_acc`).
@Test(arguments: ["mlp", "cnn", "resnet20"])
func onnxRuntimeInt8ModelsGiveTheirAccuracy(_ name: String) throws {
    let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(referenceDirectory)/fmnist_\(name).json"))) as! [String: Any]
    let expected = (json["ort"] as! [String: Any])["ort_int8_static_qdq_acc"] as! Double
    let model = try ONNXImporter.load(path: "\(referenceDirectory)/fmnist_\(name).ort_int8.onnx")
    let acc = try model.accuracy(on: testSet)
    #expect(abs(acc - expected) <= 0.0002, "\(name) int8: \(acc) vs ONNX Runtime \(expected)")
    #expect(model.nodes.contains { if case .fakeQuantize = $0.op { return true }; return false })
}
