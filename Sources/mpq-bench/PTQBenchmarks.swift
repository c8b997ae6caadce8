import Foundation
import MixedPrecision
import Network
import Quantization
import Tensors

/// Post-training quality beside Sony MCT (issue 21): `ptq.MODEL.w4` and `ptq.MODEL.w3` for
/// ResNet-20 and the CNN. Both sides start from the reference weights, calibrate on the first 512 training
/// images, quantize weights only, with widths {8, 4, 3, 2} (ours: {2, 3, 4, 5, 6, 8}, the first
/// and last layer at 8) and a weight-memory target of a 4- / 3-bit average (ResNet-20:
/// 135,304 / 101,478 bytes; CNN: 49,096 / 36,822). Ours: HAWQ-V3 (exact Hessian traces on 256 training images, the exact solver), then
/// AdaRound with bias correction. MCT: its PyTorch PTQ with mixed precision (scripts/mct-ptq.py).
/// `ours` and `anchor_value` are test accuracies (%); the note has each side's wall time of the
/// whole call and its bytes. When MCT is missing the anchor is 0.
struct PTQBenchmarks {
    var quick: Bool
    var referenceDirectory: String

    static let targets: [(model: String, bits: Int, bytes: Double)] = [("resnet20", 4, 135_304), ("resnet20", 3, 101_478),
                                                                      ("cnn", 4, 49_096), ("cnn", 3, 36_822)]

    func mct(model: String, bytes: Double) -> (accuracy: Double, seconds: Double, bytes: Double)? {
        guard let out = pythonLines(["scripts/mct-ptq.py", "--model", model, "--weights", "\(referenceDirectory)/fmnist_\(model).npz", "--bytes", "\(Int(bytes))"]) else { return nil }
        // MCT's solver prints to stdout too: the result is the last JSON line.
        for obj in out.objects.reversed() {
            guard let a = obj["accuracy"] as? Double, let s = obj["seconds"] as? Double, let b = obj["bytes"] as? Double else { continue }
            return (a, s, b)
        }
        return nil
    }

    func ours(model name: String, bytes: Double) throws -> (accuracy: Double, seconds: Double, search: Double, bytes: Double) {
        let model = try Zoo.make(name)
        try model.loadStateDict(path: "\(referenceDirectory)/fmnist_\(name).npz")
        let hessianData = try FashionMNIST.load(.train, limit: 256), calibration = try FashionMNIST.calibration().images
        let start = Date()
        let traces = try HessianAnalysis.traces(model: model, data: hessianData, method: .exact).mapValues(\.mean)
        let table = try SensitivityTable.hawq(model: model, traces: traces, bits: [2, 3, 4, 5, 6, 8])
        var search = Search(budgets: [.size(bytes)])
        search.ends = 8
        let policy = try search.run(table, model: model).policy
        let searched = Date().timeIntervalSince(start)
        let q = try model.quantized(policy: policy, calibration: calibration, biasCorrection: true, rounding: AdaRound())
        let seconds = Date().timeIntervalSince(start)
        return (try q.accuracy(on: try FashionMNIST.load(.test)), seconds, searched, try CostModel.size.cost(policy))
    }

    func run(wanted: (String) -> Bool, emit: (BenchResult) -> Void) {
        for target in Self.targets {
            let name = "ptq.\(target.model).w\(target.bits)"
            guard wanted(name) else { continue }
            do {
                let a = try ours(model: target.model, bytes: target.bytes)
                let m = mct(model: target.model, bytes: target.bytes)
                var note = String(format: "ours %.1f s (search %.1f s, AdaRound + bias correction the rest), %.0f B", a.seconds, a.search, a.bytes)
                note += m.map { String(format: "; mct %.1f s, %.0f B", $0.seconds, $0.bytes) } ?? "; mct not installed (pip model-compression-toolkit torch torchvision)"
                emit(BenchResult(name, ours: a.accuracy * 100, anchor: "mct", anchorValue: (m?.accuracy ?? 0) * 100, unit: "% test acc", note: note))
            } catch {
                FileHandle.standardError.write(Data("\(name): \(error)\n".utf8))
            }
        }
    }
}
