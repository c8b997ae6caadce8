import Foundation
import Kernels
import Network
import Quantization
import Tensors
import Runtime

/// Float inference on the reference ONNX models beside ONNX Runtime (CPU provider) on the same
/// files, batch 256, with 1 and 2 threads. ORT runs in a Python child process that stays up for
/// the run (scripts/ort-throughput.py --serve, `ORTAnchor`), timed in turns with our side; when
/// onnxruntime is missing the anchor is reported as 0.
struct InferBenchmarks {
    var quick: Bool
    var budget: Double
    var referenceDirectory: String

    /// ONNX Runtime's rate on `path` (nil when it cannot run), for `result`'s turns.
    /// `exact`: its exact int8 path on CPUs without VNNI (see scripts/ort-throughput.py).
    func ort(_ path: String, threads: Int, batch: Int, exact: Bool = false) -> () -> Double? {
        { ORTAnchor.shared?.rate(path, threads: threads, batch: batch, budget: budget, exact: exact) }
    }

    func run(wanted: (String) -> Bool, emit: (BenchResult) -> Void) {
        resnet50(wanted: wanted, emit: emit)
        resnet18(wanted: wanted, emit: emit)
        wideLinear(wanted: wanted, emit: emit)
        mobileNet(wanted: wanted, emit: emit)
        let batch = 256
        let names = ["mlp", "cnn", "resnet20"]
        let paths = names.map { "\(referenceDirectory)/fmnist_\($0).onnx" }
        let anyInteger = ["w8a8", "w4a8", "w1a1"].contains { tag in [1, 2].contains { wanted("infer.resnet20.\(tag).t\($0)") } }
        // Batch 256 (`infer.NAME.fp32.tT`) and one image (`infer.NAME.fp32.b1.tT`).
        func row(_ name: String, _ b: Int, _ threads: Int) -> String { "infer.\(name).fp32.\(b == 1 ? "b1." : "")t\(threads)" }
        guard anyInteger || names.contains(where: { n in [1, 2].contains { t in [batch, 1].contains { wanted(row(n, $0, t)) } } }) else { return }
        var rng = RandomGenerator(seed: 0)
        guard let x = try? Tensor.random([batch, 1, 28, 28], .normal(mean: 0, std: 1), using: &rng), let one = try? x.slice(0..<1) else { return }
        for b in [batch, 1] {
            for threads in [1, 2] {
                let wantedHere = names.filter { wanted(row($0, b, threads)) }
                if wantedHere.isEmpty { continue }
                for (name, path) in zip(names, paths) where wantedHere.contains(name) {
                    guard let model = try? ONNXImporter.load(path: path) else {
                        FileHandle.standardError.write(Data("infer: cannot load \(path)\n".utf8)); continue
                    }
                    let input = b == 1 ? one : x
                    emit(result(row(name, b, threads), threads: threads, batch: b, anchor: "onnxruntime", ort(path, threads: threads, batch: b)) {
                        _ = try? model.run(input)
                    })
                }
            }
        }
        integer(x, wanted: wanted, emit: emit)
    }

    /// MobileNetV2 (the zoo's, 28×28, seeded weights: speed does not depend on them), batch 256:
    /// float (`infer.mobilenetv2.fp32`) beside ONNX Runtime on the same BN-folded graph exported
    /// by mpq, and the integer engine at W8A8 (`infer.mobilenetv2.w8a8`: depthwise layers on
    /// byte codes, ReLU6 in the epilogue) beside ONNX Runtime's own static int8 QDQ quantization
    /// of that file (scripts/ort-quantize.py: per-channel int8 weights, uint8 activations, MinMax
    /// on 512 training images), made in a temporary folder for the run.
    func mobileNet(wanted: (String) -> Bool, emit: (BenchResult) -> Void) {
        let rows = ["fp32", "w8a8"].flatMap { tag in [1, 2].map { ("infer.mobilenetv2.\(tag).t\($0)", tag, $0) } }.filter { wanted($0.0) }
        if rows.isEmpty { return }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-bench-mobilenetv2-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var rng = RandomGenerator(seed: 0)
        guard (try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)) != nil,
              let model = try? Zoo.make("mobilenetv2"), let folded = try? model.foldingBatchNorm(),
              (try? ONNXExporter.save(folded, to: "\(dir)/mobilenetv2.onnx")) != nil,
              let calibration = try? FashionMNIST.calibration().images,
              let engine = try? IntegerModel(model: model, policy: try Policy.uniform(model, bits: 8, activationBits: 8), calibration: calibration),
              let x = try? Tensor.random([256, 1, 28, 28], .normal(mean: 0, std: 1), using: &rng) else {
            FileHandle.standardError.write(Data("infer: cannot build or export MobileNetV2\n".utf8)); return
        }
        let float = "\(dir)/mobilenetv2.onnx", int8 = "\(dir)/mobilenetv2.int8.onnx"
        let quantized = pythonLines(["scripts/ort-quantize.py", float, int8])?.ok == true
        for threads in [1, 2] where rows.contains(where: { $0.2 == threads }) {
            if wanted("infer.mobilenetv2.fp32.t\(threads)") {
                emit(result("infer.mobilenetv2.fp32.t\(threads)", threads: threads, batch: 256, anchor: "onnxruntime", ort(float, threads: threads, batch: 256)) {
                    _ = try? folded.run(x)
                })
            }
            if wanted("infer.mobilenetv2.w8a8.t\(threads)") {
                let anchor = quantized ? ort(int8, threads: threads, batch: 256) : { nil }
                let r = result("infer.mobilenetv2.w8a8.t\(threads)", threads: threads, batch: 256, anchor: "onnxruntime-int8", anchor) { _ = try? engine.run(x) }
                emit(r)
                if quantized && !IGEMM.hasVNNI, let e = ort(int8, threads: threads, batch: 256, exact: true)() {
                    emit(BenchResult(r.bench, ours: r.ours, anchor: "onnxruntime-int8-exact", anchorValue: e, unit: r.unit,
                                     note: "ONNX Runtime with session.x64quantprecision: no 16-bit saturation on this CPU without VNNI"))
                }
            }
        }
    }

    /// Bits that buy time: the integer engine on an MLP 784-4096-4096-4096-10 at batch 1, its
    /// weights at 8, 4 and 2 bits (activations 8; the linear layers run as matrix–vector products
    /// on weights stored at those widths, so every weight is read once per image), beside the
    /// same engine at W8A8 (the anchor: what fewer bits buy). Speed does not depend on the
    /// weights' values: the model is the zoo's, seeded.
    func wideLinear(wanted: (String) -> Bool, emit: (BenchResult) -> Void) {
        let configs = [(8, "w8a8"), (4, "w4a8"), (2, "w2a8")]
        guard configs.contains(where: { c in [1, 2].contains { wanted("infer.mlp4096.\(c.1).b1.t\($0)") } }) else { return }
        var rng = RandomGenerator(seed: 0)
        guard let model = try? Zoo.make("mlp", hidden: [4096, 4096, 4096]),
              let calibration = try? Tensor.random([16, 1, 28, 28], .normal(mean: 0, std: 1), using: &rng),
              let x = try? calibration.slice(0..<1) else { return }
        let engines = configs.compactMap { bits, tag -> (String, IntegerModel)? in
            guard let policy = try? Policy.uniform(model, bits: bits, activationBits: 8),
                  let engine = try? IntegerModel(model: model, policy: policy, calibration: calibration) else { return nil }
            return (tag, engine)
        }
        for threads in [1, 2] {
            guard let base = engines.first(where: { $0.0 == "w8a8" }) else { return }
            let saved = Parallel.defaultThreads
            Parallel.defaultThreads = threads
            let baseRate = 1 / bestTime(budget: budget) { _ = try? base.1.run(x, threads: threads) }
            Parallel.defaultThreads = saved
            for (tag, engine) in engines where wanted("infer.mlp4096.\(tag).b1.t\(threads)") {
                let r = result("infer.mlp4096.\(tag).b1.t\(threads)", threads: threads, batch: 1, anchor: "mpq-w8a8", { baseRate }) {
                    _ = try? engine.run(x, threads: threads)
                }
                emit(BenchResult(r.bench, ours: r.ours, anchor: "mpq-w8a8", anchorValue: baseRate, unit: "img/s",
                                 note: "batch 1; anchor: this engine with 8-bit weights (bits that buy time)"))
            }
        }
    }

    /// torchvision's ResNet-18 (10 classes, seeded) exported by PyTorch for 96×96 images
    /// (scripts/export-torchvision.py, into a temporary folder for the run), imported, on a batch of
    /// 256 beside ONNX Runtime on the same file: the imported-CNN row of float inference.
    func resnet18(wanted: (String) -> Bool, emit: (BenchResult) -> Void) {
        let threadCounts = [1, 2].filter { wanted("infer.resnet18.fp32.t\($0)") }
        if threadCounts.isEmpty { return }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-bench-resnet18-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/resnet18.onnx"
        guard (try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)) != nil,
              pythonLines(["scripts/export-torchvision.py", "resnet18", path, "--size", "96"])?.ok == true, let model = try? ONNXImporter.load(path: path) else {
            FileHandle.standardError.write(Data("infer: cannot export or import ResNet-18 (pip install torch torchvision)\n".utf8)); return
        }
        imported(model, path: path, name: "resnet18", input: [256, 3, 96, 96], threadCounts: threadCounts, emit: emit)
    }

    /// An imported model's float rows (`infer.NAME.fp32.tT`) on seeded normal inputs of shape
    /// `input`, beside ONNX Runtime on the same file.
    func imported(_ model: Model, path: String, name: String, input: [Int], threadCounts: [Int], emit: (BenchResult) -> Void) {
        var rng = RandomGenerator(seed: 0)
        guard let x = try? Tensor.random(input, .normal(mean: 0, std: 1), using: &rng) else { return }
        for threads in threadCounts {
            emit(result("infer.\(name).fp32.t\(threads)", threads: threads, batch: input[0], anchor: "onnxruntime",
                        ort(path, threads: threads, batch: input[0])) {
                _ = try? model.run(x)
            })
        }
    }

    /// ResNet-50 (the ONNX package's light model zoo copy: the real graph, 224×224, weights
    /// made by ConstantOfShape) on one image, beside ONNX Runtime on the same file.
    func resnet50(wanted: (String) -> Bool, emit: (BenchResult) -> Void) {
        resnet50Integer(wanted: wanted, emit: emit)
        let threadCounts = [1, 2].filter { wanted("infer.resnet50.fp32.t\($0)") }
        if threadCounts.isEmpty { return }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), 'backend/test/data/light/light_resnet50.onnx'))"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return }
        let path = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        p.waitUntilExit()
        let start = Date()
        guard p.terminationStatus == 0, let model = try? ONNXImporter.load(path: path) else {
            FileHandle.standardError.write(Data("infer: cannot load ResNet-50 from the onnx package (pip install onnx)\n".utf8)); return
        }
        FileHandle.standardError.write(Data("infer: ResNet-50 imported in \(String(format: "%.2f", Date().timeIntervalSince(start))) s\n".utf8))
        imported(model, path: path, name: "resnet50", input: [1, 3, 224, 224], threadCounts: threadCounts, emit: emit)
    }

    /// The integer engine on torchvision's ResNet-50 (1000 classes, seeded, with the Softmax head
    /// a deployed classifier ends in; scripts/export-torchvision.py) at 224², one image, W8A8
    /// calibrated on 8 seeded normal images, beside ONNX Runtime's own static int8 QDQ model of the
    /// same file, calibrated on 8 normal images of its own seed (scripts/ort-quantize.py --random
    /// 8; speed does not depend on the ranges). The light model
    /// of the float row makes its weights at run time, which ONNX Runtime's quantizer leaves float.
    func resnet50Integer(wanted: (String) -> Bool, emit: (BenchResult) -> Void) {
        let threadCounts = [1, 2].filter { wanted("infer.resnet50.w8a8.t\($0)") }
        if threadCounts.isEmpty { return }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-bench-resnet50-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (float, int8) = ("\(dir)/resnet50.onnx", "\(dir)/resnet50.int8.onnx")
        var rng = RandomGenerator(seed: 0)
        guard (try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)) != nil,
              pythonLines(["scripts/export-torchvision.py", "resnet50", float, "--size", "224", "--classes", "1000", "--softmax"])?.ok == true,
              let model = try? ONNXImporter.load(path: float), let calibration = try? Tensor.random([8, 3, 224, 224], .normal(mean: 0, std: 1), using: &rng),
              let engine = try? IntegerModel(model: model, policy: try Policy.uniform(model, bits: 8, activationBits: 8), calibration: calibration),
              let x = try? calibration.slice(0..<1) else {
            FileHandle.standardError.write(Data("infer: cannot export, import or quantize torchvision's ResNet-50 (pip install torch torchvision)\n".utf8)); return
        }
        let quantized = pythonLines(["scripts/ort-quantize.py", float, int8, "--random", "8"])?.ok == true
        for threads in threadCounts {
            emit(result("infer.resnet50.w8a8.t\(threads)", threads: threads, batch: 1, anchor: "onnxruntime-int8",
                        quantized ? ort(int8, threads: threads, batch: 1) : { nil }) {
                _ = try? engine.run(x, threads: threads)
            })
        }
    }

    /// The integer-only engine on ResNet-20 (W8A8 and W4A8, BN folded, calibrated on the first
    /// 512 training images; W1A1: the Bi-Real binary variant bnn() trains — its binary layers
    /// XNOR-popcount on packed signs, stem, projections and classifier at 8 bits — with the float
    /// network's weights, as speed does not depend on them) beside ONNX Runtime on its own static
    /// int8 QDQ model of the same network (fmnist_resnet20.ort_int8.onnx).
    func integer(_ x: Tensor, wanted: (String) -> Bool, emit: (BenchResult) -> Void) {
        let configs = [(8, "w8a8"), (4, "w4a8"), (1, "w1a1")].filter { c in [1, 2].contains { wanted("infer.resnet20.\(c.1).t\($0)") } }
        if configs.isEmpty { return }
        guard let model = try? Zoo.make("resnet20"), (try? model.loadStateDict(path: "\(referenceDirectory)/fmnist_resnet20.npz")) != nil,
              let calibration = try? FashionMNIST.calibration().images else {
            FileHandle.standardError.write(Data("infer: cannot load ResNet-20 or the calibration images\n".utf8)); return
        }
        // Each engine is built (and calibrated) once, then timed at every thread count.
        let engines = configs.compactMap { bits, tag -> (String, IntegerModel)? in
            if bits == 1 {
                guard let binary = try? Zoo.binary("resnet20"), (try? binary.loadStateDict(model.stateDict, source: "resnet20")) != nil,
                      let policy = try? BinaryTraining().policy(binary),
                      let engine = try? IntegerModel(model: binary, policy: policy, calibration: calibration) else { return nil }
                return (tag, engine)
            }
            guard let policy = try? Policy.uniform(model, bits: bits, activationBits: 8),
                  let engine = try? IntegerModel(model: model, policy: policy, calibration: calibration) else { return nil }
            return (tag, engine)
        }
        let ortPath = "\(referenceDirectory)/fmnist_resnet20.ort_int8.onnx"
        for threads in [1, 2] {
            let here = engines.filter { wanted("infer.resnet20.\($0.0).t\(threads)") }
            if here.isEmpty { continue }
            // Without VNNI, ONNX Runtime's default int8 kernels saturate 8-bit weight products
            // (our engine is exact): its exact path is the second anchor of the same row.
            let exact = IGEMM.hasVNNI ? nil : ort(ortPath, threads: threads, batch: x.shape[0], exact: true)()
            for (tag, engine) in here {
                let r = result("infer.resnet20.\(tag).t\(threads)", threads: threads, batch: x.shape[0], anchor: "onnxruntime-int8",
                               ort(ortPath, threads: threads, batch: x.shape[0])) {
                    _ = try? engine.run(x)
                }
                emit(r)
                if let e = exact {
                    emit(BenchResult(r.bench, ours: r.ours, anchor: "onnxruntime-int8-exact", anchorValue: e, unit: r.unit,
                                     note: "ONNX Runtime with session.x64quantprecision: no 16-bit saturation on this CPU without VNNI"))
                }
            }
        }
    }

    /// Images per second of `body` on `threads` threads, beside the anchor's rate: the anchor and
    /// our side timed in turns (three each, `budget` seconds a turn; one with --quick), the best
    /// of each kept, so a drift of the machine's speed during the row falls on both.
    func result(_ name: String, threads: Int, batch: Int, anchor: String, _ anchorRate: () -> Double?, _ body: () -> Void) -> BenchResult {
        let saved = Parallel.defaultThreads
        defer { Parallel.defaultThreads = saved }
        var best = Double.infinity, anchorBest: Double? = nil
        for _ in 0..<(quick ? 1 : 3) {
            if let a = anchorRate() { anchorBest = max(anchorBest ?? 0, a) }
            // The anchor's worker threads spin a little after its last run: let them stop.
            usleep(50_000)
            Parallel.defaultThreads = threads
            best = min(best, bestTime(budget: budget, body))
            Parallel.defaultThreads = saved
        }
        return BenchResult(name, ours: Double(batch) / best, anchor: anchor, anchorValue: anchorBest ?? 0, unit: "img/s",
                           note: anchorBest == nil ? "onnxruntime not available: pip install onnxruntime" : nil)
    }
}
