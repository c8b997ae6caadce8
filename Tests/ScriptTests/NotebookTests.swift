import Foundation
import Testing
import Script

let repositoryRoot = casesDirectory.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// An interpreter with the stdlib loaded, as `mpq` starts one.
func sessionInterpreter(output: @escaping (String) -> Void = { _ in }) throws -> Interpreter {
    let interp = Interpreter(output: output)
    try interp.loadStdlib(directory: repositoryRoot.appendingPathComponent("stdlib").path)
    return interp
}

let tutorialFiles: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: repositoryRoot.appendingPathComponent("tutorials").path)) ?? [])
    .filter { $0.hasSuffix(".mpq") }.sorted()

/// Every tutorial renders with no cell failing (the test command's promise about tutorials).
@Test(.serialized, arguments: tutorialFiles)
func tutorialRunsWithoutErrors(_ name: String) throws {
    _ = FileManager.default.changeCurrentDirectoryPath(repositoryRoot.path)
    let path = repositoryRoot.appendingPathComponent("tutorials/\(name)").path
    var nb = Notebook(source: try String(contentsOfFile: path, encoding: .utf8))
    let failures = nb.run(in: try sessionInterpreter(), file: "tutorials/\(name)")
    #expect(failures == 0, "\(nb.cells.compactMap(\.error).joined(separator: "\n"))")
    // The .ipynb is nbformat 4 with an id per cell and outputs on code cells.
    let json = try JSONSerialization.jsonObject(with: try nb.ipynb()) as! [String: Any]
    #expect(json["nbformat"] as? Int == 4)
    let cells = json["cells"] as! [[String: Any]]
    #expect(cells.count == nb.cells.count)
    for c in cells {
        #expect(c["id"] is String && c["source"] is [String])
        if c["cell_type"] as? String == "code" { #expect(c["outputs"] is [[String: Any]] && c["execution_count"] is Int) }
    }
}

@Test func notebookSplitsCellsAndKeepsErrors() throws {
    let source = """
        # %% [markdown]
        # # Title
        # text
        # %%
        x = 2
        x * 3
        # %%
        undefined_name
        # %%
        print(x)
        """
    var nb = Notebook(source: source)
    #expect(nb.cells.map(\.kind) == [.markdown, .code, .code, .code])
    #expect(nb.cells[0].source == "# Title\ntext")
    let failures = nb.run(in: Interpreter(), file: "nb.mpq")
    #expect(failures == 1)
    #expect(nb.cells[1].output == ["6"])
    #expect(nb.cells[2].error?.contains("nb.mpq:8:1") == true)
    #expect(nb.cells[3].output == ["2"])
    #expect(nb.markdown().contains("```mpq\nx = 2"))
    #expect(nb.html(title: "t").contains("<h1>Title</h1>"))
}

/// Markdown cells reach HTML through cmark: lists, emphasis, code, links; raw HTML (a script)
/// is left out.
@Test func notebookHTMLRendersCommonMark() throws {
    let nb = Notebook(source: "# %% [markdown]\n# ## Steps\n# - *one* and `two`\n# - [three](https://onnx.ai)\n#\n# <script>alert(1)</script>\n# %%\n1 + 1")
    let html = nb.html(title: "t")
    for part in ["<h2>Steps</h2>", "<ul>", "<li><em>one</em> and <code>two</code></li>", "<a href=\"https://onnx.ai\">three</a>"] {
        #expect(html.contains(part), "missing \(part) in \(html)")
    }
    #expect(!html.contains("<script>"))
}

/// An .ipynb reads back into the same cells (outputs dropped, raw cells skipped), the
/// percent form of those cells reads back into them too, the written notebook names no
/// kernel that does not exist, and malformed notebooks are refused naming the cell.
@Test func ipynbRoundTrips() throws {
    var nb = Notebook(source: "# %% [markdown]\n# # Title\n#\n# text\n# %%\nx = 2\nprint(x * 3)\n# %%\nplot([1, 2])")
    #expect(nb.run(in: Interpreter(), file: "nb.mpq") == 0)
    let data = try nb.ipynb()
    let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
    #expect((json["metadata"] as? [String: Any])?["kernelspec"] == nil)
    let back = try Notebook(ipynb: data)
    #expect(back.cells.map(\.kind) == nb.cells.map(\.kind) && back.cells.map(\.source) == nb.cells.map(\.source))
    #expect(back.cells.allSatisfy { $0.output.isEmpty && $0.images.isEmpty })
    let again = Notebook(source: back.percent())
    #expect(again.cells.map(\.kind) == nb.cells.map(\.kind) && again.cells.map(\.source) == nb.cells.map(\.source))
    let raw = #"{"nbformat": 4, "cells": [{"cell_type": "raw", "source": "x"}, {"cell_type": "code", "source": "1 + 2\n"}]}"#
    #expect(try Notebook(ipynb: Data(raw.utf8)).cells.map(\.source) == ["1 + 2"])
    for (bad, says) in [("not json", "not a JSON document"), (#"{"cells": 3}"#, "\"cells\" list"), (#"{"nbformat": 3, "cells": []}"#, "nbformat 3"),
                        (#"{"cells": [{"cell_type": "code", "source": 5}]}"#, "cell 1"), (#"{"cells": [{"cell_type": "widget"}]}"#, "unknown cell_type")] {
        do { _ = try Notebook(ipynb: Data(bad.utf8), file: "b.ipynb"); Issue.record("accepted \(bad)") }
        catch { #expect("\(error)".contains(says) && "\(error)".contains("b.ipynb"), "\(error)") }
    }
}

/// Long work in a notebook leaves its finished progress lines in the cell (one per epoch, then
/// the summary), not on the terminal.
@Test func notebookCellsKeepProgressSummaries() throws {
    var nb = Notebook(source: "# %%\nm = zoo(\"mlp\")\nr = train(m, fashion_mnist(split: \"train\", limit: 64), epochs: 2, batch: 32)\nprint(r.epochs)")
    #expect(nb.run(in: Interpreter(), file: "p.mpq") == 0)
    let out = nb.cells[0].output
    #expect(out.last == "2" && out.filter { $0.hasPrefix("epoch ") }.count == 2, "\(out)")
}

@Test func plotsBecomeSVGInNotebooksAndTextAtThePrompt() throws {
    var nb = Notebook(source: "# %%\nplot([1, 2, 4], title: \"t\")\nscatter([3, 1], xs: [0, 1])")
    #expect(nb.run(in: Interpreter(), file: "p.mpq") == 0)
    #expect(nb.cells[0].images.count == 2 && nb.cells[0].images[0].hasPrefix("<svg"))
    let json = String(decoding: try nb.ipynb(), as: UTF8.self)
    #expect(json.contains("svg+xml"))
    var out: [String] = []
    try Interpreter { out.append($0) }.run("plot([1, 2, 4])", show: true)
    #expect(out.first?.contains("┤") == true)
    #expect(throws: ScriptError.self) { try Interpreter().run("plot([1, 2], xs: [1])") }
}

@Test func stdlibFunctionsWork() throws {
    var out: [String] = []
    let interp = try sessionInterpreter { out.append($0) }
    try interp.run("print(average([1, 2, 3, 6]))")
    #expect(out == ["3"])
}

@Test func completionOffersNamesAndFields() throws {
    let interp = Interpreter()
    try interp.run("model = zoo(\"mlp\")\nrec = {alpha: 1, beta: {gamma: 2}}")
    #expect(interp.completions(for: "zer") == ["zeros"])
    #expect(interp.completions(for: "mod").contains("model"))
    #expect(interp.completions(for: "model.lay") == ["model.layers"])
    // Inside a string argument with declared options, Tab offers them.
    #expect(interp.choiceCompletions(before: "p = search(s, solver: \"gr") == ["greedy"])
    #expect(interp.choiceCompletions(before: "sensitivity(m, d, metric: \"") == ["hessian", "hawq", "fisher", "kl", "mpqnnco", "mse", "accuracy"])
    #expect(interp.choiceCompletions(before: "policy(m, bits: [2, 4], activation_sign: \"un") == ["unsigned"])
    #expect(interp.choiceCompletions(before: "print(\"gr") == nil)
    #expect(interp.choiceCompletions(before: "search(s, solver: 3") == nil)
    #expect(interp.completions(for: "rec.beta.g") == ["rec.beta.gamma"])
    #expect(interp.completions(for: "nothing.x").isEmpty)
}

/// An error inside a stdlib function names the stdlib file, line and text, then the caller's
/// place in the user's script.
@Test func stdlibErrorsNameTheStdlibFile() throws {
    let interp = try sessionInterpreter()
    let source = "m = zoo(\"mlp\")\nhawq_v3(m, 3)"
    do { _ = try interp.run(source); Issue.record("no error") } catch let e as ScriptError {
        let text = e.render(source: source, file: "user.mpq")
        #expect(text.contains("--> stdlib/methods.mpq:"), "\(text)")
        #expect(text.contains("sensitivity(model, data"), "\(text)")
        #expect(text.contains("called from 'hawq_v3' at user.mpq:2:1"), "\(text)")
    }
}
