import Foundation
import Testing
import TestSupport
import Network
import Tensors

/// How one backend test model fared.
enum BackendOutcome: Equatable {
    case pass
    /// Import refused it, with the reason.
    case refused(String)
    /// Imported, but the run failed or the output differs.
    case mismatch(String)
}

/// Runs one extracted backend test (scripts/gen-onnx-backend.py): imports model.onnx, feeds
/// input_0 and compares with output_0 at ONNX's default tolerances, |Δ| ≤ 1e-7 + 1e-3·|expected|.
func runBackendCase(_ folder: String) -> BackendOutcome {
    let model: Model
    do { model = try ONNXImporter.load(path: "\(folder)/model.onnx") } catch { return .refused("\(error)") }
    do {
        let arrays = Dictionary(try NPZ.read("\(folder)/data.npz").map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
        guard let x = arrays["input_0"], let expected = arrays["output_0"] else { return .refused("no float input and output data") }
        // Some float64 cases hold uninitialised memory (1e223 and the like) as input.
        guard x.scalars.allSatisfy({ $0.isFinite }) else { return .refused("the test's input data is not finite in float32") }
        let y = try model.run(x).output
        guard y.count == expected.count else {
            return .mismatch("output shape \(y.shape), expected \(expected.shape)")
        }
        var worst: (Float, Int) = (0, -1)
        for (i, (a, b)) in zip(y.scalars, expected.scalars).enumerated() {
            let excess = abs(a - b) - (1e-7 + 1e-3 * abs(b))
            if excess > worst.0 || (a.isNaN != b.isNaN) { worst = (excess.isNaN ? .infinity : excess, i) }
        }
        if worst.1 >= 0 {
            let i = worst.1
            return .mismatch("element \(i): \(y.scalars[i]), expected \(expected.scalars[i])")
        }
        return .pass
    } catch {
        return .mismatch("run: \(error)")
    }
}

/// The ONNX package's own backend test models (pytorch-converted, pytorch-operator, simple and
/// the light model zoo), extracted by scripts/gen-onnx-backend.py. Every model mpq imports must
/// reproduce the expected output (no mismatch); every refusal must name its reason: an
/// operator mpq does not claim, or a graph shape mpq models do not take (several inputs or
/// outputs, a non-float or unbatched input). The light zoo's nine models must all pass.
/// Prints the count per outcome and each refusal.
@Test func onnxBackendSuite() throws {
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-onnx-backend-\(getpid())").path
    defer { try? FileManager.default.removeItem(atPath: out) }
    let gen = Process()
    gen.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    gen.arguments = ["python3", repositoryRoot.appendingPathComponent("scripts/gen-onnx-backend.py").path, out]
    gen.standardError = FileHandle.nullDevice
    try gen.run(); gen.waitUntilExit()
    try #require(gen.terminationStatus == 0, "scripts/gen-onnx-backend.py failed (needs the onnx and onnxruntime pip packages: scripts/setup)")
    let cases = try String(contentsOfFile: "\(out)/manifest.txt", encoding: .utf8).split(separator: "\n").map(String.init)
    var passed = 0, refusals: [(String, String)] = [], mismatches: [(String, String)] = []
    for c in cases {
        switch runBackendCase("\(out)/\(c)") {
        case .pass: passed += 1
        case .refused(let why): refusals.append((c, why))
        case .mismatch(let why): mismatches.append((c, why))
        }
    }
    print("ONNX backend suite: \(cases.count) models: \(passed) pass, \(refusals.count) refused, \(mismatches.count) mismatch")
    for (c, why) in refusals { print("  refused \(c): \(why.replacingOccurrences(of: "\(out)/\(c)/", with: "").split(separator: ";").first ?? "")") }
    for (c, why) in mismatches { Issue.record("\(c): \(why)") }
    // A refusal states what it refuses: unsupported operators, one node's operator and what
    // about it (`node 'n' (MaxPool): dilated pooling is not supported`), or the graph's form.
    let graphForms = ["does not support", "inputs (", "outputs (", "must have a fixed shape", "no float input", "not finite in float32", "opset"]
    for (c, why) in refusals where !graphForms.contains(where: { why.contains($0) })
        && why.range(of: #"node '[^']*' \([A-Za-z]+\): "#, options: .regularExpression) == nil {
        Issue.record("\(c): refusal does not say what it refuses: \(why)")
    }
    let light = cases.filter { $0.hasPrefix("light/") }
    #expect(light.count == 9 && refusals.allSatisfy { !$0.0.hasPrefix("light/") }, "the light model zoo must all import")
}
