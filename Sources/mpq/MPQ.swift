import ArgumentParser
import Dispatch
import Foundation
import Kernels
import Network
import Script
import Tensors
import Runtime

@main
struct MPQ: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mpq",
        abstract: "A workbench for mixed-precision quantization of neural networks.",
        discussion: """
            mpq                  the prompt (when standard input is a terminal)
            mpq FILE.mpq [ARGS]  run a script (ARGS are in the variable `args`)
            mpq -e 'EXPR'        evaluate one line and show its value
            … | mpq              run standard input as a script
            Exit status: 0 ok, 65 syntax error, 70 runtime error, 74 input/output error.
            Environment: MPQ_THREADS caps the threads the kernels use (default: all cores).
            """,
        version: "0.1.0",
        subcommands: [Run.self, NotebookCommand.self, Doc.self, Train.self, Evaluate.self, Layers.self],
        defaultSubcommand: Run.self)
}

/// Exit codes of sysexits(3), as LANGUAGE.md asks.
enum Exit {
    static let syntax: Int32 = 65, runtime: Int32 = 70, io: Int32 = 74

    /// The status for an error a subcommand threw: 74 when the file system said no, else 70.
    static func status(for error: Error) -> Int32 {
        if case TensorError.io? = error as? TensorError { return io }
        if let e = error as? ScriptError { return e.kind == .io ? io : e.kind == .syntax ? syntax : runtime }
        return runtime
    }
}

extension MPQ {
    /// Parses the command line (a usage error exits 65 with the parser's message), then runs the
    /// command on a thread with a large stack, so deeply nested values and long chains end in the
    /// language's own limits rather than in the main thread's 8 MiB. Errors exit 70, or 74 for I/O.
    static func main() {
        Memory.keepFreedMemory()
        // MPQ_THREADS caps the kernels' threads (a launcher running one mpq per core sets 1).
        if let t = ProcessInfo.processInfo.environment["MPQ_THREADS"].flatMap({ Int($0) }) { Parallel.defaultThreads = t }
        let command: ParsableCommand
        do { command = try parseAsRoot() } catch {
            let code = exitCode(for: error)
            if code == .success { print(fullMessage(for: error)); Foundation.exit(0) }
            FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
            Foundation.exit(Exit.syntax)
        }
        final class Run: @unchecked Sendable {
            var command: ParsableCommand
            var status: Int32 = 0
            init(_ command: ParsableCommand) { self.command = command }
        }
        let run = Run(command)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            do { try run.command.run() } catch let e as ExitCode { run.status = e.rawValue } catch {
                if exitCode(for: error) == .success { print(fullMessage(for: error)) } else {
                    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                    run.status = Exit.status(for: error)
                }
            }
            done.signal()
        }
        thread.stackSize = 512 << 20
        thread.start()
        done.wait()
        Foundation.exit(run.status)
    }
}

/// A script's text: at most 16 MiB of UTF-8. An error names the file and, for text that is not
/// UTF-8, the offset of the first byte that is not.
func scriptText(_ data: Data, file: String) throws -> String {
    let limit = 16 << 20
    guard data.count <= limit else {
        throw TensorError.io(path: file, reason: "is \(MemoryBudget.format(data.count)); scripts are limited to \(MemoryBudget.format(limit))")
    }
    var parser = Unicode.UTF8.ForwardParser()
    var bytes = data.makeIterator()
    var offset = 0
    while true {
        switch parser.parseScalar(from: &bytes) {
        case .valid(let scalar): offset += scalar.count
        case .emptyInput: return String(decoding: data, as: UTF8.self)
        case .error(let length):
            let byte = data[data.startIndex + offset]
            throw TensorError.io(path: file, reason: "not UTF-8 text: byte \(offset) is 0x\(String(byte, radix: 16, uppercase: true))\(length > 1 ? " (and \(length - 1) more)" : "") where a character should start or continue")
        }
    }
}

/// Reads a script file; a missing, unreadable or undecodable file is an I/O error (exit 74).
func readScript(_ file: String) throws -> String {
    try FileIO.checkPath(file)
    guard let data = FileManager.default.contents(atPath: file) else {
        var isDir: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: file, isDirectory: &isDir)
        throw TensorError.io(path: file, reason: "cannot read: \(exists ? (isDir.boolValue ? "it is a directory" : "permission denied") : "no such file")")
    }
    return try scriptText(data, file: file)
}

/// Prints an error the way scripts print theirs and returns the exit status.
func report(_ error: Error) -> Int32 {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    return Exit.status(for: error)
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a script, one expression, standard input, or the prompt.")

    @Option(name: .customShort("e"), help: "Evaluate one line and show its value.") var expression: String?
    @ArgumentParser.Argument(help: "A script (.mpq) and arguments for it.") var arguments: [String] = []

    func run() throws {
        signal(SIGINT) { _ in Interrupt.request() }
        let session = Session()
        session.interpreter.globals.define("args", .list(arguments.dropFirst().map { .string($0) }))
        if let expression {
            throw ExitCode(session.runScript(expression, file: "-e", show: true))
        }
        if let file = arguments.first {
            let source: String
            do { source = try readScript(file) } catch { throw ExitCode(report(error)) }
            throw ExitCode(session.runScript(source, file: file, show: false))
        }
        if isatty(STDIN_FILENO) != 0 {
            REPL(session: session).loop()
            return
        }
        let source: String
        do { source = try scriptText(FileHandle.standardInput.readDataToEndOfFile(), file: "<stdin>") } catch { throw ExitCode(report(error)) }
        throw ExitCode(session.runScript(source, file: "<stdin>", show: false))
    }
}

struct NotebookCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "notebook",
        abstract: "Run a notebook (a percent-format .mpq with # %% cells, or a Jupyter .ipynb) and write it with its outputs (.ipynb, .md or .html), or convert it to a percent-format .mpq.")

    @ArgumentParser.Argument(help: "The notebook: a percent-format script (.mpq) or a Jupyter notebook (.ipynb).") var file: String
    @Option(name: .shortAndLong, help: "Output file: .ipynb, .md or .html (run, with outputs), or .mpq (converted, not run).") var output: String

    func run() throws {
        signal(SIGINT) { _ in Interrupt.request() }
        let format = URL(fileURLWithPath: output).pathExtension
        guard ["ipynb", "md", "html", "mpq"].contains(format) else {
            FileHandle.standardError.write(Data("error: expected an output ending in .ipynb, .md, .html or .mpq, got \(output)\n".utf8))
            throw ExitCode(Exit.io)
        }
        var notebook: Notebook
        do {
            if URL(fileURLWithPath: file).pathExtension == "ipynb" {
                notebook = try Notebook(ipynb: Data(try FileIO.read(file)), file: file)
            } else {
                notebook = Notebook(source: try readScript(file))
            }
        } catch { throw ExitCode(report(error)) }
        if format == "mpq" {
            do { try FileIO.writeAtomically(Array(notebook.percent().utf8), to: output) } catch { throw ExitCode(report(error)) }
            print("\(file): \(notebook.cells.count) cells → \(output)")
            return
        }
        let failures = notebook.run(in: Session().interpreter, file: file)
        let bytes: Data
        switch format {
        case "ipynb": bytes = try notebook.ipynb()
        case "md": bytes = Data(notebook.markdown().utf8)
        default: bytes = Data(notebook.html(title: URL(fileURLWithPath: file).lastPathComponent).utf8)
        }
        do { try FileIO.writeAtomically([UInt8](bytes), to: output) } catch { throw ExitCode(report(error)) }
        let codeCells = notebook.cells.filter { $0.kind == .code }.count
        print("\(file): \(codeCells) code cells, \(failures) failed → \(output)")
        for cell in notebook.cells where cell.error != nil { FileHandle.standardError.write(Data((cell.error! + "\n").utf8)) }
        if failures > 0 { throw ExitCode(Exit.runtime) }
    }
}

/// The reference page, generated from the builtin declarations.
struct Doc: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the reference of every builtin (Markdown).")
    func run() throws { print(Session().interpreter.referenceMarkdown()) }
}

/// A language session: one interpreter, stdlib loaded, errors rendered with their source.
final class Session {
    let interpreter = Interpreter()

    /// Loads the stdlib; a missing stdlib is a warning (the builtins still work), a broken one an error.
    init() {
        guard let dir = Stdlib.directory() else {
            FileHandle.standardError.write(Data("warning: stdlib/ not found (set MPQ_STDLIB); its functions are unavailable\n".utf8))
            return
        }
        do { try interpreter.loadStdlib(directory: dir) } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        }
    }

    /// Runs source; returns the exit status.
    func runScript(_ source: String, file: String, show: Bool) -> Int32 {
        do {
            try interpreter.run(source, show: show)
            return 0
        } catch let e as ScriptError {
            Interrupt.clear()
            FileHandle.standardError.write(Data((e.render(source: source, file: file) + "\n").utf8))
            switch e.kind { case .syntax: return Exit.syntax; case .runtime: return Exit.runtime; case .io: return Exit.io }
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            return Exit.runtime
        }
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a zoo model on Fashion-MNIST and save it.")

    @ArgumentParser.Argument(help: "Zoo architecture: \(Zoo.names.joined(separator: ", ")).")
    var arch: String
    @Option(help: "Epochs.") var epochs = TrainingOptions().epochs
    @Option(help: "Mini-batch size.") var batchSize = TrainingOptions().batchSize
    @Option(help: "Peak learning rate of the one-cycle schedule (SGD, Nesterov momentum 0.9).") var lr: Float = 0.1
    @Option(help: "Seed for initialisation, shuffling and flips.") var seed: UInt64 = 0
    @Option(help: "Threads (default: all cores).") var threads = Parallel.availableCores
    @Option(name: .shortAndLong, help: "Where to save the trained model (.npz with its graph).") var output: String?

    func run() throws {
        Parallel.defaultThreads = threads
        // Ctrl-C stops after the current batch; the model trained so far is still evaluated and saved.
        signal(SIGINT) { _ in Interrupt.request() }
        let model = try Zoo.make(arch, seed: seed)
        let train = try FashionMNIST.load(.train), test = try FashionMNIST.load(.test)
        var options = TrainingOptions()
        options.epochs = epochs; options.batchSize = batchSize; options.seed = seed
        options.schedule = .oneCycle(peak: lr)
        let result = try model.train(on: train, options: options, progress: { p in
            FileHandle.standardError.write(Data(("\r" + p.line + (p.endOfEpoch ? "\n" : "")).utf8))
        })
        if result.interrupted { FileHandle.standardError.write(Data("\ninterrupted: keeping the model as trained so far\n".utf8)) }
        Interrupt.clear()
        let acc = try model.accuracy(on: test)
        print(String(format: "%@: test accuracy %.4f after %d epochs in %.1f s (train accuracy %.4f)",
                     arch, acc, result.epochsCompleted, result.seconds, result.trainAccuracy))
        if let output { try model.save(path: output); print("saved \(output)") }
    }
}

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Test accuracy of a model on Fashion-MNIST.")
    @ArgumentParser.Argument(help: "An .onnx file, a model saved by mpq, or a state dict (.npz) with --arch.") var path: String
    @Option(help: "Zoo architecture for a PyTorch state dict.") var arch: String?

    func run() throws {
        let model = try Model.open(path, into: arch.map { try Zoo.make($0) })
        let test = try FashionMNIST.load(.test)
        let start = Date()
        let acc = try model.accuracy(on: test)
        print(String(format: "%@: test accuracy %.4f (%d images, %.0f img/s)", model.name, acc, test.count,
                     Double(test.count) / Date().timeIntervalSince(start)))
    }
}

struct Layers: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List a model's conv and linear layers.")
    @ArgumentParser.Argument(help: "An .onnx file, a model saved by mpq, a state dict with --arch, or a zoo name.") var path: String
    @Option(help: "Zoo architecture for a PyTorch state dict.") var arch: String?

    func run() throws {
        let model = Zoo.names.contains(path) ? try Zoo.make(path) : try Model.open(path, into: arch.map { try Zoo.make($0) })
        for l in model.layers {
            print(l.name.padding(toLength: 18, withPad: " ", startingAt: 0), l.kind.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0),
                  "\(l.weightShape)".padding(toLength: 18, withPad: " ", startingAt: 0), "params", l.parameterCount, "MACs", l.macs)
        }
        print("total weights: \(model.weightCount)")
    }
}
