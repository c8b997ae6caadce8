import ArgumentParser
import Tensors

@main
struct MPQ: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mpq",
        abstract: "A workbench for mixed-precision quantization of neural networks.",
        version: "0.1.0")
    func run() throws {
        print("mpq 0.1.0 — the language and REPL are not built yet; run scripts/bench for the kernels.")
    }
}
