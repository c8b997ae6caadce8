import Foundation
import SwiftProtobuf
import Tensors

/// Reads ONNX models (opsets 6–21, each operator with its version's semantics) into the graph
/// IR: initializers become parameters (or batch-norm buffers), nodes whose inputs are all
/// constants are folded at import (Constant, shape arithmetic, weights made by ConstantOfShape),
/// and every other node becomes an `Op`. Initializers kept in external files (`.onnx.data`) are
/// read from the model's folder and nowhere else. Unsupported operators are listed all at once;
/// a file that is not valid protobuf is an error naming the byte offset where it stops making
/// sense.
public enum ONNXImporter {
    /// Opset 6 differs from 7 in broadcasting (`broadcast`/`axis` attributes), handled where it
    /// matters; ONNX Runtime reads 7 and later.
    public static let supportedOpsets = 6...21

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
        let folder = URL(fileURLWithPath: source).deletingLastPathComponent().path
        var reader = try GraphReader(graph: proto.graph, opset: opset, name: name, source: source, folder: folder)
        return try reader.model()
    }
}

/// Converts one GraphProto.
struct GraphReader {
    let graph: Onnx_GraphProto
    let opset: Int
    let name: String
    let source: String
    /// The model's folder: external data files must lie inside it.
    let folder: String
    var constants: [String: Tensor] = [:]
    var integerConstants: [String: [Int]] = [:]
    /// Values computed when the model runs that hold integers (shape arithmetic): Div on them
    /// truncates, as ONNX's integer Div does.
    var integerValues = Set<String>()
    var nodes: [Node] = []
    /// Initializer name → "parameter" or "buffer".
    var usedAs: [String: String] = [:]
    /// Every value some node or the graph output reads.
    var readers = Set<String>()
    /// External data files already read, by path.
    var externalFiles: [String: [UInt8]] = [:]
    /// QuantizeLinear outputs waiting for their DequantizeLinear: input, scale, code range
    /// relative to the zero point.
    var pendingQuantize: [String: (input: String, scale: Float, qmin: Int, qmax: Int)] = [:]

    init(graph: Onnx_GraphProto, opset: Int, name: String, source: String, folder: String) throws {
        self.graph = graph; self.opset = opset; self.name = name; self.source = source; self.folder = folder
        for t in graph.initializer {
            let (values, ints) = try Self.decode(try resolveExternal(t), source: source)
            constants[t.name] = values
            if let ints { integerConstants[t.name] = ints }
        }
        for n in graph.node { readers.formUnion(n.input) }
        readers.formUnion(graph.output.map(\.name))
    }

    /// A tensor whose data lives in an external file, with that data read in as raw bytes.
    /// The location must be a relative path inside the model's folder (no `..`, no absolute
    /// paths, no symbolic links out of it); offset and length must lie inside the file.
    mutating func resolveExternal(_ t: Onnx_TensorProto) throws -> Onnx_TensorProto {
        guard t.dataLocation == 1 else { return t }
        let entries = ProtobufScan.stringPairs([UInt8](t.unknownFields.data), field: 13)
        let info = Dictionary(entries.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        guard let location = info["location"], !location.isEmpty else {
            throw NetworkError("\(source): tensor '\(t.name)' keeps its data in an external file but names none")
        }
        let base = URL(fileURLWithPath: folder).standardizedFileURL.resolvingSymlinksInPath().path
        let target = URL(fileURLWithPath: location, relativeTo: URL(fileURLWithPath: base + "/")).standardizedFileURL.resolvingSymlinksInPath().path
        guard !location.hasPrefix("/"), !location.split(separator: "/").contains(".."), target.hasPrefix(base + "/") else {
            throw NetworkError("\(source): tensor '\(t.name)': external data '\(location)' lies outside the model's folder \(base); refused")
        }
        if externalFiles[target] == nil {
            do { externalFiles[target] = try FileIO.read(target) } catch {
                throw NetworkError("\(source): tensor '\(t.name)': cannot read its external data '\(location)': \(error)")
            }
        }
        let bytes = externalFiles[target]!
        let offset = Int(info["offset"] ?? "0") ?? -1
        let length = info["length"].flatMap { Int($0) } ?? (bytes.count - max(offset, 0))
        guard offset >= 0, length >= 0, offset <= bytes.count, length <= bytes.count - offset else {
            throw NetworkError("\(source): tensor '\(t.name)': external data '\(location)' has \(bytes.count) bytes; offset \(info["offset"] ?? "0") and length \(info["length"] ?? "?") do not fit")
        }
        var copy = t
        copy.dataLocation = 0
        copy.rawData = Data(bytes[offset..<(offset + length)])
        return copy
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
        guard t.dataLocation == 0 else { throw NetworkError("\(source): tensor '\(t.name)' keeps its data in an external file, which only initializers may do") }
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
        case .string?:
            throw NetworkError("\(source): tensor '\(t.name)' holds strings, which mpq does not read")
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
        case .bool?:
            let v = raw.isEmpty ? t.int32Data.map { Int($0) } : try fromRaw(1) { $0 == 0 ? 0 : 1 }
            try check(v.count)
            return (Tensor(checkedShape: shape, scalars: v.map(Float.init)), v)
        case .uint64?, .uint32?:
            let wide = t.dataType == 13
            let v = raw.isEmpty ? t.uint64Data.map { Int(clamping: $0) } : try fromRaw(wide ? 8 : 4) { Int(clamping: $0) }
            try check(v.count)
            return (Tensor(checkedShape: shape, scalars: v.map(Float.init)), v)
        case .float16?:
            let v = raw.isEmpty ? t.int32Data.map { Float(Float16(bitPattern: UInt16(truncatingIfNeeded: $0))) }
                : try fromRaw(2) { Float(Float16(bitPattern: UInt16(truncatingIfNeeded: $0))) }
            try check(v.count)
            return (Tensor(checkedShape: shape, scalars: v), nil)
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
        "Sub": 2...2, "Div": 2...2, "Pow": 2...2, "PRelu": 2...2, "Transpose": 1...1, "Shape": 1...1,
        "Sigmoid": 1...1, "Tanh": 1...1, "HardSigmoid": 1...1, "HardSwish": 1...1, "Erf": 1...1, "Sqrt": 1...1,
        "Exp": 1...1, "Log": 1...1, "Neg": 1...1, "Abs": 1...1, "Reciprocal": 1...1, "LeakyRelu": 1...1, "Elu": 1...1,
        "Softplus": 1...1, "Gelu": 1...1, "LRN": 1...1, "Gather": 2...2, "Expand": 2...2, "ConstantOfShape": 1...1,
        "Slice": 1...5, "Pad": 1...4, "Squeeze": 1...2, "Unsqueeze": 1...2, "ReduceMean": 1...2, "ReduceSum": 1...2,
        "Resize": 1...4, "Upsample": 1...2, "LayerNormalization": 2...3, "Split": 1...2, "Cast": 1...1, "Equal": 2...2,
        "Where": 3...3, "Range": 3...3, "Max": 1...2, "Min": 1...2, "Mod": 2...2,
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
        try checkOperators()
        // One input tensor: graph inputs that no initializer fills (before opset 9 initializers
        // were listed among the inputs too).
        let initialized = Set(graph.initializer.map(\.name))
        let inputs = graph.input.filter { !initialized.contains($0.name) }
        guard let input = inputs.first else { throw NetworkError("\(source): the graph has no input") }
        guard inputs.count == 1 else {
            throw NetworkError("\(source): the graph has \(inputs.count) inputs (\(inputs.map { "'\($0.name)'" }.joined(separator: ", "))); an mpq model takes one input tensor")
        }
        for (index, n) in graph.node.enumerated() {
            guard let out = n.output.first, !out.isEmpty else { throw fail(n, "has no output") }
            try checkArity(n)
            try convert(n, name: n.name.isEmpty ? "\(n.opType)_\(index)" : n.name)
        }
        guard let output = graph.output.first?.name else { throw NetworkError("\(source): the graph has no output") }
        guard graph.output.count == 1 else {
            throw NetworkError("\(source): the graph has \(graph.output.count) outputs (\(graph.output.map { "'\($0.name)'" }.joined(separator: ", "))); an mpq model gives one output tensor")
        }
        let dims = input.type.tensorType.shape.dim.map { Int($0.dimValue) }
        guard dims.count >= 2, dims.dropFirst().allSatisfy({ $0 > 0 }) else {
            throw NetworkError("\(source): input '\(input.name)' must have a fixed shape after the batch axis, found \(dims)")
        }
        if constants[output] != nil, !nodes.contains(where: { $0.outputs.contains(output) }) {
            throw NetworkError("\(source): the output '\(output)' does not depend on the input")
        }
        var params: [(String, Tensor)] = [], buffers: [(String, Tensor)] = []
        var seen = Set<String>()
        for node in nodes {
            for i in node.inputs where !seen.contains(i) {
                guard let t = constants[i] else { continue }
                seen.insert(i)
                if usedAs[i] == "buffer" { buffers.append((i, t)) } else { params.append((i, t)) }
            }
        }
        return try Model(name: name, nodes: nodes, input: input.name, output: output, inputShape: Array(dims.dropFirst()),
                         parameters: params, buffers: buffers)
    }
}
