extension Interpreter {
    /// The reference page: every builtin by category, from its declaration.
    public func referenceMarkdown() -> String {
        var out = "# mpq builtins\n\nGenerated from the builtin declarations (`mpq doc`).\n"
        for c in Builtins.categories {
            out += "\n## \(c)\n"
            for b in declarations where b.category == c {
                out += "\n### `\(b.name)`\n\n```\n\(b.signature)\n```\n\n\(b.summary)\n"
                if !b.examples.isEmpty {
                    out += "\n```\n" + b.examples.map { $0.code + ($0.result.map { "   # → \($0)" } ?? "") }.joined(separator: "\n") + "\n```\n"
                }
            }
        }
        if !stdlibFunctions.isEmpty {
            out += "\n## stdlib\n\nFunctions written in mpq itself (`stdlib/*.mpq`), loaded before every script; their help is the comment above each.\n"
            for f in stdlibFunctions {
                out += "\n### `\(f.name)`\n\n```\n\(f.signature)\n```\n\n\(f.summary) (stdlib/\(f.file))\n"
                if !f.examples.isEmpty {
                    out += "\n```\n" + f.examples.map { $0.code + ($0.result.map { "   # → \($0)" } ?? "") }.joined(separator: "\n") + "\n```\n"
                }
            }
        }
        return out
    }
}
