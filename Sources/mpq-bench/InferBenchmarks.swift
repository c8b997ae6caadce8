import Foundation
import Kernels
import Network
import Quantization
import Tensors

/// Float inference on the reference ONNX models beside ONNX Runtime (CPU provider) on the same
/// files, batch 256, with 1 and 2 threads. ORT runs in a Python child process
/// (scripts/ort-throughput.py); when onnxruntime is missing the anchor is reported as 0.
struct InferBenchmarks {
    var quick: Bool
    var budget: Double
    var referenceDirectory: String

    func ortRates(_ paths: [String], threads: Int, batch: Int) -> [String: Double] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "scripts/ort-throughput.py", "--threads", "\(threads)", "--batch", "\(batch)",
                       "--budget", quick ? "0.3" : "1.0"] + paths
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return [:] }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        var out: [String: Double] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let model = obj["model"] as? String, let rate = obj["images_per_second"] as? Double else { continue }
            out[model] = rate
        }
        return out
    }

    func run(wanted: (String) -> Bool, emit: (BenchResult) -> Void) {
        let batch = 256
        let names = ["mlp", "cnn", "resnet20"]
        let paths = names.map { "\(referenceDirectory)/fmnist_\($0).onnx" }
        let anyInteger = ["w8a8", "w4a8"].contains { tag in [1, 2].contains { wanted("infer.resnet20.\(tag).t\($0)") } }
        guard anyInteger || names.contains(where: { n in [1, 2].contains { wanted("infer.\(n).fp32.t\($0)") } }) else { return }
        var rng = RandomGenerator(seed: 0)
        guard let x = try? Tensor.random([batch, 1, 28, 28], .normal(mean: 0, std: 1), using: &rng) else { return }
        for threads in [1, 2] {
            let wantedHere = names.filter { wanted("infer.\($0).fp32.t\(threads)") }
            if wantedHere.isEmpty { continue }
            let ort = ortRates(paths, threads: threads, batch: batch)
            for (name, path) in zip(names, paths) where wantedHere.contains(name) {
                guard let model = try? ONNXImporter.load(path: path) else {
                    FileHandle.standardError.write(Data("infer: cannot load \(path)\n".utf8)); continue
                }
                let saved = Parallel.defaultThreads
                Parallel.defaultThreads = threads
                let t = bestTime(budget: budget) { _ = try? model.run(x) }
                Parallel.defaultThreads = saved
                emit(BenchResult("infer.\(name).fp32.t\(threads)", ours: Double(batch) / t, anchor: "onnxruntime",
                                 anchorValue: ort[path] ?? 0, unit: "img/s",
                                 note: ort[path] == nil ? "onnxruntime not available: pip install onnxruntime" : nil))
            }
        }
        integer(x, wanted: wanted, emit: emit)
    }

    /// The integer-only engine on ResNet-20 (W8A8 and W4A8, BN folded, calibrated on the first
    /// 512 training images) beside ONNX Runtime on its own static int8 QDQ model of the same
    /// network (fmnist_resnet20.ort_int8.onnx).
    func integer(_ x: Tensor, wanted: (String) -> Bool, emit: (BenchResult) -> Void) {
        let configs = [(8, "w8a8"), (4, "w4a8")]
        let batch = x.shape[0]
        for threads in [1, 2] {
            let here = configs.filter { wanted("infer.resnet20.\($0.1).t\(threads)") }
            if here.isEmpty { continue }
            let ortPath = "\(referenceDirectory)/fmnist_resnet20.ort_int8.onnx"
            let ort = ortRates([ortPath], threads: threads, batch: batch)
            guard let model = try? Zoo.make("resnet20"), (try? model.loadStateDict(path: "\(referenceDirectory)/fmnist_resnet20.npz")) != nil,
                  let calibration = try? FashionMNIST.calibration().images else {
                FileHandle.standardError.write(Data("infer: cannot load ResNet-20 or the calibration images\n".utf8)); return
            }
            for (bits, tag) in here {
                guard let policy = try? Policy.uniform(model, bits: bits, activationBits: 8),
                      let engine = try? IntegerModel(model: model, policy: policy, calibration: calibration) else { continue }
                let saved = Parallel.defaultThreads
                Parallel.defaultThreads = threads
                let t = bestTime(budget: budget) { _ = try? engine.run(x) }
                Parallel.defaultThreads = saved
                emit(BenchResult("infer.resnet20.\(tag).t\(threads)", ours: Double(batch) / t, anchor: "onnxruntime-int8",
                                 anchorValue: ort[ortPath] ?? 0, unit: "img/s",
                                 note: ort[ortPath] == nil ? "onnxruntime not available: pip install onnxruntime" : nil))
            }
        }
    }
}
