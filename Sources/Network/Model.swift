import Foundation
import Kernels
import Tensors
import Runtime

/// A conv or linear layer: the unit bits are chosen for.
public struct Layer: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable { case conv = "Conv2d", linear = "Linear" }
    /// Stable name: the PyTorch module path (`layers.0.conv1`).
    public var name: String
    public var kind: Kind
    /// The parameter holding the weight, and the bias if any.
    public var weight: String
    public var bias: String?
    public var weightShape: [Int]
    public var groups: Int
    /// Index of the node in the graph.
    public var node: Int
    /// Multiply-accumulates per image (conv: Hout·Wout·Cout·kh·kw·Cin/groups).
    public var macs: Int
    public var parameterCount: Int { weightShape.reduce(1, *) }
    public var description: String { "\(name) \(kind.rawValue) \(weightShape) params \(parameterCount) MACs \(macs)" }
}

/// A network: a graph of nodes over named values, with its parameters (trained) and buffers
/// (batch-norm running statistics). A class, because training and loading change it in place.
public final class Model: @unchecked Sendable {
    public var name: String
    public private(set) var nodes: [Node]
    public var input: String { didSet { generation &+= 1 } }
    public var output: String { didSet { generation &+= 1 } }
    /// Shape of one input example, e.g. [1, 28, 28].
    public var inputShape: [Int] { didSet { generation &+= 1 } }
    public var parameters: [String: Tensor] { didSet { generation &+= 1 } }
    public var buffers: [String: Tensor] { didSet { generation &+= 1 } }
    /// Counts changes to the graph, parameters and buffers: a compiled float plan is reused
    /// while it stays the same.
    private(set) var generation = 0
    private let planLock = NSLock()
    private var planCache: (generation: Int, plan: FloatPlan?)? = nil
    /// Linear layers' weights packed for the GEMM (`packedWeight`), valid for one generation.
    let packedLock = NSLock()
    var packedCache: (generation: Int, weights: [String: SGEMM.PackedB]) = (-1, [:])
    /// Parameter names in definition order (optimisers and files keep this order).
    public private(set) var parameterOrder: [String]
    public private(set) var layers: [Layer] = []

    public init(name: String, nodes: [Node], input: String, output: String, inputShape: [Int],
                parameters: [(String, Tensor)], buffers: [(String, Tensor)]) throws {
        self.name = name
        self.nodes = nodes
        self.input = input
        self.output = output
        self.inputShape = inputShape
        self.parameters = Dictionary(parameters, uniquingKeysWith: { a, _ in a })
        self.buffers = Dictionary(buffers, uniquingKeysWith: { a, _ in a })
        self.parameterOrder = parameters.map(\.0)
        try validate()
        layers = try findLayers()
    }

    /// A deep copy (tensors are values, so this copies the graph and the dictionaries). Nothing is
    /// re-derived: the layers found when this model was made are its copy's too, so a copy runs no
    /// forward pass and Ctrl-C cannot interrupt it half-way.
    public func copy() -> Model { Model(copying: self) }

    private init(copying m: Model) {
        name = m.name; nodes = m.nodes; input = m.input; output = m.output; inputShape = m.inputShape
        parameters = m.parameters; buffers = m.buffers; parameterOrder = m.parameterOrder; layers = m.layers
    }

    /// Every node input must be defined before use, every name defined once (a node output
    /// that reused a parameter's name would hide it from the gradients); the output must be produced.
    func validate() throws {
        if let shared = parameters.keys.first(where: { buffers[$0] != nil }) {
            throw NetworkError("'\(shared)' is both a parameter and a buffer")
        }
        var known = Set(parameters.keys).union(buffers.keys)
        guard !known.contains(input) else { throw NetworkError("the input '\(input)' has the name of a parameter or buffer") }
        known.insert(input)
        for node in nodes {
            for i in node.inputs where !i.isEmpty && !known.contains(i) {
                throw NetworkError("node '\(node.name)' (\(node.op.onnxName)) reads '\(i)', which no earlier node, parameter or input defines")
            }
            for o in node.outputs where !o.isEmpty {
                guard known.insert(o).inserted else {
                    throw NetworkError("node '\(node.name)' (\(node.op.onnxName)) writes '\(o)', a name already defined by a parameter, buffer, the input or an earlier node")
                }
            }
        }
        guard known.contains(output) else { throw NetworkError("no node produces the output '\(output)'") }
    }

    /// Replaces the graph (folding, surgery), keeping parameters that are still used.
    public func replaceGraph(nodes: [Node], parameters: [(String, Tensor)], buffers: [(String, Tensor)]) throws {
        let old = (self.nodes, self.parameters, self.buffers, self.parameterOrder)
        self.nodes = nodes
        self.parameters = Dictionary(parameters, uniquingKeysWith: { a, _ in a })
        self.buffers = Dictionary(buffers, uniquingKeysWith: { a, _ in a })
        self.parameterOrder = parameters.map(\.0)
        generation &+= 1
        do { try validate(); layers = try findLayers() } catch {
            (self.nodes, self.parameters, self.buffers, self.parameterOrder) = old
            throw error
        }
    }

    /// Conv and Gemm nodes whose weight is a parameter, with their MACs from one forward pass.
    func findLayers() throws -> [Layer] {
        let trace = try run(try Tensor.zeros([1] + inputShape), keepTrace: true).trace!
        var out: [Layer] = []
        for (index, node) in nodes.enumerated() {
            let isConv: Bool
            switch node.op {
            case .conv: isConv = true
            case .gemm(let a) where a.transB: isConv = false
            default: continue
            }
            guard node.inputs.count >= 2 else { continue }
            // A weight may reach the layer through a learned quantizer (quantization-aware training).
            var weightName = node.inputs[1]
            if parameters[weightName] == nil, let producer = nodes.first(where: { $0.outputs[0] == weightName }),
               producer.op.quantizesItsFirstInput { weightName = producer.inputs[0] }
            guard let w = parameters[weightName] else { continue }
            let y = trace.values[node.outputs[0]]!
            // A linear layer on a sequence ([N, tokens, features]) runs once per token.
            let macs = isConv ? y.shape[2] * y.shape[3] * w.count : w.count * max(1, y.count / max(1, y.shape[0] * (y.shape.last ?? 1)))
            var groups = 1
            if case .conv(let a) = node.op { groups = a.groups }
            let bias = node.inputs.count > 2 && parameters[node.inputs[2]] != nil ? node.inputs[2] : nil
            out.append(Layer(name: Model.layerName(weight: weightName, node: node.name), kind: isConv ? .conv : .linear,
                             weight: weightName, bias: bias, weightShape: w.shape, groups: groups, node: index, macs: macs))
        }
        return out
    }

    /// `layers.0.conv1.weight` → `layers.0.conv1`; an ONNX node `/layers/layers.0/conv1/Conv` →
    /// `layers.0.conv1`. The exporter writes one scope per module: either the module's name in its
    /// parent (`conv1`) or, inside containers, a name that already includes the parent's
    /// (`layers.0` under `layers`), which then replaces it.
    static func layerName(weight: String, node: String) -> String {
        if weight.hasSuffix(".weight") { return String(weight.dropLast(7)) }
        let scopes = node.split(separator: "/").map(String.init).dropLast()
        var path: [String] = []
        for scope in scopes {
            if let last = path.last, scope.hasPrefix(last + ".") { path[path.count - 1] = scope } else { path.append(scope) }
        }
        return path.isEmpty ? node : path.joined(separator: ".")
    }

    public func layer(named name: String) -> Layer? { layers.first { $0.name == name } }

    /// All values of one forward pass, and what each node kept for backward.
    public struct Trace: Sendable {
        public var values: [String: Tensor]
        public var states: [OpState?]
    }

    /// Runs the network on a batch [N] + inputShape. In training mode batch norm uses batch
    /// statistics and updates its running ones. With `keepTrace` every value is kept for
    /// backward and tangent passes; otherwise each is dropped after its last use.
    /// `observer` sees each node's inputs before the node runs (calibration); it forces one
    /// pass over the whole batch on this thread.
    public func run(_ x: Tensor, training: Bool = false, keepTrace: Bool = false,
                    observer: ((Int, [Tensor?]) -> Void)? = nil) throws -> (output: Tensor, trace: Trace?) {
        guard x.rank == inputShape.count + 1, Array(x.shape.dropFirst()) == inputShape else {
            throw NetworkError("model '\(name)': expected input [N, \(inputShape.map(String.init).joined(separator: ", "))], found \(x.shape)")
        }
        let threads = Parallel.defaultThreads, n = x.shape[0]
        // Inference runs compiled (`FloatPlan`) when every node has a plan step, except a fully
        // connected net on a large batch: the graph's packed GEMMs serve its rows better (MLP
        // at batch 256: 447k img/s against the plan's 390k). Otherwise convolutional nets go
        // through the graph in micro-batches (activations stay in cache) and fully connected
        // ones with the whole batch.
        let inference = observer == nil && !training && !keepTrace
        let convolutional = layers.contains { $0.kind == .conv }
        // A fully connected net at inference on a large batch leaves the check of its input to
        // its first linear layer (`InputCheck`); everything else checks it here, first.
        let checkedHere = !inference || convolutional || n < Self.planBatchLimit
        if checkedHere, x.hasNonFinite {
            throw NetworkError("model '\(name)': the input holds NaN or infinite values")
        }
        if inference {
            if convolutional || n < Self.planBatchLimit, let plan = compiledPlan() { return (try plan.run(x, threads: threads), nil) }
            if n >= 2 * Self.microBatch && convolutional { return (try runInMicroBatches(x, threads: threads), nil) }
        }
        return try runWhole(x, training: training, keepTrace: keepTrace, observer: observer,
                            inputChecked: checkedHere)
    }

    /// This model compiled for float inference, or nil when a node has no plan step; compiled
    /// once and reused until the graph, a parameter or a buffer changes.
    public func compiledPlan() -> FloatPlan? {
        planLock.lock(); defer { planLock.unlock() }
        if let c = planCache, c.generation == generation { return c.plan }
        let plan = try? FloatPlan(self)
        planCache = (generation, plan)
        return plan
    }

    /// Batches from this size on run a fully connected net through the graph's GEMMs.
    static let planBatchLimit = 64

    /// Images per worker step in batched inference: their activations stay in L2.
    static let microBatch = 32

    /// Inference on a large batch: each worker runs the whole network on micro-batches, one
    /// core each, so activations stay in cache between layers and no layer waits for another
    /// worker.
    func runInMicroBatches(_ x: Tensor, threads: Int) throws -> Tensor {
        let n = x.shape[0], chunks = (n + Self.microBatch - 1) / Self.microBatch
        var outputs = [Tensor?](repeating: nil, count: chunks)
        var failure: Error? = nil
        let lock = NSLock()
        outputs.withUnsafeMutableBufferPointer { out in
            let base = out.baseAddress!
            Parallel.forEachDynamic(chunks, threads: threads) { chunk, _ in
                do {
                    let part = try x.slice((chunk * Self.microBatch)..<min(n, (chunk + 1) * Self.microBatch))
                    base[chunk] = try Parallel.withThreads(1) { try runWhole(part, training: false, keepTrace: false).output }
                } catch {
                    lock.lock(); if failure == nil { failure = error }; lock.unlock()
                }
            }
        }
        if let failure { throw failure }
        return try Tensor.stack(outputs.map { $0! })
    }

    /// The inputs node `index` reads when the network runs on `x`; the nodes after it do not run
    /// (layer-by-layer reconstruction reads one layer's input at a time).
    public func inputs(of index: Int, on x: Tensor) throws -> [Tensor?] {
        guard nodes.indices.contains(index) else { throw NetworkError("model '\(name)': no node \(index)") }
        guard x.rank == inputShape.count + 1, Array(x.shape.dropFirst()) == inputShape else {
            throw NetworkError("model '\(name)': expected input [N, \(inputShape.map(String.init).joined(separator: ", "))], found \(x.shape)")
        }
        var seen: [Tensor?] = []
        _ = try runWhole(x, training: false, keepTrace: false, observer: { i, ins in if i == index { seen = ins } }, stopAt: index)
        return seen
    }

    func runWhole(_ x: Tensor, training: Bool, keepTrace: Bool,
                  observer: ((Int, [Tensor?]) -> Void)? = nil, stopAt: Int? = nil, inputChecked: Bool = true) throws -> (output: Tensor, trace: Trace?) {
        var values: [String: Tensor] = [input: x]
        // Unless the caller checked the input for NaN and infinities, the first linear layer may.
        var inputCheck = InputCheck(x, name: input, model: name, pending: !inputChecked)
        var states = [OpState?](repeating: nil, count: nodes.count)
        var lastUse: [String: Int] = [:]
        if !keepTrace {
            for (i, node) in nodes.enumerated() { for name in node.inputs { lastUse[name] = i } }
        }
        func value(_ name: String) -> Tensor? {
            if name.isEmpty { return nil }
            return values[name] ?? parameters[name] ?? buffers[name]
        }
        var fusedRelu = Set<Int>()
        for (i, node) in nodes.enumerated() {
            try Interrupt.check()
            if fusedRelu.contains(i) { continue }
            let ins = node.inputs.map(value)
            observer?(i, ins)
            // Stopped early: the observer has what the caller wanted; the input stands in for the output.
            if i == stopAt { return (x, nil) }
            try inputCheck.before(node, ins)
            // Inference folds a batch norm (and the ReLU after it) into the conv before it.
            if !keepTrace, !training, observer == nil, stopAt == nil, let f = try convWithBatchNorm(at: i, ins, lastUse: lastUse, value: value) {
                values[nodes[f.last].outputs[0]] = f.output
                for j in (i + 1)...f.last { fusedRelu.insert(j) }
                for name in node.inputs where lastUse[name] == i && name != output { values[name] = nil }
                continue
            }
            // Inference fuses a ReLU into the conv, add or linear layer before it when nothing else
            // reads the intermediate value: one pass over the activations instead of two. (Not
            // when an observer watches the nodes: it would miss the fused ones' inputs.)
            if !keepTrace, !training, observer == nil, stopAt == nil, i + 1 < nodes.count, case .relu = nodes[i + 1].op,
               nodes[i + 1].inputs == [node.outputs[0]], lastUse[node.outputs[0]] == i + 1, node.outputs[0] != output {
                var fused: Tensor? = nil
                if case .conv(let a) = node.op, ins.count >= 2, let x = ins[0], let w = ins[1], x.rank == 4, w.rank == 4 {
                    fused = try Tensor.conv2d(x, weight: w, bias: ins.count > 2 ? ins[2] : nil,
                                              stride: (a.strides[0], a.strides[1]), padding: (a.pads[0], a.pads[1], a.pads[2], a.pads[3]),
                                              dilation: (a.dilations[0], a.dilations[1]), groups: a.groups, relu: true)
                } else if case .add = node.op, ins.count == 2, let a = ins[0], let b = ins[1] {
                    fused = try Tensor.addRelu(a, b)
                } else if case .gemm(let at) = node.op, ins.count == 3, let a = ins[0], let b = ins[1], let c = ins[2], a.rank == 2,
                          at.beta == 1, c.rank == 1 {
                    // A linear layer: the bias and the ReLU in one pass over the product.
                    if let y = try packedLinear(node, at, a, bias: c, relu: true) {
                        fused = y.output
                        try inputCheck.linear(finite: y.finite)
                    } else {
                        try inputCheck.check()
                        let y = try LinearOp.product(a, transA: at.transA, b, transB: at.transB, alpha: at.alpha)
                        if y.rank == 2, y.shape[1] == c.count { fused = Tensor.addingRows(y, c, relu: true) }
                    }
                }
                if let fused {
                    values[nodes[i + 1].outputs[0]] = fused
                    fusedRelu.insert(i + 1)
                    for name in node.inputs where lastUse[name] == i && name != output { values[name] = nil }
                    continue
                }
            }
            if !keepTrace, !training, observer == nil, case .gemm(let at) = node.op, ins.count >= 2, let a = ins[0],
               let y = try packedLinear(node, at, a, bias: ins.count > 2 ? ins[2] : nil, relu: false) {
                try inputCheck.linear(finite: y.finite)
                values[node.outputs[0]] = y.output
                for name in node.inputs where lastUse[name] == i && name != output { values[name] = nil }
                continue
            }
            if case .gemm = node.op { try inputCheck.check() }
            let (y, state, updates) = try node.forward(ins, training: training, keepState: keepTrace)
            for (position, v) in updates { buffers[node.inputs[position]] = v }
            values[node.outputs[0]] = y
            if keepTrace { states[i] = state } else {
                for name in node.inputs where lastUse[name] == i && name != output { values[name] = nil }
            }
        }
        try inputCheck.check()
        guard let y = values[output] else { throw NetworkError("model '\(name)': the output '\(output)' was not computed") }
        return (y, keepTrace ? Trace(values: values, states: states) : nil)
    }

    /// At inference, a conv at node `i` whose output only a batch norm reads (and, when the batch
    /// norm's output only a ReLU reads, that too): the conv's output through both, computed as one
    /// conv with the batch norm folded into its weights and bias and the ReLU in its epilogue —
    /// two passes over the activations fewer. Folding costs a pass over the weights, so it is
    /// taken only when the batch's output pixels outnumber each kernel's taps (not for a single
    /// image through a wide layer). Returns the output and the last node it stands for.
    func convWithBatchNorm(at i: Int, _ ins: [Tensor?], lastUse: [String: Int], value: (String) -> Tensor?) throws -> (output: Tensor, last: Int)? {
        guard case .conv(let a) = nodes[i].op, i + 1 < nodes.count, case .batchNorm(let eps, _) = nodes[i + 1].op,
              ins.count >= 2, let x = ins[0], let w = ins[1], x.rank == 4, w.rank == 4, w.shape[0] > 0 else { return nil }
        let out = nodes[i].outputs[0], bn = nodes[i + 1]
        guard bn.inputs.count == 5, bn.inputs[0] == out, lastUse[out] == i + 1, out != output,
              let gamma = value(bn.inputs[1]), let beta = value(bn.inputs[2]), let mean = value(bn.inputs[3]), let variance = value(bn.inputs[4]),
              [gamma, beta, mean, variance].allSatisfy({ $0.count == w.shape[0] }) else { return nil }
        let pixels = x.shape[0] * x.shape[2] * x.shape[3] / Swift.max(1, a.strides[0] * a.strides[1])
        guard pixels >= w.count / w.shape[0] else { return nil }
        var last = i + 1
        let bnOut = bn.outputs[0]
        if i + 2 < nodes.count, case .relu = nodes[i + 2].op, nodes[i + 2].inputs == [bnOut], lastUse[bnOut] == i + 2, bnOut != output { last = i + 2 }
        let f = Self.foldBatchNorm(weight: w, bias: ins.count > 2 ? ins[2] : nil, gamma: gamma, beta: beta, mean: mean, variance: variance, epsilon: eps)
        let y = try Tensor.conv2d(x, weight: f.weight, bias: f.bias, stride: (a.strides[0], a.strides[1]), padding: (a.pads[0], a.pads[1], a.pads[2], a.pads[3]),
                                  dilation: (a.dilations[0], a.dilations[1]), groups: a.groups, relu: last == i + 2)
        return (y, last)
    }

    /// Gradients of a scalar function of the output, given dOutput: parameters (and the input,
    /// under the input's name, when `inputGradient` is true).
    /// Values named in `keeping` (node outputs) keep their gradients in the result too.
    /// `seeds` add gradients at intermediate values (losses on activations, such as ZeroQ's
    /// batch-norm statistics).
    public func gradients(_ trace: Trace, outputGradient: Tensor, inputGradient: Bool = false,
                          keeping: Set<String> = [], seeds: [String: Tensor] = [:]) throws -> [String: Tensor] {
        var grads: [String: Tensor] = [output: outputGradient]
        for (name, g) in seeds { grads[name] = try grads[name].map { try $0 + g } ?? g }
        func value(_ name: String) -> Tensor? {
            if name.isEmpty { return nil }
            return trace.values[name] ?? parameters[name] ?? buffers[name]
        }
        for (i, node) in nodes.enumerated().reversed() {
            guard let dy = grads[node.outputs[0]] else { continue }
            try Interrupt.check()
            let ins = node.inputs.map(value)
            let needs = node.inputs.map { name in
                parameters[name] != nil || (inputGradient && name == input) || (buffers[name] == nil && name != input && !name.isEmpty)
            }
            let dins = try node.backward(ins, output: trace.values[node.outputs[0]]!, state: trace.states[i],
                                         gradient: dy, needs: needs)
            for (j, name) in node.inputs.enumerated() where j < dins.count && needs[j] {
                guard let d = dins[j] else { continue }
                grads[name] = try grads[name].map { try $0 + d } ?? d
            }
            if node.outputs[0] != output && !keeping.contains(node.outputs[0]) { grads[node.outputs[0]] = nil }
        }
        return grads.filter { parameters[$0.key] != nil || (inputGradient && $0.key == input) || keeping.contains($0.key) }
    }

    /// Forward-mode pass: the output's directional derivative for tangents of some parameters
    /// (and optionally the input), around the point recorded in `trace`.
    public func tangent(_ trace: Trace, parameterTangents: [String: Tensor], inputTangent: Tensor? = nil) throws -> Tensor {
        let all = try tangents(trace, parameterTangents: parameterTangents, inputTangent: inputTangent)
        return try all[output] ?? Tensor.zeros(trace.values[output]!.shape)
    }

    /// Total parameters of the conv and linear weights.
    public var weightCount: Int { layers.reduce(0) { $0 + $1.parameterCount } }
}

extension Model {
    /// Throws when a parameter or buffer holds NaN or infinity, naming it and its layer, for
    /// the operations whose results would otherwise be silently meaningless (sensitivities,
    /// Hessians, quantization, calibration). `data`, when given, is checked too.
    public func checkFinite(for operation: String, data: Tensor? = nil) throws {
        for name in parameterOrder + buffers.keys.sorted() {
            guard let t = parameters[name] ?? buffers[name], t.firstNonFinite != nil else { continue }
            let layer = layers.first { $0.weight == name || $0.bias == name }.map { " of layer '\($0.name)'" } ?? ""
            do { try t.checkFinite("'\(name)'\(layer)") } catch { throw NetworkError("\(operation): model '\(self.name)': \(error)") }
        }
        if let data { do { try data.checkFinite("the input data") } catch { throw NetworkError("\(operation): \(error)") } }
    }
}
