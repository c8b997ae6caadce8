import Foundation
import Testing
import TestSupport
import Network
import Quantization
import Tensors

/// Policy files round-trip on every zoo model (mixed weight bits, float and quantized
/// activations, both granularities), and every malformed or mismatched file is an error that
/// names the layer and the field.
@Test(arguments: Zoo.names)
func policyFilesRoundTrip(_ arch: String) throws {
    let model = try Zoo.make(arch)
    let n = model.layers.count
    for granularity in Granularity.allCases {
        let policy = try Policy(layers: model.layers.map(\.name), weightBits: (0..<n).map { [8, 4, 2, 3, 1, 6][$0 % 6] },
                                activationBits: (0..<n).map { $0 % 3 == 0 ? nil : [8, 4, 1][$0 % 3] }, granularity: granularity)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-policy-\(getpid())-\(arch).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try policy.save(to: path, modelName: model.name)
        #expect(try Policy.load(path: path, model: model) == policy)
    }
}

@Test func policyFileErrorsNameLayerAndField() throws {
    let model = try Zoo.make("mlp")
    func error(_ text: String) -> String {
        do { _ = try Policy.decode(Array(text.utf8), model: model, source: "p.json"); return "no error" } catch { return "\(error)" }
    }
    func file(_ layers: String, version: String = "1") -> String { "{\"format\": \"mpq-policy\", \"version\": \(version), \"layers\": [\(layers)]}" }
    let fc = { (rest: String) in "{\"name\": \"fc1\", \(rest)}, {\"name\": \"fc2\", \"weight\": {\"bits\": 8}}, {\"name\": \"fc3\", \"weight\": {\"bits\": 8}}" }
    #expect(error(file(fc("\"weight\": {\"bits\": 4}"))) == "no error")
    #expect(error(file(fc("\"weight\": {\"bits\": 9}"))).contains("layer 'fc1': field 'weight.bits': expected a whole number in 1…8, found 9"))
    #expect(error(file(fc("\"weight\": {\"bits\": 2.5}"))).contains("field 'weight.bits'"))
    #expect(error(file(fc("\"weight\": {\"bits\": true}"))).contains("found true"))
    #expect(error(file(fc("\"weight\": {\"bits\": 4, \"scheme\": \"pow2\"}"))).contains("layer 'fc1': field 'weight.scheme'"))
    #expect(error(file(fc("\"weight\": {\"bits\": 4, \"granularity\": \"row\"}"))).contains("field 'weight.granularity'"))
    #expect(error(file(fc("\"weight\": {\"bits\": 4}, \"activation\": {\"bits\": 0}"))).contains("layer 'fc1': field 'activation.bits'"))
    #expect(error(file(fc("\"weight\": {\"bits\": 4}, \"activation\": 8"))).contains("field 'activation': expected null or an object"))
    #expect(error(file(fc("\"weight\": 4"))).contains("field 'weight': expected an object"))
    #expect(error(file("{\"name\": \"fc1\", \"weight\": {\"bits\": 4}}")).contains("no entry for layers 'fc2', 'fc3'"))
    #expect(error(file(fc("\"weight\": {\"bits\": 4}") + ", {\"name\": \"conv9\", \"weight\": {\"bits\": 4}}")).contains("layer 'conv9': model 'mlp' has no such layer"))
    #expect(error(file(fc("\"weight\": {\"bits\": 4}") + ", {\"name\": \"fc1\", \"weight\": {\"bits\": 4}}")).contains("layer 'fc1' appears twice"))
    #expect(error(file(fc("\"weight\": {\"bits\": 4}"), version: "2")).contains("written by a newer mpq"))
    #expect(error("{\"format\": \"other\"}").contains("field 'format'"))
    #expect(error("[]").contains("expected a JSON object"))
    #expect(error("{\"format\": \"mpq-po").contains("not valid JSON"))
}
