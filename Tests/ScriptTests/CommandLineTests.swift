import Foundation
import Testing
import Script

/// The built `mpq` executable (the test command builds it before testing).
let mpqExecutable = repositoryRoot.appendingPathComponent(".build/release/mpq").path

func runMPQ(_ arguments: [String], stdin: String? = nil, in directory: URL = repositoryRoot, environment: [String: String] = [:]) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: mpqExecutable)
    p.arguments = arguments
    p.currentDirectoryURL = directory
    if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let out = Pipe(), err = Pipe(), input = Pipe()
    p.standardOutput = out; p.standardError = err; p.standardInput = input
    try p.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

@Test(.enabled(if: FileManager.default.isExecutableFile(atPath: mpqExecutable)))
func exitStatusesAndModes() throws {
    var r = try runMPQ(["-e", "1 + 1"])
    #expect(r.status == 0 && r.out == "2\n")
    r = try runMPQ(["-e", "x = (1 +"])
    #expect(r.status == 65 && r.err.contains("error: expected an expression"))
    r = try runMPQ(["-e", "zeros(\"a\")"])
    #expect(r.status == 70 && r.err.contains("expected List of integers (a shape) for argument 1 of 'zeros', got String"))
    r = try runMPQ(["/nonexistent/script.mpq"])
    #expect(r.status == 74)
    r = try runMPQ([], stdin: "print(\"from stdin\", average([2, 4]))\n")
    #expect(r.status == 0 && r.out == "from stdin 3\n")
    let script = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-args-\(getpid()).mpq")
    try "print(args)\n".write(to: script, atomically: true, encoding: .utf8)
    r = try runMPQ([script.path, "a", "b"])
    #expect(r.out == "[\"a\", \"b\"]\n")
    r = try runMPQ(["doc"])
    #expect(r.status == 0 && r.out.contains("### `fashion_mnist`"))
}

/// `../shared/…` resolves from any working directory: beside the executable's project, or from
/// MPQ_SHARED when set.
@Test func sharedPathsResolveFromAnyDirectory() throws {
    let elsewhere = FileManager.default.temporaryDirectory
    let found = try runMPQ(["run", "-e", "load(\"../shared/reference/fmnist_cnn.onnx\").name"], in: elsewhere)
    #expect(found.status == 0 && found.out.contains("fmnist_cnn"), "\(found.err)")
    let redirected = try runMPQ(["run", "-e", "load(\"../shared/reference/fmnist_cnn.onnx\").name"], in: elsewhere, environment: ["MPQ_SHARED": "/nonexistent"])
    #expect(redirected.status != 0 && redirected.err.contains("/nonexistent/reference/fmnist_cnn.onnx"))
}

/// An image folder (PNG and JPEG class folders from scripts/gen-image-data.py) through the
/// whole path at the prompt: load_dataset → zoo CNN shaped for it → train → evaluate →
/// Hessian sensitivity → search → integer engine → QDQ export → the export loaded back gives
/// the engine's accuracy.
@Test func imageFolderGoesThroughTheWholePath() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-folder-path-\(getpid())").path
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let gen = Process()
    gen.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    gen.arguments = ["python3", repositoryRoot.appendingPathComponent("scripts/gen-image-data.py").path, dir]
    gen.standardOutput = FileHandle.nullDevice
    try gen.run(); gen.waitUntilExit()
    try #require(gen.terminationStatus == 0, "scripts/gen-image-data.py failed (needs Pillow: scripts/setup)")
    var out: [String] = []
    let interp = try sessionInterpreter { out.append($0) }
    try interp.run("""
        d = load_dataset("\(dir)/folder")
        print(d.shape, d.count, d.classes)
        s = split(d, 0.75, seed: 2)
        m = zoo("cnn", input: d.shape, classes: d.classes)
        r = train(m, s.train, epochs: 2, batch: 9)
        print(evaluate(m, s.validation) >= 0)
        t = sensitivity(m, s.train, bits: [4, 8])
        p = search(t, average_bits: 6)
        q = integer_model(m, policy(m, bits: p.bits, activation_bits: 8), calibration: s.train)
        e = export(q, "\(dir)/q.onnx")
        back = load("\(dir)/q.onnx")
        print(evaluate(back, s.validation) == evaluate(q, s.validation), e.bytes > 1000, p.average_bits <= 6)
        """)
    #expect(out == ["[3, 32, 32] 36 3", "true", "true true true"])
}
