import Foundation
import Testing
import Script

/// A fresh interpreter with the checkout's stdlib loaded.
func stdlibInterpreter() throws -> Interpreter {
    let interp = Interpreter { _ in }
    try interp.loadStdlib(directory: repositoryRoot.appendingPathComponent("stdlib").path)
    return interp
}

/// Every stdlib function is documented by the comment above it (summary and examples), and
/// help, the reference page and the example runner all read that one place.
@Test func everyStdlibFunctionHasHelp() throws {
    let interp = try stdlibInterpreter()
    let functions = interp.stdlibFunctions
    #expect(functions.map(\.name).contains("hawq_v3") && functions.map(\.name).contains("zeroq"))
    // Every top-level `fn` of every stdlib file is documented (a signature the reader cannot
    // parse would silently lose its help and examples).
    let dir = repositoryRoot.appendingPathComponent("stdlib").path
    let declared = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".mpq") }.flatMap { f in
        try String(contentsOfFile: dir + "/" + f, encoding: .utf8).split(separator: "\n").filter { $0.hasPrefix("fn ") }
            .map { String($0.dropFirst(3).prefix { $0 != "(" }) }
    }
    #expect(Set(declared) == Set(functions.map(\.name)), "undocumented: \(Set(declared).subtracting(functions.map(\.name)))")
    for f in functions {
        #expect(!f.summary.isEmpty, "stdlib function '\(f.name)' has no comment above it")
        #expect(!f.examples.isEmpty, "stdlib function '\(f.name)' has no example")
        #expect(try interp.helpText(for: .string(f.name), at: nil) == f.help)
        #expect(f.help.contains(f.signature))
    }
    // help on the function value itself (what `?hawq_v3` shows) prints the same text.
    var printed = ""
    let talking = Interpreter { printed += $0 }
    try talking.loadStdlib(directory: repositoryRoot.appendingPathComponent("stdlib").path)
    _ = try talking.run("help(hawq_v3)")
    #expect(printed.hasPrefix("hawq_v3(model, data, size: nil"), "\(printed)")
    #expect(try interp.helpText(for: .null, at: nil).contains("stdlib/methods.mpq: policy_report"))
    #expect(interp.referenceMarkdown().contains("### `mpqnnco`"))
}

/// Every example in the stdlib's comments runs, and those that state a result show it.
@Test(arguments: try stdlibInterpreter().stdlibFunctions.flatMap { f in f.examples.map { "\(f.name)|\($0.code)|\($0.result ?? "")" } })
func stdlibExampleRuns(_ encoded: String) throws {
    let parts = encoded.split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
    let (name, code, result) = (parts[0], parts[1], parts[2])
    let interp = try stdlibInterpreter()
    _ = FileManager.default.changeCurrentDirectoryPath(repositoryRoot.path)
    let shown: Value?
    do { shown = try interp.run(code, show: true) } catch {
        Issue.record("example of '\(name)' failed: \(code)\n\(error)")
        return
    }
    if !result.isEmpty { #expect(shown?.shown == result, "example of '\(name)': \(code)") }
}
