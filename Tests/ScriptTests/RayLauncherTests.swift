import Foundation
import Testing
import TestSupport

/// Runs a command (through /usr/bin/env) in the repository; its status and output.
private func shell(_ arguments: [String]) throws -> (status: Int32, out: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = arguments
    p.currentDirectoryURL = repositoryRoot
    let out = Pipe()
    p.standardOutput = out; p.standardError = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// The samples of a cache file as a set of (widths, accuracy), and its key.
private func cacheContents(_ path: String) throws -> (key: String, samples: Set<String>) {
    let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
    let samples = (json["samples"] as! [[String: Any]]).map { "\($0["bits"] as! [Int]) \($0["accuracy"] as! Double)" }
    return (json["key"] as! String, Set(samples))
}

/// The Ray launcher (scripts/ray-samples.py) against a local `ray start --head` on 127.0.0.1:
/// three shards measured as Ray tasks and merged by mpq give exactly the cache the local pool
/// writes for the same policies (same key, same widths, same accuracies).
@Test(.enabled(if: FileManager.default.isExecutableFile(atPath: mpqExecutable)), .timeLimit(.minutes(5)))
func rayLauncherFillsTheSameCacheAsTheLocalPool() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-ray-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let setup = """
        m = load("\(referenceDirectory)/fmnist_mlp.npz", into: zoo("mlp"))
        validation = fashion_mnist(split: "train", limit: 300)
        calibration = split(fashion_mnist(split: "train", limit: 800), 0.5, seed: 1).validation
        """
    try setup.write(to: dir.appendingPathComponent("setup.mpq"), atomically: true, encoding: .utf8)
    let policies = [[2, 4, 8], [3, 3, 3], [8, 2, 6], [5, 6, 2], [4, 4, 4], [2, 2, 2], [6, 8, 5]]
    try JSONSerialization.data(withJSONObject: policies).write(to: dir.appendingPathComponent("policies.json"))
    let local = dir.appendingPathComponent("local.json").path, remote = dir.appendingPathComponent("ray.json").path
    let script = dir.appendingPathComponent("local.mpq")
    try (setup + "\nsamples(m, validation, policies: \(policies), calibration: calibration, cache: \"\(local)\")\n")
        .write(to: script, atomically: true, encoding: .utf8)
    let l = try runMPQ([script.path])
    #expect(l.status == 0, "\(l.err)")

    let port = 20000 + Int(getpid() % 20000)
    let start = try shell(["ray", "start", "--head", "--node-ip-address=127.0.0.1", "--port=\(port)", "--num-cpus=2",
                           "--include-dashboard=false", "--disable-usage-stats"])
    defer { _ = try? shell(["ray", "stop", "--force"]) }
    #expect(start.status == 0, "ray start: \(start.out.suffix(1500)) — scripts/setup installs ray")
    let r = try shell(["python3", "scripts/ray-samples.py", "--setup", dir.appendingPathComponent("setup.mpq").path,
                       "--policies", dir.appendingPathComponent("policies.json").path, "--cache", remote,
                       "--address", "127.0.0.1:\(port)", "--shards", "3"])
    #expect(r.status == 0, "\(r.out.suffix(2000))")
    let a = try cacheContents(local), b = try cacheContents(remote)
    #expect(a.key == b.key && a.samples.count == policies.count && a.samples == b.samples, "local \(a.samples.sorted())\nray \(b.samples.sorted())")
}
