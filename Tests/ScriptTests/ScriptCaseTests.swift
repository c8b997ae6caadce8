import Foundation
import Testing
import Script

/// Language tests as .mpq files (Crafting Interpreters style): `# expect: TEXT` lines give the
/// output in order; `# expect error: TEXT` says the program fails with a message containing
/// TEXT. A file holds several programs separated by `# ---`, each run in a fresh interpreter.
struct ScriptCase: CustomStringConvertible, Sendable {
    var file: String
    var index: Int
    var source: String
    var firstLine: Int
    var description: String { "\(file) #\(index + 1) (line \(firstLine))" }
}

let casesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("cases")

let scriptCases: [ScriptCase] = {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: casesDirectory.path))?.filter { $0.hasSuffix(".mpq") }.sorted() ?? []
    var out: [ScriptCase] = []
    for f in files {
        let text = (try? String(contentsOf: casesDirectory.appendingPathComponent(f), encoding: .utf8)) ?? ""
        var chunk: [String] = [], start = 1, line = 0, index = 0
        for l in text.split(separator: "\n", omittingEmptySubsequences: false) {
            line += 1
            if l.hasPrefix("# ---") {
                out.append(ScriptCase(file: f, index: index, source: chunk.joined(separator: "\n"), firstLine: start))
                chunk = []; start = line + 1; index += 1
            } else {
                chunk.append(String(l))
            }
        }
        if chunk.contains(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            out.append(ScriptCase(file: f, index: index, source: chunk.joined(separator: "\n"), firstLine: start))
        }
    }
    return out
}()

/// Runs `source` from the repository root (scripts name ../shared/reference relative to it).
func runCase(_ source: String) -> (output: [String], error: String?) {
    var lines: [String] = []
    let interp = Interpreter { lines.append(contentsOf: $0.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)) }
    let root = casesDirectory.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    _ = FileManager.default.changeCurrentDirectoryPath(root.path)
    do {
        try interp.run(source)
        return (lines, nil)
    } catch let e as ScriptError {
        return (lines, e.render(source: source, file: "case"))
    } catch {
        return (lines, "\(error)")
    }
}

@Test(arguments: scriptCases)
func scriptCase(_ c: ScriptCase) {
    let expected = c.source.split(separator: "\n").compactMap { l -> String? in
        guard let r = l.range(of: "# expect: ") else { return nil }
        return String(l[r.upperBound...])
    }
    let expectedError = c.source.split(separator: "\n").compactMap { l -> String? in
        guard let r = l.range(of: "# expect error: ") else { return nil }
        return String(l[r.upperBound...])
    }.first
    let (output, error) = runCase(c.source)
    #expect(output == expected, "\(c)")
    if let expectedError {
        #expect(error?.contains(expectedError) == true, "\(c): expected an error containing “\(expectedError)”, got \(error ?? "no error")")
    } else {
        #expect(error == nil, "\(c): \(error ?? "")")
    }
}

@Test func everyCaseFileWasFound() { #expect(scriptCases.count >= 20) }
