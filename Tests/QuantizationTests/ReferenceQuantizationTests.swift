import Foundation
import Testing
import TestSupport
import Network
import Quantization
import Tensors

func referenceJSON(_ name: String) throws -> [String: Any] {
    let data = try Data(contentsOf: URL(fileURLWithPath: "\(referenceDirectory)/fmnist_\(name).json"))
    return try JSONSerialization.jsonObject(with: data) as! [String: Any]
}

func referenceModel(_ name: String) throws -> Model {
    let m = try Zoo.make(name)
    try m.loadStateDict(path: "\(referenceDirectory)/fmnist_\(name).npz")
    return m
}

let testSet: Dataset = try! FashionMNIST.load(.test)
let calibration: Dataset = try! FashionMNIST.calibration()

/// Accuracies may move by one image at an exact rounding tie (the README's tolerance).
let accuracyTolerance = 0.0002 + 1e-9

/// `uniform_weight_only`: every bit width 1…8 (as the JSON lists them), per-channel,
/// per-tensor, and per-channel on BN-folded weights.
@Test(arguments: ["mlp", "cnn", "resnet20"])
func uniformWeightOnlyMatchesReference(_ name: String) throws {
    let figures = try referenceJSON(name)["uniform_weight_only"] as! [String: Double]
    let model = try referenceModel(name)
    let folded = name == "mlp" ? nil : try model.foldingBatchNorm()
    var checked = 0
    for (key, expected) in figures.sorted(by: { $0.key < $1.key }) {
        let parts = key.split(separator: "_")
        let bits = Int(parts[0].dropFirst())!
        let granularity: Granularity = parts[1] == "perchannel" ? .perChannel : .perTensor
        let base = parts.count > 2 ? folded! : model
        let acc = try base.quantized(weightBits: bits, granularity: granularity).accuracy(on: testSet)
        #expect(abs(acc - expected) <= accuracyTolerance, "\(name) \(key): \(acc) vs reference \(expected)")
        checked += 1
    }
    #expect(checked >= 14)
}

/// `uniform_weight_act`: calibrated ranges and accuracies for w8a8, w4a8, w8a4, w4a4, w2a8.
@Test(arguments: ["mlp", "cnn", "resnet20"])
func uniformWeightActivationMatchesReference(_ name: String) throws {
    let figures = try referenceJSON(name)["uniform_weight_act"] as! [String: Any]
    let model = try referenceModel(name)
    for key in figures.keys.filter({ !$0.hasSuffix("_ranges") }).sorted() {
        let expected = figures[key] as! Double
        let wb = Int(key.dropFirst().prefix { $0 != "a" })!, ab = Int(key.split(separator: "a").last!)!
        let weightOnly = try model.quantized(weightBits: wb)
        let ranges = try weightOnly.inputStatistics(of: weightOnly.layers, on: calibration.images)
        let refRanges = figures["\(key)_act_ranges"] as! [[String: Double]]
        for (layer, r) in zip(weightOnly.layers, refRanges) {
            let got = ranges[layer.name]!
            #expect(abs(Double(got.low) - r["lo"]!) <= 1e-4 * max(1, abs(r["lo"]!)), "\(name) \(key) \(layer.name) low")
            #expect(abs(Double(got.high) - r["hi"]!) <= 1e-4 * max(1, abs(r["hi"]!)), "\(name) \(key) \(layer.name) high")
        }
        let q = try model.quantized(weightBits: wb, activationBits: ab, calibration: calibration.images)
        let acc = try q.accuracy(on: testSet)
        #expect(abs(acc - expected) <= accuracyTolerance, "\(name) \(key): \(acc) vs reference \(expected)")
    }
}

/// `per_layer_weight_only`: one layer at 4/3/2/1 bits, the rest FP32: accuracy and the mean KL
/// divergence from the float model's predictions over the calibration batch.
@Test(arguments: ["mlp", "cnn"])
func perLayerWeightOnlyMatchesReference(_ name: String) throws {
    let figures = try referenceJSON(name)["per_layer_weight_only"] as! [String: [String: [String: Double]]]
    let model = try referenceModel(name)
    let floatProbabilities = softmax(try model.predict(calibration.images))
    for (layer, byBits) in figures.sorted(by: { $0.key < $1.key }) {
        for (key, expected) in byBits {
            let bits = Int(key.dropFirst())!
            let q = try model.quantized(bits: [layer: LayerBits(weight: bits)])
            let acc = try q.accuracy(on: testSet)
            #expect(abs(acc - expected["acc"]!) <= accuracyTolerance, "\(name) \(layer) \(key): \(acc) vs \(expected["acc"]!)")
            let kl = meanKL(floatProbabilities, softmax(try q.predict(calibration.images)))
            #expect(abs(kl - expected["kl_cal"]!) <= 1e-3 * max(1, expected["kl_cal"]!) + 2e-5, "\(name) \(layer) \(key): KL \(kl) vs \(expected["kl_cal"]!)")
        }
    }
}

func softmax(_ logits: Tensor) -> [[Double]] {
    let n = logits.shape[0], c = logits.shape[1]
    return (0..<n).map { i in
        let row = (0..<c).map { Double(logits.scalars[i * c + $0]) }
        let m = row.max()!
        let e = row.map { Foundation.exp($0 - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }
}

func meanKL(_ p: [[Double]], _ q: [[Double]]) -> Double {
    var total = 0.0
    for (pr, qr) in zip(p, q) {
        for (a, b) in zip(pr, qr) where a > 0 { total += a * Foundation.log(a / max(b, 1e-30)) }
    }
    return total / Double(p.count)
}

@Test func quantizerFormulasAndErrors() throws {
    let w = try Tensor(shape: [2, 3], scalars: [0.5, -1, 0.25, 0, 0, 0])
    let q = try WeightQuantizer.codes(w, bits: 3, granularity: .perChannel)
    #expect(q.scales == [1.0 / 3, 0])
    #expect(q.codes == [2, -3, 1, 0, 0, 0])  // 1.5 → 2 (ties to even), −3, 0.75 → 1
    let b = try WeightQuantizer.quantize(try Tensor(shape: [1, 4], scalars: [0.5, -1, 0, 1.5]), bits: 1, granularity: .perChannel)
    #expect(b.scalars == [0.75, -0.75, 0.75, 0.75])
    #expect(throws: QuantizationError.self) { try WeightQuantizer.quantize(w, bits: 9, granularity: .perTensor) }
    #expect(throws: QuantizationError.self) { try WeightQuantizer.quantize(try Tensor(shape: [1], scalars: [.nan]), bits: 4, granularity: .perTensor) }
    let a = ActivationQuantizer(low: 0, high: 2.55, bits: 8)
    #expect(a.isUnsigned && abs(a.scale - 0.01) < 1e-7 && a.codeRange == (0, 255))
    let s = ActivationQuantizer(low: -0.81, high: 2.02, bits: 8)
    #expect(!s.isUnsigned && s.codeRange == (-127, 127))
    let m = try Zoo.make("mlp")
    #expect(throws: QuantizationError.self) { try m.quantized(bits: ["nope": LayerBits(weight: 4)]) }
    #expect(throws: QuantizationError.self) { try m.quantized(weightBits: 4, activationBits: 8) }
}
