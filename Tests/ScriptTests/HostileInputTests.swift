import Foundation
import Testing


/// One case of the hostile corpus that `scripts/gen-hostile.py` writes.
struct HostileCase: Decodable {
    var name: String
    var args: [String]
    var expect: String
    var status: [Int32]
    var stdin: String?
    var setup: String?
    var env: [String: String]?
}

/// Runs `mpq` under a 4 GiB address-space limit and a 20 s watchdog, standard output discarded
/// and standard error kept in a file (a case may print a lot). Returns the exit status (128 + N
/// for a signal, 137 when the watchdog killed it) and standard error.
func runConfined(_ arguments: [String], stdin: String?, env extra: [String: String]?, scratch: URL, tag: String) throws -> (status: Int32, err: String) {
    let errFile = scratch.appendingPathComponent("\(tag).stderr"), inFile = scratch.appendingPathComponent("\(tag).stdin")
    try Data((stdin ?? "").utf8).write(to: inFile)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
    p.arguments = ["-s", "KILL", "20", "/bin/sh", "-c", "ulimit -v 4194304; exec \"$0\" \"$@\" < \"$MPQ_HOSTILE_IN\" 2> \"$MPQ_HOSTILE_ERR\" > /dev/null",
                   mpqExecutable] + arguments
    p.currentDirectoryURL = repositoryRoot
    var env = ProcessInfo.processInfo.environment
    env["MPQ_HOSTILE_IN"] = inFile.path; env["MPQ_HOSTILE_ERR"] = errFile.path
    env.merge(extra ?? [:]) { _, new in new }
    p.environment = env
    try p.run()
    p.waitUntilExit()
    let status = p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
    // The first and last 4 KiB: the message comes first, a crash report last.
    let bytes = (try? Data(contentsOf: errFile)) ?? Data()
    let err = bytes.count <= 8192 ? String(decoding: bytes, as: UTF8.self)
        : String(decoding: bytes.prefix(4096), as: UTF8.self) + "\n…\n" + String(decoding: bytes.suffix(4096), as: UTF8.self)
    return (status, err)
}

/// Every case of the hostile corpus ends in a clear error (exit 65, 70 or 74 with a message that
/// names the problem), never a crash, a trap, an allocation failure or a silent success.
@Test(.enabled(if: FileManager.default.isExecutableFile(atPath: mpqExecutable)), .timeLimit(.minutes(10)))
func hostileCorpusEndsInErrors() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-hostile-\(getpid())")
    defer { try? FileManager.default.removeItem(at: dir) }
    let gen = Process()
    gen.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    gen.arguments = ["python3", repositoryRoot.appendingPathComponent("scripts/gen-hostile.py").path, dir.path,
                     repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/reference").path]
    try gen.run(); gen.waitUntilExit()
    try #require(gen.terminationStatus == 0, "scripts/gen-hostile.py failed")
    let cases = try JSONDecoder().decode([HostileCase].self, from: Data(contentsOf: dir.appendingPathComponent("cases.json")))
    let scratch = dir.appendingPathComponent("scratch")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)

    var results = [(status: Int32, err: String, seconds: Double)](repeating: (-1, "", 0), count: cases.count)
    let lock = NSLock()
    DispatchQueue.concurrentPerform(iterations: cases.count) { i in
        let c = cases[i]
        if let setup = c.setup, setup.hasPrefix("fifo:") {
            _ = mkfifo(dir.appendingPathComponent(String(setup.dropFirst(5))).path, 0o600)
        }
        let start = Date()
        let outcome: (Int32, String, Double)
        do {
            let (status, err) = try runConfined(c.args, stdin: c.stdin, env: c.env, scratch: scratch, tag: "\(i)")
            outcome = (status, err, Date().timeIntervalSince(start))
        } catch {
            outcome = (-1, "\(error)", 0)
        }
        lock.lock(); results[i] = outcome; lock.unlock()
    }
    var clean = 0
    for (i, c) in cases.enumerated() {
        let (status, err, seconds) = results[i]
        let lastLine = err.split(separator: "\n").last.map(String.init) ?? ""
        let ok = c.status.contains(status) && (status == 0 || (err.lowercased().contains("error") && (c.expect.isEmpty || err.contains(c.expect))))
            && !err.contains("Fatal error") && !err.contains("Illegal instruction") && !err.contains("Stack dump")
            && !err.contains("unknown name")  // a case that misspells a builtin tests nothing
        if ok { clean += 1 }
        #expect(ok, "\(c.name): exit \(status) after \(String(format: "%.1f", seconds)) s, expected \(c.status) with '\(c.expect)'; stderr: \(err.prefix(600))\(err.count > 600 ? "… " + lastLine : "")")
    }
    print("hostile corpus: \(clean) of \(cases.count) cases ended in a clear error")
    // The FIFO is still a FIFO: a save never renames a regular file over it.
    if let fifoCase = cases.first(where: { $0.setup?.hasPrefix("fifo:") == true }), let rel = fifoCase.setup?.dropFirst(5) {
        var st = stat()
        #expect(lstat(dir.appendingPathComponent(String(rel)).path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFIFO,
                "the save replaced the FIFO")
    }
}
