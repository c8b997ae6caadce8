import Foundation

/// The library written in the language itself (`stdlib/*.mpq`), loaded before the user's code.
public enum Stdlib {
    /// Where the stdlib is: $MPQ_STDLIB, else `stdlib/` of the checkout the executable was built
    /// in (…/.build/release/mpq → …/stdlib), else beside the executable.
    public static func directory(executable: String = CommandLine.arguments.first ?? "") -> String? {
        if let env = ProcessInfo.processInfo.environment["MPQ_STDLIB"], !env.isEmpty { return env }
        let exe = URL(fileURLWithPath: executable).resolvingSymlinksInPath().deletingLastPathComponent()
        for candidate in [exe.appendingPathComponent("../../../stdlib"), exe.appendingPathComponent("../../stdlib"),
                          exe.appendingPathComponent("stdlib"), exe.appendingPathComponent("../share/mpq/stdlib")] {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDir), isDir.boolValue {
                return candidate.standardizedFileURL.path
            }
        }
        return nil
    }
}

extension Interpreter {
    /// Runs every `*.mpq` in `directory` in name order; their functions become globals.
    public func loadStdlib(directory: String) throws {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory))?.filter { $0.hasSuffix(".mpq") }.sorted() ?? []
        for f in files {
            let path = directory + "/" + f
            guard let source = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ScriptError(kind: .io, message: "cannot read stdlib file \(path)", location: nil)
            }
            let id = SourceFiles.register(name: "stdlib/\(f)", text: source)
            do { try run(source, startingAt: SourceLocation(line: 1, column: 1, offset: 0, source: id)) } catch let e as ScriptError {
                throw ScriptError(kind: e.kind, message: "in stdlib \(f): " + e.render(source: source, file: path), location: nil)
            }
            stdlibFunctions += Stdlib.documentation(of: source, file: f)
        }
    }
}
