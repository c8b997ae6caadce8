import Foundation
import CCmark

/// Notebooks in the percent format of Jupytext and VS Code: `# %%` starts a code cell,
/// `# %% [markdown]` a markdown cell whose lines start with `# `. Running one executes every
/// code cell in order in one interpreter, keeping each cell's output (an error stops that cell,
/// not the notebook).
public struct Notebook {
    public enum Kind: Sendable { case code, markdown }

    public struct Cell: Sendable {
        public var kind: Kind
        public var source: String
        /// Line of the cell's first source line in the file.
        public var firstLine: Int
        public var output: [String] = []
        /// Plots the cell showed, as SVG.
        public var images: [String] = []
        public var error: String?
    }

    public var cells: [Cell]

    /// Splits a percent-format script into cells (text before the first marker is a code cell).
    public init(source: String) {
        var cells: [Cell] = []
        var kind = Kind.code, lines: [String] = [], start = 1
        func flush() {
            var body = lines
            while body.first?.trimmingCharacters(in: .whitespaces).isEmpty == true { body.removeFirst(); start += 1 }
            while body.last?.trimmingCharacters(in: .whitespaces).isEmpty == true { body.removeLast() }
            if body.isEmpty { return }
            if kind == .markdown {
                body = body.map { $0.hasPrefix("# ") ? String($0.dropFirst(2)) : $0 == "#" ? "" : $0 }
            }
            cells.append(Cell(kind: kind, source: body.joined(separator: "\n"), firstLine: start))
        }
        for (n, line) in source.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.hasPrefix("# %%") {
                flush()
                kind = line.contains("[markdown]") || line.contains("[md]") ? .markdown : .code
                lines = []
                start = n + 2
            } else {
                lines.append(String(line))
            }
        }
        flush()
        self.cells = cells
    }

    /// Reads a Jupyter notebook (nbformat 4): its markdown and code cells in order, outputs
    /// dropped (running the notebook makes them again), raw cells skipped. Errors name the
    /// cell and what was expected.
    public init(ipynb data: Data, file: String = "notebook.ipynb") throws {
        func fail(_ what: String) -> ScriptError { .runtime("\(file): \(what)") }
        guard let json = try? JSONSerialization.jsonObject(with: data) else { throw fail("not a JSON document: expected a Jupyter notebook (.ipynb)") }
        guard let top = json as? [String: Any], let list = top["cells"] as? [Any] else {
            throw fail("expected a Jupyter notebook: a JSON object with a \"cells\" list")
        }
        if let format = top["nbformat"] as? Int, format != 4 { throw fail("nbformat \(format) is not supported; expected 4") }
        var cells: [Cell] = [], line = 1
        for (i, item) in list.enumerated() {
            guard let c = item as? [String: Any], let type = c["cell_type"] as? String else {
                throw fail("cell \(i + 1): expected an object with a \"cell_type\"")
            }
            let source: String
            switch c["source"] {
            case let parts as [String]: source = parts.joined()
            case let text as String: source = text
            case nil: source = ""
            default: throw fail("cell \(i + 1): expected \"source\" to be a string or a list of strings")
            }
            let kind: Kind
            switch type {
            case "code": kind = .code
            case "markdown": kind = .markdown
            case "raw": continue
            default: throw fail("cell \(i + 1): unknown cell_type \"\(type)\"; expected code, markdown or raw")
            }
            let trimmed = source.hasSuffix("\n") ? String(source.dropLast()) : source
            cells.append(Cell(kind: kind, source: trimmed, firstLine: line))
            line += trimmed.split(separator: "\n", omittingEmptySubsequences: false).count + 1
        }
        self.cells = cells
    }

    /// The percent-format script of these cells (`# %%`, `# %% [markdown]` with `# ` lines):
    /// what `init(source:)` reads back, so an .ipynb converts to an .mpq and back.
    public func percent() -> String {
        cells.map { cell in
            switch cell.kind {
            case .code: return "# %%\n" + cell.source
            case .markdown:
                return "# %% [markdown]\n" + cell.source.split(separator: "\n", omittingEmptySubsequences: false)
                    .map { $0.isEmpty ? "#" : "# " + $0 }.joined(separator: "\n")
            }
        }.joined(separator: "\n\n") + "\n"
    }

    /// Runs every code cell; returns how many failed.
    @discardableResult
    public mutating func run(in interpreter: Interpreter, file: String) -> Int {
        var failures = 0
        let saved = interpreter.output, savedSink = interpreter.progressSink
        defer { interpreter.output = saved; interpreter.progressSink = savedSink }
        for i in cells.indices where cells[i].kind == .code {
            var captured: [String] = [], images: [String] = []
            interpreter.output = { captured.append($0) }
            // Progress becomes its finished lines in the cell (no terminal rewriting in a file).
            interpreter.progressSink = { line, done in if done { captured.append(line) } }
            interpreter.display = { value in
                guard case .plot(let p) = value else { return false }
                images.append(p.svg())
                return true
            }
            defer { interpreter.display = nil }
            do {
                try interpreter.run(cells[i].source, show: true,
                                    startingAt: SourceLocation(line: cells[i].firstLine, column: 1, offset: 0))
            } catch let e as ScriptError {
                // Render against the whole file so line numbers point into it.
                let padded = String(repeating: "\n", count: cells[i].firstLine - 1) + cells[i].source
                cells[i].error = e.render(source: padded, file: file)
                failures += 1
            } catch {
                cells[i].error = "error: \(error)"
                failures += 1
            }
            cells[i].output = captured
            cells[i].images = images
        }
        return failures
    }

    // MARK: Writers

    /// nbformat 4.5 JSON with outputs, so Jupyter and VS Code open it with results shown.
    public func ipynb() throws -> Data {
        func lines(_ s: String) -> [String] {
            let parts = s.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            return parts.enumerated().map { $0.offset < parts.count - 1 ? $0.element + "\n" : $0.element }
        }
        var count = 0
        let json: [[String: Any]] = cells.enumerated().map { index, cell in
            var c: [String: Any] = ["id": "cell-\(index + 1)", "metadata": [String: Any](), "source": lines(cell.source)]
            switch cell.kind {
            case .markdown:
                c["cell_type"] = "markdown"
            case .code:
                count += 1
                c["cell_type"] = "code"
                c["execution_count"] = count
                var outputs: [[String: Any]] = []
                if !cell.output.isEmpty {
                    outputs.append(["output_type": "stream", "name": "stdout", "text": lines(cell.output.joined(separator: "\n") + "\n")])
                }
                for svg in cell.images {
                    outputs.append(["output_type": "display_data", "metadata": [String: Any](),
                                    "data": ["image/svg+xml": lines(svg), "text/plain": ["<Plot>"]]])
                }
                if let error = cell.error {
                    let first = error.split(separator: "\n").first.map(String.init) ?? error
                    outputs.append(["output_type": "error", "ename": "ScriptError", "evalue": first,
                                    "traceback": error.split(separator: "\n").map(String.init)])
                }
                c["outputs"] = outputs
            }
            return c
        }
        let notebook: [String: Any] = [
            "cells": json,
            // No kernelspec: there is no mpq Jupyter kernel, and naming one that does not exist
            // makes Jupyter ask for it. The outputs are already in the file.
            "metadata": ["language_info": ["name": "mpq", "file_extension": ".mpq"]],
            "nbformat": 4, "nbformat_minor": 5,
        ]
        return try JSONSerialization.data(withJSONObject: notebook, options: [.prettyPrinted, .sortedKeys])
    }

    public func markdown() -> String {
        cells.map { cell in
            switch cell.kind {
            case .markdown: return cell.source
            case .code:
                var out = "```mpq\n\(cell.source)\n```"
                let text = (cell.output + (cell.error.map { [$0] } ?? [])).joined(separator: "\n")
                if !text.isEmpty { out += "\n\n```\n\(text)\n```" }
                for svg in cell.images { out += "\n\n" + svg }
                return out
            }
        }.joined(separator: "\n\n") + "\n"
    }

    public func html(title: String) -> String {
        func escape(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        /// CommonMark through cmark (headings, lists, code, emphasis, links); raw HTML in a
        /// cell is left out (cmark's safe default), so a notebook cannot inject script.
        func markdownBlock(_ s: String) -> String {
            let utf8 = Array(s.utf8)
            guard let html = cmark_markdown_to_html(utf8.map { CChar(bitPattern: $0) }, utf8.count, CMARK_OPT_DEFAULT) else { return "<p>\(escape(s))</p>" }
            defer { free(html) }
            return String(cString: html)
        }
        var body = ""
        for cell in cells {
            switch cell.kind {
            case .markdown: body += "<section class=\"md\">\n\(markdownBlock(cell.source))\n</section>\n"
            case .code:
                body += "<pre class=\"code\">\(escape(cell.source))</pre>\n"
                if !cell.output.isEmpty { body += "<pre class=\"out\">\(escape(cell.output.joined(separator: "\n")))</pre>\n" }
                for svg in cell.images { body += "<div class=\"plot\">\(svg)</div>\n" }
                if let e = cell.error { body += "<pre class=\"err\">\(escape(e))</pre>\n" }
            }
        }
        return """
            <!DOCTYPE html>
            <html><head><meta charset="utf-8"><title>\(escape(title))</title>
            <style>body{font-family:sans-serif;max-width:60em;margin:2em auto}pre{padding:.6em;border-radius:4px;overflow-x:auto}
            .code{background:#f4f4f4}.out{background:#fff;border-left:3px solid #8a8}.err{background:#fee;border-left:3px solid #c44}</style>
            </head><body>
            \(body)</body></html>

            """
    }
}
