import Foundation
import MixedPrecision

/// The exact bit-allocation solver beside HiGHS (scipy.optimize.milp, mip_rel_gap 0) on the same
/// instances: 22, 100, 500 and 2,000 layers × 5 widths {2, 3, 4, 6, 8} × 2 budgets (size and
/// BitOps). Instances are HAWQ-shaped and seeded: Ω_l(b) = t_l·4^(−b)·(1 + noise), t_l
/// log-uniform over three decades; size P_l·b with P_l log-uniform 1e3…1e5; BitOps M_l·b² with
/// M_l log-uniform; budgets at an average of 4 bits for size and 40% of the way from all-2 to
/// all-8 for BitOps. Reported: instances solved per second, ours and HiGHS's, and whether both
/// found the same optimum (note).
struct SolveBenchmarks {
    var quick: Bool

    static func instance(layers: Int, seed: UInt64) -> BitAllocation {
        var state = seed &* 0x9E3779B97F4A7C15 | 1
        func uniform() -> Double {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Double(state >> 11) / Double(1 << 53)
        }
        let widths = [2, 3, 4, 6, 8]
        var objective: [[Double]] = [], size: [[Double]] = [], bitops: [[Double]] = []
        for _ in 0..<layers {
            let t = pow(10, uniform() * 3), p = pow(10, 3 + uniform() * 2).rounded(), m = pow(10, 5 + uniform() * 2).rounded()
            objective.append(widths.map { t * pow(4, -Double($0)) * (1 + 0.3 * uniform()) })
            size.append(widths.map { p * Double($0) })
            bitops.append(widths.map { m * Double($0 * $0) })
        }
        let totalP = size.reduce(0) { $0 + $1[0] / 2 }
        let lo = bitops.reduce(0) { $0 + $1[0] }, hi = bitops.reduce(0) { $0 + $1[4] }
        return BitAllocation(layers: (0..<layers).map { "l\($0)" }, choices: Array(repeating: widths, count: layers),
                             objective: objective,
                             budgets: [.init(name: "size", cost: size, limit: totalP * 4),
                                       .init(name: "bitops", cost: bitops, limit: lo + 0.4 * (hi - lo))])
    }

    func highs(_ problems: [(String, BitAllocation)]) -> [String: (objective: Double, seconds: Double)] {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-solve-\(getpid()).json")
        defer { try? FileManager.default.removeItem(at: file) }
        let json = problems.map { name, p -> [String: Any] in
            ["name": name, "objective": p.objective, "costs": p.budgets.map(\.cost), "limits": p.budgets.map(\.limit)]
        }
        guard let data = try? JSONSerialization.data(withJSONObject: json), (try? data.write(to: file)) != nil else { return [:] }
        let proc = Process()
        proc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        proc.arguments = ["python3", "scripts/highs-solve.py", file.path]
        let pipe = Pipe()
        proc.standardOutput = pipe
        proc.standardError = FileHandle.nullDevice
        guard (try? proc.run()) != nil else { return [:] }
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        proc.waitUntilExit()
        var result: [String: (Double, Double)] = [:]
        for line in String(decoding: out, as: UTF8.self).split(separator: "\n") {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let name = o["name"] as? String, let obj = o["objective"] as? Double, let s = o["seconds"] as? Double else { continue }
            result[name] = (obj, s)
        }
        return result
    }

    func run(wanted: (String) -> Bool, emit: (BenchResult) -> Void) {
        let sizes = [22, 100, 500, 2000].filter { wanted("solve.\($0)") }
        guard !sizes.isEmpty else { return }
        let problems = sizes.map { ("solve.\($0)", Self.instance(layers: $0, seed: UInt64($0))) }
        let anchor = highs(problems)
        for (name, p) in problems {
            var solution: BitAllocation.Solution? = nil
            let t = bestTime(budget: quick ? 0.1 : 0.5) { solution = try? p.solveExactly() }
            var note: String? = nil
            if let h = anchor[name], let s = solution {
                let same = abs(h.objective - s.objective) <= 1e-6 * max(abs(h.objective), 1e-12)
                note = same ? "same optimum \(s.objective)" : "DIFFERENT optimum: ours \(s.objective), HiGHS \(h.objective)"
            } else if anchor[name] == nil {
                note = "HiGHS not available: pip install scipy"
            }
            emit(BenchResult(name, ours: 1 / t, anchor: "highs", anchorValue: anchor[name].map { 1 / $0.seconds } ?? 0,
                             unit: "solves/s", note: note))
        }
    }
}
