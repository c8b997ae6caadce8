import Foundation
import Testing
import Script

/// Every example in every builtin's declaration runs, and those that state a result show it.
@Test(arguments: Interpreter().declarations.flatMap { b in b.examples.map { (b.name, $0.code, $0.result) } }.map { "\($0.0)|\($0.1)|\($0.2 ?? "")" })
func builtinExampleRuns(_ encoded: String) {
    let parts = encoded.split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
    let (name, code, result) = (parts[0], parts[1], parts[2])
    var shown: Value? = nil
    let interp = Interpreter { _ in }
    let root = casesDirectory.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    _ = FileManager.default.changeCurrentDirectoryPath(root.path)
    do {
        shown = try interp.run(code, show: true)
    } catch {
        Issue.record("example of '\(name)' failed: \(code)\n\(error)")
        return
    }
    if !result.isEmpty { #expect(shown?.shown == result, "example of '\(name)': \(code)") }
}

@Test func everyBuiltinHasHelpAndACategory() {
    let interp = Interpreter()
    for b in interp.declarations {
        #expect(!b.summary.isEmpty, "\(b.name)")
        #expect(!b.examples.isEmpty, "\(b.name) has no example")
        #expect(Builtins.categories.contains(b.category), "\(b.name)")
        #expect(b.help.contains(b.signature))
    }
    #expect(interp.referenceMarkdown().contains("### `zeros`"))
    // One declaration per name: a second would silently replace the first.
    let names = Builtins.all.map(\.name)
    #expect(Set(names).count == names.count, "declared twice: \(Dictionary(grouping: names, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted())")
}
