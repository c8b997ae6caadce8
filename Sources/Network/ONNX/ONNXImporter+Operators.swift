import Foundation
import Tensors

/// Each ONNX operator, at the graph's opset, converted into graph ops (or folded at import when
/// its inputs are constants).
extension GraphReader {
    /// The operators this importer reads (folded-only ones included).
    static let supportedOperators: Set<String> = [
        "Constant", "Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Pow", "Relu", "Clip", "MaxPool", "AveragePool",
        "GlobalAveragePool", "Flatten", "Reshape", "BatchNormalization", "Softmax", "LogSoftmax", "Identity", "Dropout",
        "QuantizeLinear", "DequantizeLinear", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Erf", "Sqrt", "Exp", "Log",
        "Neg", "Abs", "Reciprocal", "Softplus", "LeakyRelu", "Elu", "Selu", "Sign", "Shrink", "PRelu", "Gelu", "Concat", "Transpose", "Slice", "Split", "Mod",
        "Pad", "Squeeze", "Unsqueeze", "Gather", "Shape", "ConstantOfShape", "Expand", "Cast", "Equal", "Where", "Range",
        "ReduceMean", "ReduceSum", "LayerNormalization", "Sum", "Max", "Min", "LRN", "Resize", "Upsample",
    ]

    /// Every operator the graph uses that mpq does not read, all at once.
    func checkOperators() throws {
        var missing: [String: Int] = [:]
        var domains = Set<String>()
        for n in graph.node {
            if !(n.domain.isEmpty || n.domain == "ai.onnx") { domains.insert(n.domain); continue }
            if !Self.supportedOperators.contains(n.opType) { missing[n.opType, default: 0] += 1 }
        }
        guard missing.isEmpty && domains.isEmpty else {
            var parts = missing.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value) node\($0.value == 1 ? "" : "s"))" }
            parts += domains.sorted().map { "operators of domain '\($0)'" }
            throw NetworkError("\(source): mpq does not support \(parts.joined(separator: ", ")); supported: \(Self.supportedOperators.sorted().joined(separator: ", "))")
        }
    }

    func isInteger(_ name: String) -> Bool { integerConstants[name] != nil || integerValues.contains(name) }

    /// Ops whose output holds integers when all their inputs do.
    static func keepsIntegers(_ op: Op) -> Bool {
        switch op {
        case .add, .mul, .concat, .gather, .slice, .unsqueeze, .squeeze, .reshape, .identity, .expand, .shape, .flatten,
             .transpose, .constantOfShape:
            return true
        case .binary(let b): return b != .div && b != .prelu
        case .reduce(let r, _, _): return r == .sum
        default: return false
        }
    }

    /// Adds a node, or folds it when every input is a constant.
    /// A 1-D convolution or pooling over [N, C, L] run as its 2-D form over [N, C, 1, L].
    mutating func emitOverHeightOne(_ name: String, _ op: Op, _ inputs: [String], _ output: String) throws {
        let lifted = "\(output)@2d.in", result = "\(output)@2d.out"
        try emit("\(name)/lift", .unsqueeze(axes: [2]), [inputs[0]], lifted)
        try emit(name, op, [lifted] + inputs.dropFirst(), result)
        try emit("\(name)/drop", .squeeze(axes: [2]), [result], output)
    }

    mutating func emit(_ name: String, _ op: Op, _ inputs: [String], _ output: String, integer: Bool? = nil) throws {
        let node = Node(name: name, op: op, inputs: inputs, outputs: [output])
        let allInteger = inputs.filter { !$0.isEmpty }.allSatisfy(isInteger)
        let integral = integer ?? (Self.keepsIntegers(op) && allInteger)
        if case .shape = op {} else if !inputs.isEmpty, inputs.allSatisfy({ $0.isEmpty || constants[$0] != nil }) {
            let y: Tensor
            do { y = try node.forward(inputs.map { $0.isEmpty ? nil : constants[$0] }, training: false, keepState: false).output } catch {
                throw NetworkError("\(source): node '\(name)' (\(op.onnxName)) on constant inputs: \(error)")
            }
            constants[output] = y
            if integral { integerConstants[output] = y.scalars.map { Int($0) } }
            return
        }
        if integral { integerValues.insert(output) }
        for i in inputs where constants[i] != nil && usedAs[i] == nil { usedAs[i] = "parameter" }
        nodes.append(node)
    }

    /// An integer list from an optional constant input, else from an attribute (operators moved
    /// attributes to inputs over the opsets: Squeeze's axes at 13, ReduceMean's at 18, …).
    func list(_ n: Onnx_NodeProto, input i: Int, attribute key: String) throws -> [Int]? {
        if i < n.input.count, !n.input[i].isEmpty {
            guard let v = integerConstants[n.input[i]] else { throw fail(n, "input \(i + 1) ('\(n.input[i])') must be a constant integer list") }
            return v
        }
        return ints(n, key)
    }

    func floats(_ n: Onnx_NodeProto, _ key: String) -> [Float]? { attribute(n, key).map { $0.floats } }

    /// Opset 6's legacy broadcast: B aligned at `axis` of A. Without an axis it is numpy's
    /// trailing alignment, which the ops already do.
    func checkLegacyBroadcast(_ n: Onnx_NodeProto) throws {
        if opset < 7, (int(n, "broadcast") ?? 0) != 0, attribute(n, "axis") != nil {
            throw fail(n, "opset \(opset) broadcasting along axis \(int(n, "axis")!) is not supported; convert the model to opset 7 or later")
        }
    }

    /// Extra outputs (masks, training statistics) are fine while nothing reads them.
    func checkUnusedOutputs(_ n: Onnx_NodeProto, _ what: String) throws {
        for o in n.output.dropFirst() where !o.isEmpty && readers.contains(o) {
            throw fail(n, "its \(what) output '\(o)' is read by the graph; not supported")
        }
    }

    mutating func convert(_ n: Onnx_NodeProto, name: String) throws {
        let out = n.output[0]
        var inputs = n.input
        func unary(_ op: Op) throws { try emit(name, op, [inputs[0]], out) }
        switch n.opType {
        case "Constant":
            if let a = attribute(n, "value"), a.hasT {
                let (t, ints) = try Self.decode(a.t, source: source)
                constants[out] = t
                if let ints { integerConstants[out] = ints }
            } else if let a = attribute(n, "value_float") {
                constants[out] = Tensor(checkedShape: [], scalars: [a.f])
            } else if let a = attribute(n, "value_floats") {
                constants[out] = Tensor(checkedShape: [a.floats.count], scalars: a.floats)
            } else if let a = attribute(n, "value_int") {
                constants[out] = Tensor(checkedShape: [], scalars: [Float(a.i)]); integerConstants[out] = [Int(a.i)]
            } else if let a = attribute(n, "value_ints") {
                constants[out] = Tensor(checkedShape: [a.ints.count], scalars: a.ints.map(Float.init)); integerConstants[out] = a.ints.map { Int($0) }
            } else {
                throw fail(n, "only tensor, float and integer Constant values are supported")
            }
        case "Conv":
            try checkAutoPad(n)
            guard inputs.count >= 2, let w = constants[inputs[1]], w.rank == 4 || w.rank == 3 else {
                throw fail(n, "expected a constant 3-D or 4-D weight (1-D or 2-D convolution; 3-D convolution is not supported)")
            }
            let groups = int(n, "group") ?? 1
            guard groups >= 1, groups <= w.shape[0] else { throw fail(n, "group \(groups) must be in 1…\(w.shape[0]) (the output channels)") }
            if w.rank == 3 {
                // 1-D: the weight [Cout, Cin/g, k] becomes [Cout, Cin/g, 1, k], the op a 2-D one.
                guard graph.node.filter({ $0.input.contains(inputs[1]) }).count == 1 else {
                    throw fail(n, "a 1-D convolution's weight must not be shared with other nodes")
                }
                constants[inputs[1]] = try w.reshaped([w.shape[0], w.shape[1], 1, w.shape[2]])
                let pads = try ints(n, "pads", count: 2, in: 0...Self.maxExtent) ?? [0, 0]
                let a = ConvAttributes(strides: [1] + (try ints(n, "strides", count: 1, in: 1...Self.maxExtent) ?? [1]), pads: [0, pads[0], 0, pads[1]],
                                       dilations: [1] + (try ints(n, "dilations", count: 1, in: 1...Self.maxExtent) ?? [1]), groups: groups)
                try emitOverHeightOne(name, .conv(a), inputs, out)
                break
            }
            let pads = try ints(n, "pads", count: 4, in: 0...Self.maxExtent) ?? [0, 0, 0, 0]
            try emit(name, .conv(ConvAttributes(strides: try ints(n, "strides", count: 2, in: 1...Self.maxExtent) ?? [1, 1], pads: pads,
                                                dilations: try ints(n, "dilations", count: 2, in: 1...Self.maxExtent) ?? [1, 1], groups: groups)),
                     inputs, out)
        case "Gemm":
            try emit(name, .gemm(GemmAttributes(alpha: float(n, "alpha") ?? 1, beta: float(n, "beta") ?? 1,
                                                transA: (int(n, "transA") ?? 0) != 0, transB: (int(n, "transB") ?? 0) != 0)), inputs, out)
        case "MatMul":
            // x·W with a constant 2-D W is a linear layer: Gemm with Wᵀ stored as [out, in], so
            // sensitivity, search and quantizers see it as they see nn.Linear.
            if constants[inputs[0]] == nil, let w = constants[inputs[1]], w.rank == 2, usedAs[inputs[1]] == nil,
               readers.contains(inputs[1]) == true, graph.node.filter({ $0.input.contains(inputs[1]) }).count == 1 {
                let weight = inputs[1]
                constants[weight] = try w.transposed()
                integerConstants[weight] = nil
                try emit(name, .gemm(GemmAttributes(transB: true)), [inputs[0], weight], out)
            } else {
                try emit(name, .matMul, inputs, out)
            }
        case "Add", "Mul", "Sub", "Div":
            try checkLegacyBroadcast(n)
            let op: Op
            switch n.opType {
            case "Add": op = .add
            case "Mul": op = .mul
            case "Sub": op = .binary(.sub)
            default: op = .binary(isInteger(inputs[0]) && isInteger(inputs[1]) ? .integerDiv : .div)
            }
            try emit(name, op, inputs, out)
        case "Sum":
            guard !inputs.isEmpty else { throw fail(n, "expected at least one input") }
            var acc = inputs[0]
            for (k, next) in inputs.dropFirst().enumerated() {
                let o = k == inputs.count - 2 ? out : "\(out)/sum\(k)"
                try emit(k == 0 ? name : "\(name)/\(k)", .add, [acc, next], o)
                acc = o
            }
            if inputs.count == 1 { try emit(name, .identity, [acc], out) }
        case "Mod":
            guard (int(n, "fmod") ?? 0) == 0, isInteger(inputs[0]), isInteger(inputs[1]) else {
                throw fail(n, "only integer Mod (fmod = 0, shape arithmetic) is supported")
            }
            try emit(name, .binary(.mod), inputs, out)
        case "Max", "Min":
            if inputs.count == 1 { try emit(name, .identity, inputs, out); break }
            try emit(name, .binary(n.opType == "Max" ? .max : .min), inputs, out)
        case "Pow":
            guard let e = constants[inputs[1]], e.count == 1 else { throw fail(n, "only a constant scalar exponent is supported") }
            try unary(.pointwise(.power(e.scalars[0])))
        case "PRelu":
            // Before opset 7 a slope of C values ran along the channel axis, not numpy's last.
            if opset < 7, let slope = constants[inputs[1]], slope.rank == 1, slope.count > 1 {
                throw fail(n, "opset \(opset)'s per-channel slope (legacy broadcast along the channels) is not supported; convert the model to opset 7 or later")
            }
            try emit(name, .binary(.prelu), inputs, out)
        case "Relu": try unary(.relu)
        case "Sigmoid": try unary(.pointwise(.sigmoid))
        case "Tanh": try unary(.pointwise(.tanh))
        case "Erf": try unary(.pointwise(.erf))
        case "Sqrt": try unary(.pointwise(.sqrt))
        case "Exp": try unary(.pointwise(.exp))
        case "Log": try unary(.pointwise(.log))
        case "Neg": try unary(.pointwise(.neg))
        case "Abs": try unary(.pointwise(.abs))
        case "Reciprocal": try unary(.pointwise(.reciprocal))
        case "Softplus": try unary(.pointwise(.softplus))
        case "HardSwish": try unary(.pointwise(.hardSwish))
        case "HardSigmoid": try unary(.pointwise(.hardSigmoid(alpha: float(n, "alpha") ?? 0.2, beta: float(n, "beta") ?? 0.5)))
        case "LeakyRelu": try unary(.pointwise(.leakyRelu(alpha: float(n, "alpha") ?? 0.01)))
        case "Elu": try unary(.pointwise(.elu(alpha: float(n, "alpha") ?? 1)))
        case "Selu": try unary(.pointwise(.selu(alpha: float(n, "alpha") ?? 1.67326319217681884765625, gamma: float(n, "gamma") ?? 1.05070102214813232421875)))
        case "Sign": try unary(.pointwise(.sign))
        case "Shrink": try unary(.pointwise(.shrink(lambda: float(n, "lambd") ?? 0.5, bias: float(n, "bias") ?? 0)))
        case "Gelu":
            let approximate = string(n, "approximate") ?? "none"
            guard approximate == "none" || approximate == "tanh" else { throw fail(n, "approximate '\(approximate)' is not 'none' or 'tanh'") }
            try unary(.pointwise(.gelu(approximate: approximate == "tanh")))
        case "Clip":
            let lo = try constantScalar(n, input: 1) ?? float(n, "min") ?? -.infinity
            let hi = try constantScalar(n, input: 2) ?? float(n, "max") ?? .infinity
            try unary(.clip(min: lo, max: hi))
        case "MaxPool", "AveragePool":
            try checkAutoPad(n)
            if let d = ints(n, "dilations"), d.contains(where: { $0 != 1 }) { throw fail(n, "dilated pooling is not supported") }
            try checkUnusedOutputs(n, "indices")
            let countIncludePad = (int(n, "count_include_pad") ?? 0) != 0, ceilMode = (int(n, "ceil_mode") ?? 0) != 0
            if ints(n, "kernel_shape")?.count == 1 {
                // 1-D pooling as 2-D over a height of 1.
                let k = try ints(n, "kernel_shape", count: 1, in: 1...Self.maxExtent)!
                let pads = try ints(n, "pads", count: 2, in: 0...Self.maxExtent) ?? [0, 0]
                let a = PoolAttributes(kernel: [1] + k, strides: [1] + (try ints(n, "strides", count: 1, in: 1...Self.maxExtent) ?? [1]),
                                       pads: [0, pads[0], 0, pads[1]], countIncludePad: countIncludePad, ceilMode: ceilMode)
                try emitOverHeightOne(name, n.opType == "MaxPool" ? .maxPool(a) : .averagePool(a), [inputs[0]], out)
                break
            }
            guard let k = try ints(n, "kernel_shape", count: 2, in: 1...Self.maxExtent) else {
                throw fail(n, "expected a 1-D or 2-D kernel_shape (3-D pooling is not supported)")
            }
            let a = PoolAttributes(kernel: k, strides: try ints(n, "strides", count: 2, in: 1...Self.maxExtent) ?? [1, 1],
                                   pads: try ints(n, "pads", count: 4, in: 0...Self.maxExtent) ?? [0, 0, 0, 0],
                                   countIncludePad: countIncludePad, ceilMode: ceilMode)
            try unary(n.opType == "MaxPool" ? .maxPool(a) : .averagePool(a))
        case "GlobalAveragePool": try unary(.globalAveragePool)
        case "Flatten": try unary(.flatten(axis: int(n, "axis") ?? 1))
        case "Reshape":
            let allowZero = (int(n, "allowzero") ?? 0) != 0
            if let shape = integerConstants[inputs[1]] {
                if allowZero, shape.contains(0) { throw fail(n, "allowzero=1 with a 0 in the target shape \(shape) makes an empty tensor; not supported") }
                try emit(name, .reshape(shape: shape), [inputs[0]], out)
            } else {
                guard isInteger(inputs[1]) else { throw fail(n, "the target shape must be integers") }
                if allowZero { throw fail(n, "allowzero=1 with a shape computed at run time is not supported") }
                try emit(name, .reshape(shape: []), inputs, out)
            }
        case "BatchNormalization":
            if opset < 9, (int(n, "spatial") ?? 1) != 1 { throw fail(n, "spatial=0 (per-activation statistics) is not supported") }
            try checkUnusedOutputs(n, "training statistics")
            try emit(name, .batchNorm(epsilon: float(n, "epsilon") ?? 1e-5, momentum: 1 - (float(n, "momentum") ?? 0.9)), inputs, out)
            usedAs[inputs[3]] = "buffer"; usedAs[inputs[4]] = "buffer"
        case "Softmax", "LogSoftmax":
            let axis = int(n, "axis") ?? (opset >= 13 ? -1 : 1)
            let log = n.opType == "LogSoftmax"
            if opset >= 13 { try unary(log ? .logSoftmax(axis: axis) : .softmax(axis: axis)); break }
            // Before opset 13 Softmax flattens the input to 2-D at `axis` and normalises each row.
            let (shape, flat, soft) = ("\(out)/shape", "\(out)/flat", "\(out)/rows")
            try emit("\(name)/Shape", .shape(start: 0, end: nil), [inputs[0]], shape)
            try emit("\(name)/Flatten", .flatten(axis: axis), [inputs[0]], flat)
            try emit(name, log ? .logSoftmax(axis: 1) : .softmax(axis: 1), [flat], soft)
            try emit("\(name)/Reshape", .reshape(shape: []), [soft, shape], out)
        case "Identity", "Dropout":
            try checkUnusedOutputs(n, "mask")
            try emit(name, .identity, [inputs[0]], out, integer: isInteger(inputs[0]))
        case "Concat":
            guard !inputs.isEmpty, let axis = int(n, "axis") else { throw fail(n, "expected inputs and an axis") }
            try emit(name, .concat(axis: axis), inputs.filter { !$0.isEmpty }, out)
        case "Transpose": try unary(.transpose(perm: ints(n, "perm") ?? []))
        case "Slice":
            if opset >= 10, inputs.dropFirst().contains(where: { !$0.isEmpty && integerConstants[$0] == nil }) {
                // Bounds computed from shapes when the model runs.
                guard inputs.dropFirst().allSatisfy({ $0.isEmpty || isInteger($0) }), inputs.count >= 3 else {
                    throw fail(n, "starts, ends, axes and steps must be integers")
                }
                guard inputs.count < 4 || !inputs[3].isEmpty, inputs.count < 5 || !inputs[4].isEmpty else {
                    throw fail(n, "omitted axes or steps with computed bounds are not supported")
                }
                try emit(name, .slice(SliceAttributes(starts: [], ends: [], axes: [], steps: [])), inputs, out)
                return
            }
            guard let starts = try list(n, input: 1, attribute: "starts"), let ends = try list(n, input: 2, attribute: "ends") else {
                throw fail(n, "expected constant starts and ends")
            }
            let axes = try list(n, input: 3, attribute: "axes") ?? Array(0..<starts.count)
            let steps = try list(n, input: 4, attribute: "steps") ?? Array(repeating: 1, count: starts.count)
            guard ends.count == starts.count, axes.count == starts.count, steps.count == starts.count, !steps.contains(0) else {
                throw fail(n, "starts \(starts), ends \(ends), axes \(axes) and steps \(steps) must have one entry each per axis, steps nonzero")
            }
            let clamp = { (v: Int) in max(min(v, 1 << 40), -(1 << 40)) }
            try unary(.slice(SliceAttributes(starts: starts.map(clamp), ends: ends.map(clamp), axes: axes, steps: steps)))
        case "Split":
            let axis = int(n, "axis") ?? 0
            let outputs = n.output
            if let sizes = try list(n, input: 1, attribute: "split") {
                guard sizes.count == outputs.count, sizes.allSatisfy({ $0 >= 0 }) else {
                    throw fail(n, "\(sizes.count) split sizes for \(outputs.count) outputs")
                }
                var start = 0
                for (k, o) in outputs.enumerated() {
                    try emit("\(name)/\(k)", .slice(SliceAttributes(starts: [start], ends: [start + sizes[k]], axes: [axis], steps: [1])), [inputs[0]], o)
                    start += sizes[k]
                }
            } else {
                for (k, o) in outputs.enumerated() {
                    try emit("\(name)/\(k)", .slice(.part(k, of: outputs.count, axis: axis)), [inputs[0]], o)
                }
            }
        case "Pad":
            let mode = string(n, "mode") ?? "constant"
            guard let m = PadAttributes.Mode(rawValue: mode) else { throw fail(n, "pad mode '\(mode)' is not supported (constant, reflect, edge)") }
            guard let pads = try list(n, input: 1, attribute: opset < 2 ? "paddings" : "pads") else { throw fail(n, "expected constant pads") }
            let value = try constantScalar(n, input: 2) ?? float(n, "value") ?? 0
            let axes = try list(n, input: 3, attribute: "axes")
            guard pads.allSatisfy({ abs($0) <= Self.maxExtent }) else { throw fail(n, "pads \(pads) are out of range") }
            try unary(.pad(PadAttributes(pads: pads, axes: axes, mode: m, value: value)))
        case "Squeeze":
            try emit(name, .squeeze(axes: try list(n, input: 1, attribute: "axes")), [inputs[0]], out)
        case "Unsqueeze":
            guard let axes = try list(n, input: 1, attribute: "axes") else { throw fail(n, "expected constant axes") }
            try emit(name, .unsqueeze(axes: axes), [inputs[0]], out)
        case "Gather":
            if let indices = integerConstants[inputs[1]], let shape = constants[inputs[1]]?.shape {
                try emit(name, .gather(axis: int(n, "axis") ?? 0, indices: indices, indexShape: shape), [inputs[0]], out,
                         integer: isInteger(inputs[0]))
            } else {
                guard isInteger(inputs[1]) else { throw fail(n, "the indices must be integers") }
                try emit(name, .gather(axis: int(n, "axis") ?? 0, indices: [], indexShape: []), inputs, out, integer: isInteger(inputs[0]))
            }
        case "Shape":
            try emit(name, .shape(start: int(n, "start") ?? 0, end: int(n, "end")), [inputs[0]], out, integer: true)
        case "ConstantOfShape":
            var value: Float = 0, integral = false
            if let a = attribute(n, "value"), a.hasT {
                let (t, ints) = try Self.decode(a.t, source: source)
                value = t.scalars.first ?? 0; integral = ints != nil
            }
            guard isInteger(inputs[0]) else { throw fail(n, "the shape must be integers") }
            try emit(name, .constantOfShape(value: value), [inputs[0]], out, integer: integral)
        case "Expand":
            if let shape = integerConstants[inputs[1]] {
                try emit(name, .expand(shape: shape), [inputs[0]], out)
            } else {
                guard isInteger(inputs[1]) else { throw fail(n, "the shape must be integers") }
                try emit(name, .expand(shape: []), inputs, out)
            }
        case "Cast":
            let to = int(n, "to") ?? 1
            let integral = [2, 3, 4, 5, 6, 7, 9, 12, 13].contains(to)
            if let x = constants[inputs[0]] {
                let y = integral ? x.map { to == 9 ? ($0 != 0 ? 1 : 0) : $0.rounded(.towardZero) } : x
                constants[out] = y
                if integral { integerConstants[out] = y.scalars.map { Int($0) } }
            } else if integral && !isInteger(inputs[0]) {
                throw fail(n, "casting a value computed from the input to an integer type is not supported")
            } else {
                try emit(name, .identity, [inputs[0]], out, integer: integral)
            }
        case "Equal":
            try emit(name, .binary(.equal), inputs, out, integer: true)
        case "Where":
            try emit(name, .where, inputs, out, integer: isInteger(inputs[1]) && isInteger(inputs[2]))
        case "Range":
            try emit(name, .range, inputs, out, integer: inputs.allSatisfy(isInteger))
        case "ReduceMean", "ReduceSum":
            let axes = try list(n, input: 1, attribute: "axes")
            let keep = (int(n, "keepdims") ?? 1) != 0
            if (axes ?? []).isEmpty, (int(n, "noop_with_empty_axes") ?? 0) != 0 { try unary(.identity); break }
            try unary(.reduce(n.opType == "ReduceMean" ? .mean : .sum, axes: axes, keepDims: keep))
        case "LayerNormalization":
            try checkUnusedOutputs(n, "mean or inverse deviation")
            try emit(name, .layerNorm(axis: int(n, "axis") ?? -1, epsilon: float(n, "epsilon") ?? 1e-5), inputs.filter { !$0.isEmpty }, out)
        case "LRN":
            guard let size = int(n, "size"), size >= 1, size <= 1 << 10 else { throw fail(n, "expected a size of at least 1") }
            try unary(.lrn(LRNAttributes(size: size, alpha: float(n, "alpha") ?? 1e-4, beta: float(n, "beta") ?? 0.75, bias: float(n, "bias") ?? 1)))
        case "Resize", "Upsample":
            let modeName = string(n, "mode") ?? "nearest"
            guard let mode = ResizeAttributes.Mode(rawValue: modeName == "bilinear" ? "linear" : modeName) else {
                throw fail(n, "mode '\(modeName)' is not supported (nearest, linear)")
            }
            var scales: [Float]? = nil, sizes: [Int]? = nil
            // Upsample-7: scales attribute; Upsample-9 and Resize-10: (X, scales); Resize-11+: (X, roi, scales, sizes).
            let scaleInput = n.opType == "Upsample" || opset < 11 ? 1 : 2
            if let s = floats(n, "scales"), !s.isEmpty { scales = s }
            if scaleInput < inputs.count, !inputs[scaleInput].isEmpty {
                guard let t = constants[inputs[scaleInput]] else { throw fail(n, "the scales must be a constant") }
                if t.count > 0 { scales = t.scalars }
            }
            if n.opType == "Resize", opset >= 11, inputs.count > 3, !inputs[3].isEmpty {
                guard let s = integerConstants[inputs[3]] else { throw fail(n, "the sizes must be a constant") }
                sizes = s
            }
            if let a = ints(n, "axes"), !a.isEmpty { throw fail(n, "the axes attribute is not supported") }
            let coordinateName = string(n, "coordinate_transformation_mode") ?? (n.opType == "Upsample" || opset < 11 ? "asymmetric" : "half_pixel")
            guard let coordinates = ResizeAttributes.Coordinates(rawValue: coordinateName) else {
                throw fail(n, "coordinate_transformation_mode '\(coordinateName)' is not supported")
            }
            let nearestName = string(n, "nearest_mode") ?? (n.opType == "Upsample" || opset < 11 ? "floor" : "round_prefer_floor")
            guard let nearest = ResizeAttributes.Nearest(rawValue: nearestName) else { throw fail(n, "nearest_mode '\(nearestName)' is not supported") }
            guard scales != nil || sizes != nil else { throw fail(n, "expected constant scales or sizes") }
            inputs = [inputs[0]]
            try unary(.resize(ResizeAttributes(scales: sizes == nil ? scales : nil, sizes: sizes, mode: mode, coordinates: coordinates, nearest: nearest)))
        case "QuantizeLinear":
            // Q→DQ on an activation becomes one FakeQuantize (at the DequantizeLinear).
            let (scale, zero, lo, hi) = try quantizationParameters(n)
            guard scale.count == 1 else { throw fail(n, "per-channel quantization of an activation is not supported") }
            if let x = constants[inputs[0]] {
                constants[out] = x.map { v in Float(min(max((v / scale[0]).rounded(.toNearestOrEven) + Float(zero[0]), Float(lo)), Float(hi))) }
                return
            }
            pendingQuantize[out] = (inputs[0], scale[0], lo - zero[0], hi - zero[0])
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
                try emit(name, .fakeQuantize(scale: q.scale, qmin: q.qmin, qmax: q.qmax), [q.input], out)
                return
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
        default:
            throw fail(n, "operator \(n.opType) is not supported")
        }
    }
}
