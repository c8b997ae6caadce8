import ArgumentParser
import Foundation
import Kernels
import Runtime

/// One measured figure beside its anchor.
struct BenchResult: Codable {
    var bench: String
    var ours: Double
    var anchor: String
    var anchor_value: Double
    var ratio: Double
    var unit: String
    var note: String?

    init(_ bench: String, ours: Double, anchor: String, anchorValue: Double, unit: String, note: String? = nil) {
        self.bench = bench; self.ours = ours; self.anchor = anchor; self.anchor_value = anchorValue
        self.ratio = anchorValue > 0 ? ours / anchorValue : 0; self.unit = unit; self.note = note
    }
}

/// Runs an anchor's own process and returns its stdout and whether it exited cleanly; nil when
/// it cannot be started. Its stderr is discarded; `environment` replaces ours when given.
func childOutput(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) -> (output: String, ok: Bool)? {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let environment { p.environment = environment }
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return nil }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (String(decoding: data, as: UTF8.self), p.terminationStatus == 0)
}

/// What an anchor's Python helper prints, one JSON object per line (the objects that parse), and
/// whether it exited cleanly; nil when python3 cannot be started.
func pythonLines(_ arguments: [String]) -> (objects: [[String: Any]], ok: Bool)? {
    guard let r = childOutput("/usr/bin/env", ["python3"] + arguments) else { return nil }
    let objects = r.output.split(separator: "\n").compactMap {
        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
    return (objects, r.ok)
}

/// Best time of `body` (see `Stopwatch.best`).
func bestTime(budget: Double = 0.3, _ body: () -> Void) -> Double { Stopwatch.best(budget: budget, body) }

@main
struct MPQBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mpq-bench",
        abstract: "Measures mpq's hot paths beside their anchors (OpenBLAS, memcpy, our own f32 GEMM, ONNX Runtime, HiGHS, Sony MCT).")

    @Flag(help: "Print one JSON object per line instead of a table.")
    var json = false

    @Option(help: "Run only benchmarks whose name starts with one of these comma-separated prefixes.")
    var filter: String = ""

    @Flag(help: "Smaller sizes and shorter timing, for a quick look.")
    var quick = false

    @Option(help: "Seconds of timing per GEMM, packing and inference row (default 0.3; 0.05 with --quick): longer for profiling or a noisy machine.")
    var budget: Double? = nil

    @Option(help: "The folder with the reference models (fmnist_*.onnx).")
    var reference = "../shared/reference"

    @Option(help: .hidden)
    var openblasSgemm: String? = nil

    func validate() throws {
        if let budget, !(budget > 0 && budget.isFinite) {
            throw ValidationError("--budget expects a positive number of seconds, found \(budget)")
        }
    }

    func run() throws {
        Memory.keepFreedMemory()
        if let shape = openblasSgemm {
            // The anchor's own process (see `GEMMBenchmarks.nativeOpenBLAS`): prints GFLOP/s.
            let v = shape.split(separator: ",").compactMap { Int($0) }
            guard v.count == 4 else { throw ValidationError("--openblas-sgemm expects m,k,n,threads") }
            print(GEMMBenchmarks.openBLASRate(m: v[0], k: v[1], n: v[2], threads: v[3], budget: budget ?? (quick ? 0.05 : 0.3)))
            return
        }
        let prefixes = filter.split(separator: ",").map(String.init)
        let wanted: (String) -> Bool = { name in prefixes.isEmpty || prefixes.contains { name.hasPrefix($0) } }
        if !json {
            print("mpq-bench: \(Parallel.availableCores) cores, int8 kernel: \(IGEMM.activeBackend.rawValue)")
            print(pad("bench", 28) + pad("ours", 10) + pad("anchor", 14) + pad("anchor", 10) + pad("ratio", 8) + "unit")
        }
        let emit: (BenchResult) -> Void = { r in
            if json {
                let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
                print(String(decoding: try! enc.encode(r), as: UTF8.self))
            } else {
                print(pad(r.bench, 28) + pad(fmt(r.ours), 10) + pad(r.anchor, 14) + pad(fmt(r.anchor_value), 10)
                      + pad(String(format: "%.2f", r.ratio), 8) + r.unit + (r.note.map { "  (\($0))" } ?? ""))
            }
            fflush(stdout)
        }
        let budget = self.budget ?? (quick ? 0.05 : 0.3)
        GEMMBenchmarks(quick: quick, budget: budget).run(wanted: wanted, emit: emit)
        PackBenchmarks(quick: quick, budget: budget).run(wanted: wanted, emit: emit)
        InferBenchmarks(quick: quick, budget: budget, referenceDirectory: reference).run(wanted: wanted, emit: emit)
        LanguageBenchmarks(quick: quick).run(wanted: wanted, emit: emit)
        SolveBenchmarks(quick: quick).run(wanted: wanted, emit: emit)
        TrainBenchmarks(quick: quick, referenceDirectory: reference).run(wanted: wanted, emit: emit)
        EvalBenchmarks(quick: quick, referenceDirectory: reference).run(wanted: wanted, emit: emit)
        PTQBenchmarks(quick: quick, referenceDirectory: reference).run(wanted: wanted, emit: emit)
    }
}

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
func fmt(_ x: Double) -> String { x >= 100 ? String(format: "%.0f", x) : String(format: "%.2f", x) }
