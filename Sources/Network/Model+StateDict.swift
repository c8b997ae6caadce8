import Foundation
import Tensors

extension Model {
    /// Loads a PyTorch state dict (an .npz of `module.weight`, `bn.running_mean`, …) into this
    /// model's parameters and buffers by name. Every parameter and buffer must be present with
    /// its shape; extra entries other than `num_batches_tracked` and the graph that `save(path:)`
    /// stores beside the weights (`__mpq_graph__`) are an error naming them.
    public func loadStateDict(_ arrays: [(name: String, tensor: Tensor)], source: String) throws {
        var missing: [String] = [], mismatched: [String] = [], unexpected: [String] = []
        let byName = Dictionary(arrays.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
        for (name, t) in parameters.merging(buffers, uniquingKeysWith: { a, _ in a }) {
            guard let v = byName[name] else { missing.append(name); continue }
            if v.shape != t.shape { mismatched.append("\(name): expected \(t.shape), found \(v.shape)") }
        }
        for (name, _) in arrays where parameters[name] == nil && buffers[name] == nil && !name.hasSuffix("num_batches_tracked")
            && name != Model.savedGraphEntry {
            unexpected.append(name)
        }
        var problems: [String] = []
        if !missing.isEmpty { problems.append("missing \(missing.sorted().joined(separator: ", "))") }
        if !mismatched.isEmpty { problems.append("wrong shapes: \(mismatched.sorted().joined(separator: "; "))") }
        if !unexpected.isEmpty { problems.append("unexpected \(unexpected.joined(separator: ", "))") }
        guard problems.isEmpty else {
            throw NetworkError("\(source) does not fit model '\(self.name)': \(problems.joined(separator: "; "))")
        }
        for name in parameters.keys { parameters[name] = byName[name]! }
        for name in buffers.keys { buffers[name] = byName[name]! }
    }

    public func loadStateDict(path: String) throws {
        try loadStateDict(try NPZ.read(path), source: path)
    }

    /// The parameters and buffers as a state dict, parameters in definition order.
    public var stateDict: [(name: String, tensor: Tensor)] {
        parameterOrder.map { ($0, parameters[$0]!) } + buffers.keys.sorted().map { ($0, buffers[$0]!) }
    }

    /// The entry of a saved model's file that holds its graph.
    static let savedGraphEntry = "__mpq_graph__"

    /// Saves the model: its state dict plus the graph (as JSON, in an entry `__mpq_graph__`
    /// of UTF-8 bytes), written atomically. `Model.load(path:)` reads it back.
    public func save(path: String) throws {
        let graph = SavedGraph(name: name, nodes: nodes, input: input, output: output, inputShape: inputShape,
                               parameters: parameterOrder, buffers: buffers.keys.sorted())
        let json = try JSONEncoder().encode(graph)
        let bytes = Tensor(checkedShape: [json.count], scalars: json.map { Float($0) })
        try NPZ.write(stateDict + [(Model.savedGraphEntry, bytes)], to: path)
    }

    /// Loads a model written by `save(path:)`.
    public static func load(path: String) throws -> Model {
        let arrays = try NPZ.read(path)
        guard let graphEntry = arrays.first(where: { $0.name == Model.savedGraphEntry }) else {
            throw NetworkError("\(path) is a state dict without a graph; load it into a zoo model instead (load(path, into: zoo(\"cnn\")))")
        }
        let json = Data(graphEntry.tensor.scalars.map { UInt8(clamping: Int($0)) })
        let g: SavedGraph
        do { g = try JSONDecoder().decode(SavedGraph.self, from: json) } catch {
            throw NetworkError("\(path): the saved graph is unreadable: \(error)")
        }
        let byName = Dictionary(arrays.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
        var params: [(String, Tensor)] = [], bufs: [(String, Tensor)] = []
        for p in g.parameters {
            guard let t = byName[p] else { throw NetworkError("\(path): parameter '\(p)' is missing") }
            params.append((p, t))
        }
        for b in g.buffers {
            guard let t = byName[b] else { throw NetworkError("\(path): buffer '\(b)' is missing") }
            bufs.append((b, t))
        }
        return try Model(name: g.name, nodes: g.nodes, input: g.input, output: g.output, inputShape: g.inputShape,
                         parameters: params, buffers: bufs)
    }
}

struct SavedGraph: Codable {
    var name: String
    var nodes: [Node]
    var input: String, output: String
    var inputShape: [Int]
    var parameters: [String], buffers: [String]
}

extension Model {
    /// A model from a file, as the prompt's `load` and the `mpq evaluate`/`layers` commands read
    /// one: ONNX (.onnx), a model saved by mpq (.npz with its graph), or, given `into`, a PyTorch
    /// state dict (.npz) loaded into that model (which is returned).
    public static func open(_ path: String, into: Model? = nil) throws -> Model {
        if let into {
            try into.loadStateDict(path: path)
            return into
        }
        if path.hasSuffix(".onnx") { return try ONNXImporter.load(path: path) }
        return try Model.load(path: path)
    }
}
