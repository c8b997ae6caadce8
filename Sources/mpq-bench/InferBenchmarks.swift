import Foundation
import Kernels
import Network
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
        guard names.contains(where: { n in [1, 2].contains { wanted("infer.\(n).fp32.t\($0)") } }) else { return }
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
    }
}
