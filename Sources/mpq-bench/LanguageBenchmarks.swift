import Foundation

/// The language beside CPython 3 on the same programs, each run as a whole process (start-up
/// included, as a person would time it): `mpq -e '1+1'`, a 1,000,000-iteration arithmetic loop,
/// and 100,000 calls of a user function. Rates are runs per second (higher is better).
struct LanguageBenchmarks {
    var quick: Bool

    static let programs: [(name: String, mpq: String, python: String)] = [
        ("startup", "1+1", "1+1"),
        ("loop", "s = 0\nfor i in 0..<1000000 { s = s + i * 2 % 7 }\nprint(s)\n",
         "s = 0\nfor i in range(1000000):\n    s = s + i * 2 % 7\nprint(s)\n"),
        ("calls", "fn f(x) { x + 1 }\ns = 0\nfor i in 0..<100000 { s = f(s) }\nprint(s)\n",
         "def f(x):\n    return x + 1\ns = 0\nfor i in range(100000):\n    s = f(s)\nprint(s)\n"),
    ]

    /// Best wall time of `runs` executions, through posix_spawn and waitpid (Foundation's
    /// Process polls for exit and rounds short runs up to tens of milliseconds).
    func time(_ executable: String, _ arguments: [String], runs: Int) -> Double? {
        var best = Double.infinity
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for _ in 0..<runs {
            var pid: pid_t = 0
            let start = DispatchTime.now().uptimeNanoseconds
            guard posix_spawn(&pid, executable, &actions, nil, argv, environ) == 0 else { return nil }
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            guard status == 0 else { return nil }
            best = min(best, elapsed)
        }
        return best
    }

    func run(wanted: (String) -> Bool, emit: (BenchResult) -> Void) {
        let mpq = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("mpq").path
        guard FileManager.default.isExecutableFile(atPath: mpq) else { return }
        let python = ["/usr/bin/python3", "/usr/local/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) }
            ?? "/usr/bin/env"
        let tmp = FileManager.default.temporaryDirectory
        for program in Self.programs where wanted("lang.\(program.name)") {
            let runs = quick ? 3 : 7
            let ours: Double?, theirs: Double?
            if program.name == "startup" {
                ours = time(mpq, ["-e", program.mpq], runs: runs)
                theirs = time(python, (python.hasSuffix("env") ? ["python3"] : []) + ["-c", program.python], runs: runs)
            } else {
                let m = tmp.appendingPathComponent("mpq-bench-\(program.name).mpq"), py = tmp.appendingPathComponent("mpq-bench-\(program.name).py")
                try? program.mpq.write(to: m, atomically: true, encoding: .utf8)
                try? program.python.write(to: py, atomically: true, encoding: .utf8)
                ours = time(mpq, [m.path], runs: runs)
                theirs = time(python, (python.hasSuffix("env") ? ["python3"] : []) + [py.path], runs: runs)
            }
            guard let ours else { continue }
            emit(BenchResult("lang.\(program.name)", ours: 1 / ours, anchor: "cpython3", anchorValue: theirs.map { 1 / $0 } ?? 0,
                             unit: "runs/s", note: String(format: "%.1f ms vs %.1f ms", ours * 1000, (theirs ?? 0) * 1000)))
        }
    }
}
