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
        let policy = try Policy(model: model, weightBits: (0..<n).map { [8, 4, 2, 3, 1, 6][$0 % 6] },
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
    #expect(error(file(fc("\"weight\": {\"bits\": 9}"))).contains("layer 'fc1': field 'weight.bits': expected a whole number in 1…8 or a list of one per output channel, found 9"))
    #expect(error(file(fc("\"weight\": {\"bits\": 2.5}"))).contains("field 'weight.bits'"))
    #expect(error(file(fc("\"weight\": {\"bits\": true}"))).contains("found true"))
    #expect(error(file(fc("\"weight\": {\"bits\": 4, \"scheme\": \"pow2\"}"))).contains("layer 'fc1': field 'weight.scheme': version 1 files carry"))
    #expect(error(file(fc("\"weight\": {\"bits\": 4, \"scheme\": \"pow2\"}"), version: "2")) == "no error")
    #expect(error(file(fc("\"weight\": {\"bits\": 4, \"scheme\": \"cubic\"}"), version: "2")).contains("layer 'fc1': field 'weight.scheme': expected one of"))
    #expect(error(file(fc("\"weight\": {\"bits\": 4, \"scheme\": \"ternary\"}"), version: "2")).contains("layer 'fc1': field 'weight'"))
    #expect(error(file(fc("\"weight\": {\"bits\": [4, 4]}"), version: "2")).contains("layer 'fc1': field 'weight.bits': expected 256 widths (one per output channel"))
    #expect(error(file(fc("\"weight\": {\"bits\": [4, 4]}"))).contains("per-channel widths need a version 2 file"))
    #expect(error(file(fc("\"weight\": {\"bits\": 4, \"clip\": 20}"), version: "2")).contains("layer 'fc1': field 'weight.clip'"))
    #expect(error(file(fc("\"weight\": {\"bits\": 4, \"colour\": 1}"), version: "2")).contains("layer 'fc1': field 'weight.colour': no such field"))
    #expect(error(file(fc("\"weight\": null, \"activation\": {\"bits\": 8, \"scheme\": \"hwgq\"}"), version: "2")).contains("layer 'fc1': field 'activation.scheme'"))
    #expect(error(file(fc("\"weight\": null, \"activation\": {\"bits\": 4, \"sign\": \"both\"}"), version: "2")).contains("layer 'fc1': field 'activation.sign'"))
    #expect(error(file(fc("\"weight\": null, \"activation\": {\"bits\": 4, \"calibration\": \"kl\"}"), version: "2")).contains("field 'activation.calibration'"))
    #expect(error(file(fc("\"weight\": {\"bits\": 4, \"granularity\": \"row\"}"))).contains("field 'weight.granularity'"))
    #expect(error(file(fc("\"weight\": {\"bits\": 4}, \"activation\": {\"bits\": 0}"))).contains("layer 'fc1': field 'activation.bits'"))
    #expect(error(file(fc("\"weight\": {\"bits\": 4}, \"activation\": 8"))).contains("field 'activation': expected null or an object"))
    #expect(error(file(fc("\"weight\": 4"))).contains("field 'weight': expected null (float) or an object, found 4"))
    #expect(error(file("{\"name\": \"fc1\", \"weight\": {\"bits\": 4}}")).contains("no entry for layers 'fc2', 'fc3'"))
    #expect(error(file(fc("\"weight\": {\"bits\": 4}") + ", {\"name\": \"conv9\", \"weight\": {\"bits\": 4}}")).contains("layer 'conv9': model 'mlp' has no such layer"))
    #expect(error(file(fc("\"weight\": {\"bits\": 4}") + ", {\"name\": \"fc1\", \"weight\": {\"bits\": 4}}")).contains("layer 'fc1' appears twice"))
    #expect(error(file(fc("\"weight\": {\"bits\": 4}"), version: "3")).contains("written by a newer mpq"))
    #expect(error("{\"format\": \"other\"}").contains("field 'format'"))
    #expect(error("[]").contains("expected a JSON object"))
    #expect(error("{\"format\": \"mpq-po").contains("not valid JSON"))
}

/// A policy mixing every kind of entry — per-channel widths, pow2 and ternary and binary
/// weights, float weights, HWGQ / pow2 / signed activations, stochastic rounding, mse and
/// percentile clipping, groups — survives the file exactly.
@Test func mixedPolicyRoundTrips() throws {
    let model = try Zoo.make("cnn")
    let l = model.layers
    let channels = l[1].weightShape[0]
    let entries: [Policy.Entry] = [
        Policy.Entry(layer: l[0], weight: Policy.Weight(Quantizer(bits: 6, scheme: .powerOfTwo, clipping: .mse)),
                     activation: Policy.Activation(bits: 8, sign: .signed)),
        Policy.Entry(layer: l[1], weight: Policy.Weight.reference(bits: 4).perChannel((0..<channels).map { [2, 3, 4, 8][$0 % 4] }),
                     activation: Policy.Activation(bits: 4, scheme: .hwgq)),
        Policy.Entry(layer: l[2], weight: Policy.Weight(Quantizer(bits: 2, scheme: .ternary)), activation: Policy.Activation(bits: 1)),
        Policy.Entry(layer: l[3], weight: Policy.Weight(Quantizer(bits: 4, slicing: .group(32), rounding: .stochastic(seed: 7), clipping: .percentile(99.5))),
                     activation: Policy.Activation(bits: 6, scheme: .pow2)),
        Policy.Entry(layer: l[4], weight: nil, activation: nil),
    ]
    let policy = try Policy(model: model, entries: entries)
    #expect(policy.isKernelWise)
    #expect(policy.layerWiseBits == nil)
    let text = policy.jsonText(modelName: model.name)
    let back = try Policy.decode(Array(text.utf8), model: model, source: "mixed.json")
    #expect(back == policy)
    // Errors at creation name the layer and field.
    #expect(throws: QuantizationError.self) { try Policy(model: model, entries: Array(entries.dropLast())) }
    #expect(throws: QuantizationError.self) {
        try Policy(model: model, entries: [Policy.Entry(layer: l[0], weight: .reference(bits: 4).perChannel([4, 4]))] + entries.dropFirst())
    }
    #expect(throws: QuantizationError.self) {
        try Policy(model: model, entries: [Policy.Entry(layer: l[0], weight: Policy.Weight(Quantizer(bits: 2, scheme: .powerOfTwo)).at(bits: 9))] + entries.dropFirst())
    }
}

/// Kernel-wise weights: each output channel quantized alone at its width equals the layer-wise
/// quantizer where the widths agree, and the simulation of a policy reads them.
@Test func kernelWiseWeightsQuantizeChannelByChannel() throws {
    let model = try Zoo.make("cnn")
    let layer = model.layers[1]
    let w = model.parameters[layer.weight]!
    let n = layer.weightShape[0], per = w.count / n
    let widths = (0..<n).map { [2, 3, 4, 8][$0 % 4] }
    let kernelWise = try Policy.Weight.reference(bits: 8).perChannel(widths).quantize(w).dequantized
    for b in [2, 3, 4, 8] {
        let layerWise = try WeightQuantizer.quantize(w, bits: b, granularity: .perChannel)
        for c in 0..<n where widths[c] == b {
            #expect(Array(kernelWise.scalars[(c * per)..<((c + 1) * per)]) == Array(layerWise.scalars[(c * per)..<((c + 1) * per)]))
        }
    }
    #expect(Policy.Weight.reference(bits: 8).perChannel(widths).storedBits(for: layer) == widths.reduce(0) { $0 + $1 * per })
}

/// Kernel-wise packed tensors: each output channel at its own width in one bit stream; the
/// bytes are the cost models' ⌈Σ P_c·b_c/8⌉ plus the scales; dequantizing gives the policy
/// quantizer's values; the .mpqt file round-trips and a corrupt channelBits is refused.
@Test func kernelWisePackedTensorsRoundTrip() throws {
    let model = try Zoo.make("cnn")
    let layer = model.layers[1]
    let w = model.parameters[layer.weight]!
    let n = layer.weightShape[0]
    let weight = Policy.Weight.reference(bits: 8).perChannel((0..<n).map { [1, 2, 3, 4, 5, 6, 7, 8][$0 % 8] })
    let p = try PackedTensor(w, weight: weight)
    #expect(p.byteCount == (weight.storedBits(for: layer) + 7) / 8 + 4 * n)
    #expect(p.dequantize() == (try weight.quantize(w).dequantized))
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-kw-\(getpid()).mpqt").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    try p.save(to: path)
    #expect(try PackedTensor.load(path) == p)
    var bad = p
    bad.header.channelBits = Array(bad.header.channelBits!.dropLast())
    try bad.save(to: path)
    #expect(throws: QuantizationError.self) { try PackedTensor.load(path) }
}
