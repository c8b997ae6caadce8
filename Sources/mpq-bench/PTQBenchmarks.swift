import Foundation
import MixedPrecision
import Network
import Quantization
import Tensors

/// Post-training quality beside Sony MCT (issue 21): `ptq.resnet20.w4` and `ptq.resnet20.w3`.
/// Both sides start from the reference ResNet-20 weights, calibrate on the first 512 training
/// images, quantize weights only, with widths {8, 4, 3, 2} (ours: {2, 3, 4, 5, 6, 8}, the first
/// and last layer at 8) and a weight-memory target of 135,304 / 101,478 bytes (4- / 3-bit
/// average). Ours: HAWQ-V3 (exact Hessian traces on 256 training images, the exact solver), then
/// AdaRound with bias correction. MCT: its PyTorch PTQ with mixed precision (scripts/mct-ptq.py).
/// `ours` and `anchor_value` are test accuracies (%); the note has each side's wall time of the
/// whole call and its bytes. When MCT is missing the anchor is 0.
struct PTQBenchmarks {
    var quick: Bool
    var referenceDirectory: String

    static let targets: [(name: String, bytes: Double)] = [("ptq.resnet20.w4", 135_304), ("ptq.resnet20.w3", 101_478)]

    func mct(bytes: Double) -> (accuracy: Double, seconds: Double, bytes: Double)? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "scripts/mct-ptq.py", "--weights", "\(referenceDirectory)/fmnist_resnet20.npz", "--bytes", "\(Int(bytes))"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        // MCT's solver prints to stdout too: the result is the last JSON line.
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n").reversed() {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let a = obj["accuracy"] as? Double, let s = obj["seconds"] as? Double, let b = obj["bytes"] as? Double else { continue }
            return (a, s, b)
        }
        return nil
    }

    func ours(bytes: Double) throws -> (accuracy: Double, seconds: Double, search: Double, bytes: Double) {
        let model = try Zoo.make("resnet20")
        try model.loadStateDict(path: "\(referenceDirectory)/fmnist_resnet20.npz")
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
        for target in Self.targets where wanted(target.name) {
            do {
                let a = try ours(bytes: target.bytes)
                let m = mct(bytes: target.bytes)
                var note = String(format: "ours %.1f s (search %.1f s, AdaRound + bias correction the rest), %.0f B", a.seconds, a.search, a.bytes)
                note += m.map { String(format: "; mct %.1f s, %.0f B", $0.seconds, $0.bytes) } ?? "; mct not installed (pip model-compression-toolkit torch torchvision)"
                emit(BenchResult(target.name, ours: a.accuracy * 100, anchor: "mct", anchorValue: (m?.accuracy ?? 0) * 100, unit: "% test acc", note: note))
            } catch {
                FileHandle.standardError.write(Data("\(target.name): \(error)\n".utf8))
            }
        }
    }
}
