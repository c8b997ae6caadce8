import ArgumentParser
import Foundation
import Kernels
import Network
import Tensors

@main
struct MPQ: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mpq",
        abstract: "A workbench for mixed-precision quantization of neural networks.",
        discussion: "The language, REPL and notebooks are not built yet; these subcommands expose what the library does today.",
        version: "0.1.0",
        subcommands: [Train.self, Evaluate.self, Layers.self])
}

/// Loads a model from an ONNX file, a file written by `mpq train`, or a state dict with --arch.
func loadModel(_ path: String, arch: String?) throws -> Model {
    if path.hasSuffix(".onnx") { return try ONNXImporter.load(path: path) }
    if let arch {
        let m = try Zoo.make(arch)
        try m.loadStateDict(path: path)
        return m
    }
    return try Model.load(path: path)
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a zoo model on Fashion-MNIST and save it.")

    @Argument(help: "Zoo architecture: \(Zoo.names.joined(separator: ", ")).")
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
        let result = try model.train(on: train, options: options) { p in
            FileHandle.standardError.write(Data(("\r" + p.line + (p.endOfEpoch ? "\n" : "")).utf8))
        }
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
    @Argument(help: "An .onnx file, a model saved by mpq, or a state dict (.npz) with --arch.") var path: String
    @Option(help: "Zoo architecture for a PyTorch state dict.") var arch: String?

    func run() throws {
        let model = try loadModel(path, arch: arch)
        let test = try FashionMNIST.load(.test)
        let start = Date()
        let acc = try model.accuracy(on: test)
        print(String(format: "%@: test accuracy %.4f (%d images, %.0f img/s)", model.name, acc, test.count,
                     Double(test.count) / Date().timeIntervalSince(start)))
    }
}

struct Layers: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List a model's conv and linear layers.")
    @Argument(help: "An .onnx file, a model saved by mpq, a state dict with --arch, or a zoo name.") var path: String
    @Option(help: "Zoo architecture for a PyTorch state dict.") var arch: String?

    func run() throws {
        let model = Zoo.names.contains(path) ? try Zoo.make(path) : try loadModel(path, arch: arch)
        for l in model.layers {
            print(l.name.padding(toLength: 18, withPad: " ", startingAt: 0), l.kind.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0),
                  "\(l.weightShape)".padding(toLength: 18, withPad: " ", startingAt: 0), "params", l.parameterCount, "MACs", l.macs)
        }
        print("total weights: \(model.weightCount)")
    }
}
