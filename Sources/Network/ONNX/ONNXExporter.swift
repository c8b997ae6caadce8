import Foundation
import SwiftProtobuf
import Tensors

/// Writes a model as ONNX (opset 21, IR version 10), for ONNX Runtime and other tools.
///
/// Every op maps to its ONNX operator. Quantization becomes QDQ:
/// - a weight given in `quantizedWeights` is stored as its integer codes (INT4 when every code
///   fits 4 bits, INT8 otherwise) with one scale per output channel and zero point 0, and a
///   DequantizeLinear (axis 0) feeds the layer — so the file's size follows the bits;
/// - `FakeQuantize(s, qmin, qmax)` becomes QuantizeLinear → DequantizeLinear at scale s in the
///   smallest integer type holding qmin…qmax (uint8, int8, uint16, int16), with a Clip to
///   [qmin·s, qmax·s] before it when the code range is narrower than the type's; a
///   fake quantization whose range no 16-bit type holds (rounding only) is Div → Round → Mul;
/// - `Binarize(s)` is Where(x ≥ 0, s, −s); LSQ's `LearnedQuantize` is Div → Round → Clip → Mul
///   with its learned step.
/// The integer engine's `Requantize` has no ONNX counterpart and is refused.
public enum ONNXExporter {
    /// Integer codes of a constant with one scale per slice of dimension 0.
    public struct QuantizedConstant: Sendable {
        public var codes: [Int8]
        public var shape: [Int]
        public var scales: [Float]
        public init(codes: [Int8], shape: [Int], scales: [Float]) { self.codes = codes; self.shape = shape; self.scales = scales }
    }

    public static let opset = 21

    /// The ONNX bytes of `model`.
    public static func export(_ model: Model, quantizedWeights: [String: QuantizedConstant] = [:]) throws -> [UInt8] {
        var writer = Writer()
        try writer.write(model, quantizedWeights: quantizedWeights)
        var proto = Onnx_ModelProto()
        proto.irVersion = 10
        proto.producerName = "mpq"
        var opset = Onnx_OperatorSetIdProto()
        opset.domain = ""
        opset.version = Int64(Self.opset)
        proto.opsetImport = [opset]
        proto.graph = writer.graph
        let data: Data = try proto.serializedBytes()
        return [UInt8](data)
    }

    /// Writes `model` to `path` atomically.
    public static func save(_ model: Model, to path: String, quantizedWeights: [String: QuantizedConstant] = [:]) throws {
        try FileIO.writeAtomically(try export(model, quantizedWeights: quantizedWeights), to: path)
    }

    struct Writer {
        var graph = Onnx_GraphProto()
        var counter = 0

        mutating func fresh(_ base: String) -> String {
            counter += 1
            return "\(base)__\(counter)"
        }

        mutating func initializer(_ name: String, _ t: Tensor) {
            var p = Onnx_TensorProto()
            p.name = name
            p.dims = t.shape.map(Int64.init)
            p.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
            p.rawData = t.scalars.withUnsafeBufferPointer { Data(buffer: $0) }
            graph.initializer.append(p)
        }

        mutating func scalar(_ name: String, _ v: Float) -> String {
            let n = fresh(name)
            initializer(n, Tensor(checkedShape: [], scalars: [v]))
            return n
        }

        /// A fresh 1-D int64 initializer holding `values`; its name.
        mutating func intList(_ base: String, _ values: [Int]) -> String {
            let name = fresh(base)
            integers(name, values, shape: [values.count], type: 7)
            return name
        }

        /// An integer initializer of ONNX type `type` (2 uint8, 3 int8, 4 uint16, 5 int16,
        /// 7 int64, 22 int4 packed two per byte, low nibble first).
        mutating func integers(_ name: String, _ values: [Int], shape: [Int], type: Int32) {
            var p = Onnx_TensorProto()
            p.name = name
            p.dims = shape.map(Int64.init)
            p.dataType = type
            var bytes = [UInt8]()
            switch type {
            case 2, 3: bytes = values.map { UInt8(truncatingIfNeeded: $0) }
            case 4, 5: for v in values { let u = UInt16(truncatingIfNeeded: v); bytes += [UInt8(u & 0xff), UInt8(u >> 8)] }
            case 7: for v in values { let u = UInt64(bitPattern: Int64(v)); bytes += (0..<8).map { UInt8((u >> (8 * $0)) & 0xff) } }
            case 22:
                bytes = [UInt8](repeating: 0, count: (values.count + 1) / 2)
                for (i, v) in values.enumerated() { bytes[i / 2] |= (UInt8(truncatingIfNeeded: v) & 0x0f) << (4 * UInt8(i % 2)) }
            default: break
            }
            p.rawData = Data(bytes)
            graph.initializer.append(p)
        }

        var nodeNames = Set<String>()

        mutating func node(_ op: String, _ inputs: [String], _ outputs: [String], name: String, _ attributes: [Onnx_AttributeProto] = []) {
            var n = Onnx_NodeProto()
            // ONNX wants node names unique; a repeated one gets a numbered suffix.
            var unique = name.isEmpty ? op : name
            if nodeNames.contains(unique) { unique = fresh(unique) }
            nodeNames.insert(unique)
            n.opType = op; n.input = inputs; n.output = outputs; n.name = unique; n.attribute = attributes
            graph.node.append(n)
        }

        static func ints(_ name: String, _ v: [Int]) -> Onnx_AttributeProto {
            var a = Onnx_AttributeProto(); a.name = name; a.type = .ints; a.ints = v.map(Int64.init); return a
        }
        static func int(_ name: String, _ v: Int) -> Onnx_AttributeProto {
            var a = Onnx_AttributeProto(); a.name = name; a.type = .int; a.i = Int64(v); return a
        }
        static func float(_ name: String, _ v: Float) -> Onnx_AttributeProto {
            var a = Onnx_AttributeProto(); a.name = name; a.type = .float; a.f = v; return a
        }
        static func string(_ name: String, _ v: String) -> Onnx_AttributeProto {
            var a = Onnx_AttributeProto(); a.name = name; a.type = .string; a.s = Data(v.utf8); return a
        }

        /// The smallest integer type holding lo…hi: (ONNX type, its range).
        static func integerType(_ lo: Int, _ hi: Int) -> (type: Int32, lo: Int, hi: Int)? {
            if lo >= 0 && hi <= 255 { return (2, 0, 255) }
            if lo >= -128 && hi <= 127 { return (3, -128, 127) }
            if lo >= 0 && hi <= 65535 { return (4, 0, 65535) }
            if lo >= -32768 && hi <= 32767 { return (5, -32768, 32767) }
            return nil
        }

        mutating func write(_ model: Model, quantizedWeights: [String: QuantizedConstant]) throws {
            graph.name = model.name
            var input = Onnx_ValueInfoProto()
            input.name = model.input
            var type = Onnx_TypeProto()
            var tensor = Onnx_TypeProto.Tensor()
            tensor.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
            var shape = Onnx_TensorShapeProto()
            var batch = Onnx_TensorShapeProto.Dimension(); batch.dimParam = "N"
            shape.dim = [batch] + model.inputShape.map { var d = Onnx_TensorShapeProto.Dimension(); d.dimValue = Int64($0); return d }
            tensor.shape = shape
            type.tensorType = tensor
            input.type = type
            graph.input = [input]
            var output = Onnx_ValueInfoProto()
            output.name = model.output
            var outType = Onnx_TypeProto(); var outTensor = Onnx_TypeProto.Tensor()
            outTensor.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
            outType.tensorType = outTensor
            output.type = outType
            graph.output = [output]

            for name in model.parameterOrder {
                let t = model.parameters[name]!
                if let q = quantizedWeights[name] {
                    guard q.shape == t.shape, q.codes.count == t.count, q.scales.count == t.shape.first ?? 0 else {
                        throw NetworkError("export: the codes given for '\(name)' do not match its shape \(t.shape)")
                    }
                    let narrow = q.codes.allSatisfy { (-8...7).contains($0) }
                    let type: Int32 = narrow ? 22 : 3
                    integers(name + "/codes", q.codes.map(Int.init), shape: q.shape, type: type)
                    initializer(name + "/scale", Tensor(checkedShape: [q.scales.count], scalars: q.scales.map { $0 > 0 ? $0 : 1 }))
                    integers(name + "/zero", Array(repeating: 0, count: q.scales.count), shape: [q.scales.count], type: type)
                    node("DequantizeLinear", [name + "/codes", name + "/scale", name + "/zero"], [name], name: name + "/DequantizeLinear",
                         [Self.int("axis", 0)])
                } else {
                    initializer(name, t)
                }
            }
            for (name, t) in model.buffers.sorted(by: { $0.key < $1.key }) { initializer(name, t) }

            for n in model.nodes {
                let x = n.inputs, y = n.outputs
                switch n.op {
                case .conv(let a):
                    let w = model.parameters[x[1]]?.shape ?? []
                    node("Conv", x, y, name: n.name, [Self.ints("strides", a.strides), Self.ints("pads", a.pads), Self.ints("dilations", a.dilations),
                                                      Self.int("group", a.groups)] + (w.count == 4 ? [Self.ints("kernel_shape", Array(w[2...]))] : []))
                case .gemm(let a):
                    node("Gemm", x, y, name: n.name, [Self.float("alpha", a.alpha), Self.float("beta", a.beta),
                                                      Self.int("transA", a.transA ? 1 : 0), Self.int("transB", a.transB ? 1 : 0)])
                case .matMul: node("MatMul", x, y, name: n.name)
                case .add: node("Add", x, y, name: n.name)
                case .mul: node("Mul", x, y, name: n.name)
                case .relu: node("Relu", x, y, name: n.name)
                case .clip(let lo, let hi):
                    node("Clip", [x[0], scalar(n.name + "/min", lo), scalar(n.name + "/max", hi)], y, name: n.name)
                case .maxPool(let p):
                    node("MaxPool", x, y, name: n.name, [Self.ints("kernel_shape", p.kernel), Self.ints("strides", p.strides), Self.ints("pads", p.pads),
                                                         Self.int("ceil_mode", p.ceilMode ? 1 : 0)])
                case .averagePool(let p):
                    node("AveragePool", x, y, name: n.name, [Self.ints("kernel_shape", p.kernel), Self.ints("strides", p.strides), Self.ints("pads", p.pads),
                                                             Self.int("count_include_pad", p.countIncludePad ? 1 : 0), Self.int("ceil_mode", p.ceilMode ? 1 : 0)])
                case .globalAveragePool: node("GlobalAveragePool", x, y, name: n.name)
                case .flatten(let axis): node("Flatten", x, y, name: n.name, [Self.int("axis", axis)])
                case .reshape(let shape):
                    if x.count > 1 { node("Reshape", x, y, name: n.name); continue }
                    node("Reshape", [x[0], intList(n.name + "/shape", shape)], y, name: n.name)
                case .batchNorm(let epsilon, let momentum):
                    node("BatchNormalization", x, y, name: n.name, [Self.float("epsilon", epsilon), Self.float("momentum", 1 - momentum)])
                case .softmax(let axis): node("Softmax", x, y, name: n.name, [Self.int("axis", axis)])
                case .logSoftmax(let axis): node("LogSoftmax", x, y, name: n.name, [Self.int("axis", axis)])
                case .identity: node("Identity", x, y, name: n.name)
                case .fakeQuantize(let s, let qmin, let qmax):
                    guard s > 0 else {
                        node("Mul", [x[0], scalar(n.name + "/zero", 0)], y, name: n.name)
                        continue
                    }
                    if let t = Self.integerType(qmin, qmax) {
                        var v = x[0]
                        if qmin > t.lo || qmax < t.hi {
                            let clipped = fresh(n.name + "/clipped")
                            node("Clip", [v, scalar(n.name + "/lo", Float(qmin) * s), scalar(n.name + "/hi", Float(qmax) * s)], [clipped], name: n.name + "/Clip")
                            v = clipped
                        }
                        let scale = scalar(n.name + "/scale", s)
                        let zero = fresh(n.name + "/zero")
                        integers(zero, [0], shape: [], type: t.type)
                        let codes = fresh(n.name + "/codes")
                        node("QuantizeLinear", [v, scale, zero], [codes], name: n.name + "/QuantizeLinear")
                        node("DequantizeLinear", [codes, scale, zero], y, name: n.name + "/DequantizeLinear")
                    } else {
                        let (a, b) = (fresh(n.name + "/scaled"), fresh(n.name + "/rounded"))
                        let scale = scalar(n.name + "/scale", s)
                        node("Div", [x[0], scale], [a], name: n.name + "/Div")
                        node("Round", [a], [b], name: n.name + "/Round")
                        node("Mul", [b, scale], y, name: n.name + "/Mul")
                    }
                case .binarize(let s):
                    let test = fresh(n.name + "/nonnegative")
                    node("GreaterOrEqual", [x[0], scalar(n.name + "/zero", 0)], [test], name: n.name + "/GreaterOrEqual")
                    node("Where", [test, scalar(n.name + "/plus", s), scalar(n.name + "/minus", -s)], y, name: n.name + "/Where")
                case .learnedQuantize(let qmin, let qmax):
                    let (a, b, c) = (fresh(n.name + "/scaled"), fresh(n.name + "/rounded"), fresh(n.name + "/clipped"))
                    node("Div", [x[0], x[1]], [a], name: n.name + "/Div")
                    node("Round", [a], [b], name: n.name + "/Round")
                    node("Clip", [b, scalar(n.name + "/qmin", Float(qmin)), scalar(n.name + "/qmax", Float(qmax))], [c], name: n.name + "/Clip")
                    node("Mul", [c, x[1]], y, name: n.name + "/Mul")
                case .pointwise(let f):
                    switch f {
                    case .hardSigmoid(let a, let b): node("HardSigmoid", x, y, name: n.name, [Self.float("alpha", a), Self.float("beta", b)])
                    case .leakyRelu(let a): node("LeakyRelu", x, y, name: n.name, [Self.float("alpha", a)])
                    case .elu(let a): node("Elu", x, y, name: n.name, [Self.float("alpha", a)])
                    case .selu(let a, let g): node("Selu", x, y, name: n.name, [Self.float("alpha", a), Self.float("gamma", g)])
                    case .shrink(let l, let b): node("Shrink", x, y, name: n.name, [Self.float("lambd", l), Self.float("bias", b)])
                    case .power(let p): node("Pow", [x[0], scalar(n.name + "/exponent", p)], y, name: n.name)
                    case .gelu(let approximate):
                        node("Gelu", x, y, name: n.name, [Self.string("approximate", approximate ? "tanh" : "none")])
                    default: node(f.onnxName, x, y, name: n.name)
                    }
                case .binary(let f):
                    node(f.onnxName, x, y, name: n.name)
                case .concat(let axis): node("Concat", x, y, name: n.name, [Self.int("axis", axis)])
                case .transpose(let perm): node("Transpose", x, y, name: n.name, perm.isEmpty ? [] : [Self.ints("perm", perm)])
                case .slice(let sa):
                    if x.count > 1 {
                        node("Slice", x, y, name: n.name)
                    } else if sa.steps == [0] {
                        // One equal part of a Split: all parts are written, this one kept.
                        let parts = (0..<sa.ends[0]).map { $0 == sa.starts[0] ? y[0] : fresh(n.name + "/part\($0)") }
                        node("Split", [x[0]], parts, name: n.name, [Self.int("axis", sa.axes[0]), Self.int("num_outputs", sa.ends[0])])
                    } else {
                        node("Slice", [x[0], intList(n.name + "/starts", sa.starts), intList(n.name + "/ends", sa.ends),
                                       intList(n.name + "/axes", sa.axes), intList(n.name + "/steps", sa.steps)], y, name: n.name)
                    }
                case .pad(let p):
                    node("Pad", [x[0], intList(n.name + "/pads", p.pads), scalar(n.name + "/value", p.value)] + (p.axes.map { [intList(n.name + "/axes", $0)] } ?? []),
                         y, name: n.name, [Self.string("mode", p.mode.rawValue)])
                case .gather(let axis, let indices, let indexShape):
                    if x.count > 1 {
                        node("Gather", x, y, name: n.name, [Self.int("axis", axis)])
                    } else {
                        let i = fresh(n.name + "/indices")
                        integers(i, indices, shape: indexShape, type: 7)
                        node("Gather", [x[0], i], y, name: n.name, [Self.int("axis", axis)])
                    }
                case .expand(let shape):
                    node("Expand", x.count > 1 ? x : [x[0], intList(n.name + "/shape", shape)], y, name: n.name)
                case .unsqueeze(let axes): node("Unsqueeze", [x[0], intList(n.name + "/axes", axes)], y, name: n.name)
                case .squeeze(let axes): node("Squeeze", [x[0]] + (axes.map { [intList(n.name + "/axes", $0)] } ?? []), y, name: n.name)
                case .resize(let r):
                    var ins = [x[0], ""]
                    if let sizes = r.sizes { ins += ["", intList(n.name + "/sizes", sizes)] } else {
                        let s = fresh(n.name + "/scales")
                        let scales = r.scales ?? []
                        initializer(s, Tensor(checkedShape: [scales.count], scalars: scales))
                        ins.append(s)
                    }
                    node("Resize", ins, y, name: n.name, [Self.string("mode", r.mode.rawValue), Self.string("coordinate_transformation_mode", r.coordinates.rawValue),
                                                         Self.string("nearest_mode", r.nearest.rawValue)])
                case .reduce(let r, let axes, let keep):
                    node(r.onnxName, [x[0]] + (axes.map { [intList(n.name + "/axes", $0)] } ?? []), y, name: n.name, [Self.int("keepdims", keep ? 1 : 0)])
                case .layerNorm(let axis, let eps):
                    node("LayerNormalization", x, y, name: n.name, [Self.int("axis", axis), Self.float("epsilon", eps)])
                case .lrn(let a):
                    node("LRN", x, y, name: n.name, [Self.int("size", a.size), Self.float("alpha", a.alpha), Self.float("beta", a.beta), Self.float("bias", a.bias)])
                case .shape(let start, let end):
                    node("Shape", x, y, name: n.name, [Self.int("start", start)] + (end.map { [Self.int("end", $0)] } ?? []))
                case .constantOfShape(let v):
                    var a = Onnx_AttributeProto(); a.name = "value"; a.type = .tensor
                    var t = Onnx_TensorProto(); t.dims = [1]; t.dataType = 1; t.floatData = [v]; a.t = t
                    node("ConstantOfShape", x, y, name: n.name, [a])
                case .range: node("Range", x, y, name: n.name)
                case .where: node("Where", x, y, name: n.name)
                case .requantize:
                    throw NetworkError("export: node '\(n.name)' is an integer engine's requantization, which ONNX has no operator for; export the engine itself (export(q, path)) or its .simulation")
                case .binaryWeights:
                    // α_c·sign(W): α = ReduceMean(|W|) over all but the output channels, then Where(W ≥ 0, α, −α).
                    guard let rank = model.parameters[x[0]]?.rank, rank >= 2 else {
                        throw NetworkError("export: node '\(n.name)' binarizes '\(x[0])', which is not a weight of rank ≥ 2")
                    }
                    let (absolute, alpha, negative, test) = (fresh(n.name + "/abs"), fresh(n.name + "/alpha"), fresh(n.name + "/negative"), fresh(n.name + "/nonnegative"))
                    node("Abs", [x[0]], [absolute], name: n.name + "/Abs")
                    node("ReduceMean", [absolute, intList(n.name + "/axes", Array(1..<rank))], [alpha], name: n.name + "/ReduceMean", [Self.int("keepdims", 1)])
                    node("Neg", [alpha], [negative], name: n.name + "/Neg")
                    node("GreaterOrEqual", [x[0], scalar(n.name + "/zero", 0)], [test], name: n.name + "/GreaterOrEqual")
                    node("Where", [test, alpha, negative], y, name: n.name + "/Where")
                case .mixedQuantize, .gumbelQuantize:
                    throw NetworkError("export: node '\(n.name)' is a search layer (\(n.op.onnxName == "MixedQuantize" ? "EdMIPS' mixed quantizer" : "HMQ's Gumbel quantizer")), which ONNX has no operator for; export the searched result (its policy's quantized model)")
                }
            }
        }
    }
}
