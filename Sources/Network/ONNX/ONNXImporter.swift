import Foundation
import SwiftProtobuf
import Tensors

/// Reads ONNX models (opsets 11–21) into the graph IR: initializers become parameters (or
/// batch-norm buffers), `Constant` nodes are folded, and every node becomes an `Op`. Anything
/// unsupported is an error naming the node and operator; a file that is not valid protobuf is
/// an error naming the byte offset where it stops making sense.
public enum ONNXImporter {
    public static let supportedOpsets = 11...21

    public static func load(path: String) throws -> Model {
        let bytes = try FileIO.read(path)
        return try load(bytes: bytes, name: URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent, source: path)
    }

    public static func load(bytes: [UInt8], name: String, source: String) throws -> Model {
        if let problem = ProtobufScan.firstProblem(bytes) {
            throw NetworkError("\(source): not a valid ONNX file: \(problem.reason) at byte \(problem.offset)")
        }
        let proto: Onnx_ModelProto
        do { proto = try Onnx_ModelProto(serializedBytes: bytes) } catch {
            throw NetworkError("\(source): not a valid ONNX file (protobuf: \(error))")
        }
        guard proto.hasGraph, !proto.graph.node.isEmpty else { throw NetworkError("\(source): the ONNX model has no graph") }
        let opset = proto.opsetImport.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }.map { Int($0.version) } ?? 0
        guard supportedOpsets.contains(opset) else {
            throw NetworkError("\(source): ONNX opset \(opset) is not supported; expected \(supportedOpsets.lowerBound)–\(supportedOpsets.upperBound)")
        }
        var reader = try GraphReader(graph: proto.graph, opset: opset, name: name, source: source)
        return try reader.model()
    }
}

/// Converts one GraphProto.
struct GraphReader {
    let graph: Onnx_GraphProto
    let opset: Int
    let name: String
    let source: String
    var constants: [String: Tensor] = [:]
    var integerConstants: [String: [Int]] = [:]
    /// QuantizeLinear outputs waiting for their DequantizeLinear: input, scale, code range
    /// relative to the zero point.
    var pendingQuantize: [String: (input: String, scale: Float, qmin: Int, qmax: Int)] = [:]

    init(graph: Onnx_GraphProto, opset: Int, name: String, source: String) throws {
        self.graph = graph; self.opset = opset; self.name = name; self.source = source
        for t in graph.initializer {
            let (values, ints) = try Self.decode(t, source: source)
            constants[t.name] = values
            if let ints { integerConstants[t.name] = ints }
        }
    }

    /// The largest kernel, stride, pad or dilation accepted.
    static let maxExtent = 1 << 16

    func fail(_ node: Onnx_NodeProto, _ message: String) -> NetworkError {
        NetworkError("\(source): node '\(node.name)' (\(node.opType)): \(message)")
    }

    /// A tensor's values as floats, and as integers for integer types (shapes, axes).
    static func decode(_ t: Onnx_TensorProto, source: String) throws -> (Tensor, [Int]?) {
        let shape = t.dims.map(Int.init)
        guard shape.allSatisfy({ $0 >= 0 }) else { throw NetworkError("\(source): tensor '\(t.name)' has negative dimensions \(shape)") }
        let n: Int
        do { n = try Tensor.elementCount(of: shape) } catch { throw NetworkError("\(source): tensor '\(t.name)': \(error)") }
        guard t.dataLocation == 0 else { throw NetworkError("\(source): tensor '\(t.name)' keeps its data in an external file; not supported") }
        let raw = [UInt8](t.rawData)
        func fromRaw<T>(_ size: Int, _ convert: (UInt64) -> T) throws -> [T] {
            guard raw.count == n * size else {
                throw NetworkError("\(source): tensor '\(t.name)' of shape \(shape) needs \(n * size) bytes of raw data, found \(raw.count)")
            }
            return (0..<n).map { i in
                var v: UInt64 = 0
                for b in 0..<size { v |= UInt64(raw[i * size + b]) << UInt64(8 * b) }
                return convert(v)
            }
        }
        func check(_ count: Int) throws {
            guard count == n else { throw NetworkError("\(source): tensor '\(t.name)' of shape \(shape) has \(count) values, expected \(n)") }
        }
        switch t.dataType == 21 || t.dataType == 22 ? nil : Onnx_TensorProto.DataType(rawValue: Int(t.dataType)) {
        case .float?:
            let v = raw.isEmpty ? t.floatData : try fromRaw(4) { Float(bitPattern: UInt32($0)) }
            try check(v.count)
            return (Tensor(checkedShape: shape, scalars: v), nil)
        case .double?:
            let v = raw.isEmpty ? t.doubleData.map(Float.init) : try fromRaw(8) { Float(Double(bitPattern: $0)) }
            try check(v.count)
            return (Tensor(checkedShape: shape, scalars: v), nil)
        case .int64?:
            let v = raw.isEmpty ? t.int64Data.map { Int($0) } : try fromRaw(8) { Int(Int64(bitPattern: $0)) }
            try check(v.count)
            return (Tensor(checkedShape: shape, scalars: v.map(Float.init)), v)
        case .int32?:
            let v = raw.isEmpty ? t.int32Data.map { Int($0) } : try fromRaw(4) { Int(Int32(truncatingIfNeeded: $0)) }
            try check(v.count)
            return (Tensor(checkedShape: shape, scalars: v.map(Float.init)), v)
        case .int8?:
            let v = raw.isEmpty ? t.int32Data.map { Int($0) } : try fromRaw(1) { Int(Int8(truncatingIfNeeded: $0)) }
            try check(v.count)
            return (Tensor(checkedShape: shape, scalars: v.map(Float.init)), v)
        case .uint8?:
            let v = raw.isEmpty ? t.int32Data.map { Int($0) } : try fromRaw(1) { Int(UInt8(truncatingIfNeeded: $0)) }
            try check(v.count)
            return (Tensor(checkedShape: shape, scalars: v.map(Float.init)), v)
        case .int16?, .uint16?:
            let signed = t.dataType == 5
            let v = raw.isEmpty ? t.int32Data.map { Int($0) } : try fromRaw(2) { signed ? Int(Int16(truncatingIfNeeded: $0)) : Int(UInt16(truncatingIfNeeded: $0)) }
            try check(v.count)
            return (Tensor(checkedShape: shape, scalars: v.map(Float.init)), v)
        case _ where t.dataType == 21 || t.dataType == 22:
            // UINT4 / INT4 (opset 21): two per byte, low nibble first.
            let signed = t.dataType == 22
            var v: [Int]
            if raw.isEmpty {
                v = t.int32Data.map { Int($0) }
            } else {
                guard raw.count == (n + 1) / 2 else {
                    throw NetworkError("\(source): tensor '\(t.name)' of shape \(shape) needs \((n + 1) / 2) bytes of 4-bit data, found \(raw.count)")
                }
                v = (0..<n).map { i in
                    let nibble = Int((raw[i / 2] >> (4 * UInt8(i % 2))) & 0x0f)
                    return signed && nibble >= 8 ? nibble - 16 : nibble
                }
            }
            try check(v.count)
            return (Tensor(checkedShape: shape, scalars: v.map(Float.init)), v)
        default:
            throw NetworkError("\(source): tensor '\(t.name)' has ONNX data type \(t.dataType), which mpq does not read")
        }
    }

    /// How many inputs each operator takes (optional ones included), as ONNX defines it.
    static let inputCounts: [String: ClosedRange<Int>] = [
        "Constant": 0...0, "Conv": 2...3, "Gemm": 2...3, "MatMul": 2...2, "Add": 2...2, "Mul": 2...2, "Relu": 1...1,
        "Clip": 1...3, "MaxPool": 1...1, "AveragePool": 1...1, "GlobalAveragePool": 1...1, "Flatten": 1...1,
        "Reshape": 2...2, "BatchNormalization": 5...5, "Softmax": 1...1, "Identity": 1...1, "Dropout": 1...3,
        "QuantizeLinear": 2...3, "DequantizeLinear": 2...3,
    ]

    /// Arity before anything reads a node's inputs: the count ONNX allows, and the data input present.
    func checkArity(_ n: Onnx_NodeProto) throws {
        guard let allowed = Self.inputCounts[n.opType] else { return }
        guard allowed.contains(n.input.count) else {
            let expected = allowed.count == 1 ? "\(allowed.lowerBound)" : "\(allowed.lowerBound) to \(allowed.upperBound)"
            throw fail(n, "expected \(expected) input\(allowed.upperBound == 1 ? "" : "s"), found \(n.input.count)")
        }
        if allowed.lowerBound > 0, n.input[0].isEmpty { throw fail(n, "its first input has no name") }
    }

    /// An integer list attribute with `count` entries, each in `range` (ONNX leaves sizes open;
    /// a stride of 0 or pads of 2^40 describe no network and would overflow the shape arithmetic).
    func ints(_ node: Onnx_NodeProto, _ key: String, count: Int, in range: ClosedRange<Int>) throws -> [Int]? {
        guard let v = ints(node, key) else { return nil }
        guard v.count == count else { throw fail(node, "expected \(count) values in '\(key)', found \(v)") }
        if let bad = v.first(where: { !range.contains($0) }) {
            throw fail(node, "'\(key)' value \(bad) is outside \(range.lowerBound)…\(range.upperBound)")
        }
        return v
    }

    func attribute(_ node: Onnx_NodeProto, _ key: String) -> Onnx_AttributeProto? { node.attribute.first { $0.name == key } }
    func ints(_ node: Onnx_NodeProto, _ key: String) -> [Int]? { attribute(node, key).map { $0.ints.map(Int.init) } }
    func int(_ node: Onnx_NodeProto, _ key: String) -> Int? { attribute(node, key).map { Int($0.i) } }
    func float(_ node: Onnx_NodeProto, _ key: String) -> Float? { attribute(node, key).map { $0.f } }
    func string(_ node: Onnx_NodeProto, _ key: String) -> String? { attribute(node, key).map { String(decoding: $0.s, as: UTF8.self) } }

    func checkAutoPad(_ node: Onnx_NodeProto) throws {
        if let pad = string(node, "auto_pad"), pad != "NOTSET", !pad.isEmpty {
            throw fail(node, "auto_pad \(pad) is not supported; export with explicit pads")
        }
    }

    /// A scalar from an optional constant input (Clip's min and max in opset ≥ 11).
    func constantScalar(_ node: Onnx_NodeProto, input i: Int) throws -> Float? {
        guard i < node.input.count, !node.input[i].isEmpty else { return nil }
        guard let t = constants[node.input[i]], t.count == 1 else {
            throw fail(node, "input \(i + 1) ('\(node.input[i])') must be a constant scalar")
        }
        return t.scalars[0]
    }


    /// QuantizeLinear / DequantizeLinear parameters: scales, zero points, and the code range of
    /// the zero point's type (uint8 when it is absent, as ONNX says).
    func quantizationParameters(_ n: Onnx_NodeProto) throws -> (scale: [Float], zero: [Int], lo: Int, hi: Int) {
        guard n.input.count >= 2, let s = constants[n.input[1]] else { throw fail(n, "the scale must be a constant") }
        guard s.scalars.allSatisfy({ $0 > 0 && $0.isFinite }) else { throw fail(n, "scales must be positive and finite") }
        var zero = [0], lo = 0, hi = 255
        if n.input.count > 2, !n.input[2].isEmpty {
            guard let z = integerConstants[n.input[2]] else { throw fail(n, "the zero point must be an integer constant") }
            zero = z
            let type = graph.initializer.first { $0.name == n.input[2] }?.dataType
            switch type.flatMap({ Onnx_TensorProto.DataType(rawValue: Int($0)) }) {
            case .int8?: (lo, hi) = (-128, 127)
            case .uint8?, nil: (lo, hi) = (0, 255)
            case .int32?: (lo, hi) = (Int(Int32.min), Int(Int32.max))
            case .int16?: (lo, hi) = (-32768, 32767)
            case .uint16?: (lo, hi) = (0, 65535)
            case _ where type == 22: (lo, hi) = (-8, 7)
            case _ where type == 21: (lo, hi) = (0, 15)
            default: throw fail(n, "zero points of ONNX type \(type ?? 0) are not supported")
            }
            // As the spec says: one zero point per scale, each a value of its type.
            guard zero.count == s.count else {
                throw fail(n, "expected \(s.count) zero point\(s.count == 1 ? "" : "s") (one per scale), found \(zero.count)")
            }
            if let bad = zero.first(where: { $0 < lo || $0 > hi }) { throw fail(n, "zero point \(bad) is outside its type's range \(lo)…\(hi)") }
        }
        return (s.scalars, zero, lo, hi)
    }

    mutating func model() throws -> Model {
        var nodes: [Node] = []
        var usedAs: [String: String] = [:]  // initializer name → "parameter" or "buffer"
        for (index, n) in graph.node.enumerated() {
            guard n.domain.isEmpty || n.domain == "ai.onnx" else { throw fail(n, "operator domain '\(n.domain)' is not supported") }
            guard let out = n.output.first, !out.isEmpty else { throw fail(n, "has no output") }
            try checkArity(n)
            let nodeName = n.name.isEmpty ? "\(n.opType)_\(index)" : n.name
            var inputs = n.input
            let op: Op
            switch n.opType {
            case "Constant":
                guard let a = attribute(n, "value"), a.hasT else { throw fail(n, "only tensor-valued Constant nodes are supported") }
                let (t, ints) = try Self.decode(a.t, source: source)
                constants[out] = t
                if let ints { integerConstants[out] = ints }
                continue
            case "Conv":
                try checkAutoPad(n)
                guard inputs.count >= 2, let w = constants[inputs[1]], w.rank == 4 else {
                    throw fail(n, "expected a constant 4-D weight (2-D convolution)")
                }
                let pads = try ints(n, "pads", count: 4, in: 0...Self.maxExtent) ?? [0, 0, 0, 0]
                let groups = int(n, "group") ?? 1
                guard groups >= 1, groups <= w.shape[0] else { throw fail(n, "group \(groups) must be in 1…\(w.shape[0]) (the output channels)") }
                op = .conv(ConvAttributes(strides: try ints(n, "strides", count: 2, in: 1...Self.maxExtent) ?? [1, 1], pads: pads,
                                          dilations: try ints(n, "dilations", count: 2, in: 1...Self.maxExtent) ?? [1, 1], groups: groups))
            case "Gemm":
                op = .gemm(GemmAttributes(alpha: float(n, "alpha") ?? 1, beta: float(n, "beta") ?? 1,
                                          transA: (int(n, "transA") ?? 0) != 0, transB: (int(n, "transB") ?? 0) != 0))
            case "MatMul": op = .matMul
            case "Add": op = .add
            case "Mul": op = .mul
            case "Relu": op = .relu
            case "Clip":
                let lo = try constantScalar(n, input: 1) ?? float(n, "min") ?? -.infinity
                let hi = try constantScalar(n, input: 2) ?? float(n, "max") ?? .infinity
                inputs = [inputs[0]]
                op = .clip(min: lo, max: hi)
            case "MaxPool", "AveragePool":
                try checkAutoPad(n)
                if (int(n, "ceil_mode") ?? 0) != 0 { throw fail(n, "ceil_mode=1 is not supported") }
                if let d = ints(n, "dilations"), d.contains(where: { $0 != 1 }) { throw fail(n, "dilated pooling is not supported") }
                if n.output.count > 1 { throw fail(n, "the indices output is not supported") }
                guard let k = try ints(n, "kernel_shape", count: 2, in: 1...Self.maxExtent) else { throw fail(n, "expected a 2-D kernel_shape") }
                let a = PoolAttributes(kernel: k, strides: try ints(n, "strides", count: 2, in: 1...Self.maxExtent) ?? [1, 1],
                                       pads: try ints(n, "pads", count: 4, in: 0...Self.maxExtent) ?? [0, 0, 0, 0],
                                       countIncludePad: (int(n, "count_include_pad") ?? 0) != 0)
                op = n.opType == "MaxPool" ? .maxPool(a) : .averagePool(a)
            case "GlobalAveragePool": op = .globalAveragePool
            case "Flatten": op = .flatten(axis: int(n, "axis") ?? 1)
            case "Reshape":
                guard inputs.count == 2, let shape = integerConstants[inputs[1]] else {
                    throw fail(n, "the target shape must be a constant")
                }
                if (int(n, "allowzero") ?? 0) != 0 { throw fail(n, "allowzero=1 is not supported") }
                inputs = [inputs[0]]
                op = .reshape(shape: shape)
            case "BatchNormalization":
                guard inputs.count == 5 else { throw fail(n, "expected 5 inputs") }
                if n.output.count > 1 { throw fail(n, "training-mode outputs are not supported") }
                op = .batchNorm(epsilon: float(n, "epsilon") ?? 1e-5, momentum: 1 - (float(n, "momentum") ?? 0.9))
                usedAs[inputs[3]] = "buffer"; usedAs[inputs[4]] = "buffer"
            case "Softmax": op = .softmax(axis: int(n, "axis") ?? (opset >= 13 ? -1 : 1))
            case "Identity", "Dropout":
                if n.output.count > 1 { throw fail(n, "the mask output is not supported") }
                op = .identity
            case "QuantizeLinear":
                // Q→DQ on an activation becomes one FakeQuantize (at the DequantizeLinear).
                let (scale, zero, lo, hi) = try quantizationParameters(n)
                guard scale.count == 1 else { throw fail(n, "per-channel quantization of an activation is not supported") }
                if let x = constants[inputs[0]] {
                    constants[out] = x.map { v in Float(min(max((v / scale[0]).rounded(.toNearestOrEven) + Float(zero[0]), Float(lo)), Float(hi))) }
                    continue
                }
                pendingQuantize[out] = (inputs[0], scale[0], lo - zero[0], hi - zero[0])
                continue
            case "DequantizeLinear":
                guard inputs.count >= 2 else { throw fail(n, "expected x and x_scale") }
                if let q = pendingQuantize[inputs[0]] {
                    let (scale, zero, lo, hi) = try quantizationParameters(n)
                    guard scale.count == 1, scale[0] == q.scale else {
                        throw fail(n, "dequantizes with another scale than its QuantizeLinear; not supported")
                    }
                    guard lo - zero[0] == q.qmin, hi - zero[0] == q.qmax else {
                        throw fail(n, "dequantizes with another zero point or type than its QuantizeLinear; not supported")
                    }
                    inputs = [q.input]
                    op = .fakeQuantize(scale: q.scale, qmin: q.qmin, qmax: q.qmax)
                    break
                }
                guard let x = constants[inputs[0]] else {
                    throw fail(n, "input '\(inputs[0])' is neither a constant nor the output of a QuantizeLinear")
                }
                // A quantized constant (weights, Int32 biases): folded to floats.
                let (scale, zero, _, _) = try quantizationParameters(n)
                let axis = int(n, "axis") ?? 1
                let a = axis < 0 ? axis + x.rank : axis
                guard scale.count == 1 || (a >= 0 && a < x.rank && x.shape[a] == scale.count) else {
                    throw fail(n, "\(scale.count) scales do not match axis \(axis) of \(x.shape)")
                }
                let inner = scale.count == 1 ? x.count : x.shape[(a + 1)...].reduce(1, *)
                var v = x.scalars
                for i in v.indices {
                    let c = scale.count == 1 ? 0 : (i / inner) % scale.count
                    v[i] = (v[i] - Float(zero.count == 1 ? zero[0] : zero[c])) * scale[c]
                }
                constants[out] = Tensor(checkedShape: x.shape, scalars: v)
                continue
            default:
                throw fail(n, "operator \(n.opType) is not supported (supported: Conv, Gemm, MatMul, Add, Mul, Relu, Clip, MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape, BatchNormalization, Softmax, Identity, Dropout, Constant, QuantizeLinear, DequantizeLinear)")
            }
            for i in inputs where constants[i] != nil && usedAs[i] == nil { usedAs[i] = "parameter" }
            nodes.append(Node(name: nodeName, op: op, inputs: inputs, outputs: [out]))
        }
        let initializerNames = Set(graph.initializer.map(\.name)).union(constants.keys)
        guard let input = graph.input.first(where: { !initializerNames.contains($0.name) }) else {
            throw NetworkError("\(source): the graph has no input")
        }
        guard let output = graph.output.first?.name else { throw NetworkError("\(source): the graph has no output") }
        let dims = input.type.tensorType.shape.dim.map { Int($0.dimValue) }
        guard dims.count >= 2, dims.dropFirst().allSatisfy({ $0 > 0 }) else {
            throw NetworkError("\(source): input '\(input.name)' must have a fixed shape after the batch axis, found \(dims)")
        }
        var params: [(String, Tensor)] = [], buffers: [(String, Tensor)] = []
        var seen = Set<String>()
        for node in nodes {
            for i in node.inputs where !seen.contains(i) {
                guard let kind = usedAs[i], let t = constants[i] else { continue }
                seen.insert(i)
                if kind == "buffer" { buffers.append((i, t)) } else { params.append((i, t)) }
            }
        }
        return try Model(name: name, nodes: nodes, input: input.name, output: output, inputShape: Array(dims.dropFirst()),
                         parameters: params, buffers: buffers)
    }
}
