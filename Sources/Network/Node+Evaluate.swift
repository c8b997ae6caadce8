import Tensors

/// Forward, backward (vector–Jacobian) and tangent (Jacobian–vector) passes of one node.
/// The tangent pass is what Hessian-vector products and Gauss–Newton products build on.
extension Node {
    func require(_ inputs: [Tensor?], _ count: ClosedRange<Int>) throws {
        guard count.contains(inputs.count), inputs.prefix(count.lowerBound).allSatisfy({ $0 != nil }) else {
            throw NetworkError("node '\(name)' (\(op.onnxName)): expected \(count.lowerBound == count.upperBound ? "\(count.lowerBound)" : "\(count.lowerBound)–\(count.upperBound)") inputs, found \(inputs.count)")
        }
    }

    /// Runs the node. `updates` are new values for inputs that are buffers (batch-norm running
    /// statistics in training mode), by input position.
    /// Without `keepState` nothing is kept for backward (max pooling then skips its indices).
    func forward(_ inputs: [Tensor?], training: Bool, keepState: Bool = true) throws -> (output: Tensor, state: OpState?, updates: [(Int, Tensor)]) {
        switch op {
        case .conv(let a):
            try require(inputs, 2...3)
            guard let x = inputs[0], let w = inputs[1], x.rank == 4, w.rank == 4 else {
                throw NetworkError("node '\(name)' (Conv): expected input [N, C, H, W] and weight [Cout, C/groups, kh, kw], found \(inputs[0]?.shape ?? []) and \(inputs[1]?.shape ?? [])")
            }
            return (try ConvOp.forward(x, w, inputs.count > 2 ? inputs[2] : nil, a), nil, [])
        case .gemm(let a):
            try require(inputs, 2...3)
            return (try LinearOp.gemm(inputs[0]!, inputs[1]!, inputs.count > 2 ? inputs[2] : nil, a), nil, [])
        case .matMul:
            try require(inputs, 2...2)
            return (try MatMulOp.multiply(inputs[0]!, inputs[1]!), nil, [])
        case .add:
            try require(inputs, 2...2)
            return (try inputs[0]! + inputs[1]!, nil, [])
        case .mul:
            try require(inputs, 2...2)
            return (try inputs[0]! * inputs[1]!, nil, [])
        case .relu:
            try require(inputs, 1...1)
            return (inputs[0]!.relu(), nil, [])
        case .clip(let lo, let hi):
            try require(inputs, 1...1)
            return (inputs[0]!.clamped(lo, hi), nil, [])
        case .maxPool(let a):
            try require(inputs, 1...1)
            if !keepState { return (try PoolOp.maxValues(inputs[0]!, a), nil, []) }
            let (y, arg) = try PoolOp.maxForward(inputs[0]!, a)
            return (y, .argmax(arg), [])
        case .averagePool(let a):
            try require(inputs, 1...1)
            return (try PoolOp.average(inputs[0]!, a), nil, [])
        case .globalAveragePool:
            try require(inputs, 1...1)
            return (try PoolOp.globalAverage(inputs[0]!), nil, [])
        case .flatten(let axis):
            try require(inputs, 1...1)
            let x = inputs[0]!
            let a = axis < 0 ? axis + x.rank : axis
            guard a >= 0 && a <= x.rank else { throw NetworkError("node '\(name)' (Flatten): axis \(axis) out of range for \(x.shape)") }
            return (try x.reshaped([x.shape[..<a].reduce(1, *), x.shape[a...].reduce(1, *)]), nil, [])
        case .reshape(let shape):
            try require(inputs, 1...2)
            let target = inputs.count > 1 ? try integers(inputs[1]!, "the target shape") : shape
            return (try inputs[0]!.reshaped(ShapeOp.reshapeTarget(inputs[0]!.shape, target)), nil, [])
        case .batchNorm(let eps, let momentum):
            try require(inputs, 5...5)
            let (x, s, b, m, v) = (inputs[0]!, inputs[1]!, inputs[2]!, inputs[3]!, inputs[4]!)
            if training {
                let (y, state, newMean, newVar) = try BatchNormOp.train(x, scale: s, bias: b, mean: m, variance: v,
                                                                        epsilon: eps, momentum: momentum)
                return (y, state, [(3, newMean), (4, newVar)])
            }
            return (try BatchNormOp.evaluate(x, scale: s, bias: b, mean: m, variance: v, epsilon: eps), nil, [])
        case .softmax(let axis):
            try require(inputs, 1...1)
            return (try PointwiseOp.softmax(inputs[0]!, axis: axis), nil, [])
        case .logSoftmax(let axis):
            try require(inputs, 1...1)
            return (try PointwiseOp.logSoftmax(inputs[0]!, axis: axis), nil, [])
        case .identity:
            try require(inputs, 1...1)
            return (inputs[0]!, nil, [])
        case .fakeQuantize(let scale, let qmin, let qmax):
            try require(inputs, 1...1)
            guard scale > 0 else { return (inputs[0]!.map { _ in 0 }, nil, []) }
            let lo = Float(qmin), hi = Float(qmax)
            return (inputs[0]!.map { min(max(($0 / scale).rounded(.toNearestOrEven), lo), hi) * scale }, nil, [])
        case .binarize(let scale):
            try require(inputs, 1...1)
            return (inputs[0]!.map { $0 >= 0 ? scale : -scale }, nil, [])
        case .requantize(let r):
            try require(inputs, 1...1)
            return (try RequantizeOp.evaluate(inputs[0]!, r, node: name), nil, [])
        case .learnedQuantize(let qmin, let qmax):
            try require(inputs, 2...2)
            let lo = Float(qmin), hi = Float(qmax)
            return (try Tensor.zip(inputs[0]!, inputs[1]!, operation: "LearnedQuantize") { x, s in
                s > 0 ? min(max((x / s).rounded(.toNearestOrEven), lo), hi) * s : 0
            }, nil, [])
        case .mixedQuantize(let m):
            guard m.kind == .hwgqActivations else {
                try require(inputs, 2...2)
                return (try m.forward(inputs[0]!, alpha: inputs[1]!), nil, [])
            }
            try require(inputs, 3...3)
            let running = inputs[2]!
            guard running.count == 1, running.scalars[0].isFinite, running.scalars[0] > 0 else {
                throw NetworkError("node '\(name)' (MixedQuantize): expected a positive running σ, found \(running.scalars)")
            }
            if training {
                let s = MixedQuantization.halfWaveScale(inputs[0]!)
                guard s > 0, s.isFinite else { return (try m.forward(inputs[0]!, alpha: inputs[1]!, scale: running.scalars[0]), .scale(running.scalars[0]), []) }
                let next = (1 - MixedQuantization.momentum) * running.scalars[0] + MixedQuantization.momentum * s
                return (try m.forward(inputs[0]!, alpha: inputs[1]!, scale: s), .scale(s), [(2, Tensor(checkedShape: running.shape, scalars: [next]))])
            }
            return (try m.forward(inputs[0]!, alpha: inputs[1]!, scale: running.scalars[0]), .scale(running.scalars[0]), [])
        case .binaryWeights:
            try require(inputs, 1...1)
            return (try BinaryWeightsOp.forward(inputs[0]!, node: name), nil, [])
        case .gumbelQuantize(let g):
            try require(inputs, 4...4)
            return (try g.forward(inputs[0]!, logits: inputs[1]!, noise: inputs[2]!, temperature: inputs[3]!, training: training), nil, [])
        case .pointwise(let f):
            try require(inputs, 1...1)
            return (f.apply(inputs[0]!), nil, [])
        case .binary(let f):
            try require(inputs, 2...2)
            return (try f.apply(inputs[0]!, inputs[1]!), nil, [])
        case .concat(let axis):
            guard !inputs.isEmpty, inputs.allSatisfy({ $0 != nil }) else { throw NetworkError("node '\(name)' (Concat): an input is missing") }
            return (try ShapeOp.concat(inputs.map { $0! }, axis: axis), nil, [])
        case .transpose, .slice, .pad, .gather, .expand:
            try require(inputs, 1...5)
            let map = try indexMap(inputs)
            let fill: Float = if case .pad(let p) = op { p.value } else { 0 }
            return (map.gather(inputs[0]!, fill: fill), keepState ? .indexMap(map) : nil, [])
        case .unsqueeze(let axes):
            try require(inputs, 1...1)
            return (try inputs[0]!.reshaped(ShapeOp.unsqueeze(inputs[0]!.shape, axes: axes)), nil, [])
        case .squeeze(let axes):
            try require(inputs, 1...1)
            return (try inputs[0]!.reshaped(ShapeOp.squeeze(inputs[0]!.shape, axes: axes)), nil, [])
        case .resize(let r):
            try require(inputs, 1...1)
            return (try ResizeOp.forward(inputs[0]!, r), nil, [])
        case .reduce(let r, let axes, let keep):
            try require(inputs, 1...1)
            return (try r.forward(inputs[0]!, axes: axes, keepDims: keep), nil, [])
        case .layerNorm(let axis, let eps):
            try require(inputs, 2...3)
            return (try LayerNormOp.forward(inputs[0]!, inputs[1]!, inputs.count > 2 ? inputs[2] : nil, axis: axis, epsilon: eps), nil, [])
        case .lrn(let a):
            try require(inputs, 1...1)
            return (try LRNOp.forward(inputs[0]!, a), nil, [])
        case .shape(let start, let end):
            try require(inputs, 1...1)
            let s = inputs[0]!.shape, r = s.count
            func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + r : v, 0), r) }
            let dims = Array(s[clamp(start)..<max(clamp(start), clamp(end ?? r))])
            return (Tensor(checkedShape: [dims.count], scalars: dims.map(Float.init)), nil, [])
        case .constantOfShape(let value):
            try require(inputs, 1...1)
            return (try Tensor(repeating: value, shape: integers(inputs[0]!, "the shape")), nil, [])
        case .range:
            try require(inputs, 3...3)
            guard inputs.allSatisfy({ $0!.count == 1 }), inputs[2]!.scalars[0] != 0 else {
                throw NetworkError("node '\(name)' (Range): expected scalar start, limit and a nonzero delta")
            }
            let (s, l, d) = (inputs[0]!.scalars[0], inputs[1]!.scalars[0], inputs[2]!.scalars[0])
            let count = Swift.max(Int(((l - s) / d).rounded(.up)), 0)
            guard count <= 1 << 24 else { throw NetworkError("node '\(name)' (Range): \(count) values are too many") }
            return (Tensor(checkedShape: [count], scalars: (0..<count).map { s + Float($0) * d }), nil, [])
        case .where:
            try require(inputs, 3...3)
            let (c, a, b) = (inputs[0]!, inputs[1]!, inputs[2]!)
            let shape = try Tensor.broadcastShape(Tensor.broadcastShape(c.shape, a.shape), b.shape, operation: "Where")
            let (cc, aa, bb) = try (ShapeOp.expand(c.shape, to: shape).gather(c), ShapeOp.expand(a.shape, to: shape).gather(a),
                                    ShapeOp.expand(b.shape, to: shape).gather(b))
            return (Tensor(checkedShape: shape, scalars: cc.scalars.indices.map { cc.scalars[$0] != 0 ? aa.scalars[$0] : bb.scalars[$0] }), nil, [])
        }
    }

    /// A tensor of shape arithmetic read as integers (each a whole number in range).
    func integers(_ t: Tensor, _ what: String) throws -> [Int] {
        guard t.rank <= 1, t.count <= 64 else { throw NetworkError("node '\(name)' (\(op.onnxName)): \(what) must be a short list, found a tensor of shape \(t.shape)") }
        return try t.scalars.map { (v: Float) throws -> Int in
            // INT64_MAX and friends ("to the end") arrive as huge floats: clamp, as Slice would.
            if v.isFinite, Swift.abs(v) >= 2_147_483_648 { return v > 0 ? 1 << 40 : -(1 << 40) }
            guard v == v.rounded(), v.isFinite else { throw NetworkError("node '\(name)' (\(op.onnxName)): \(what) holds \(v), not an integer") }
            return Int(v)
        }
    }

    /// The element map of an element-moving op on these inputs.
    func indexMap(_ inputs: [Tensor?]) throws -> IndexMap {
        let shape = inputs[0]!.shape
        switch op {
        case .transpose(let perm): return try ShapeOp.transpose(shape, perm: perm)
        case .slice(var s):
            if inputs.count > 1 {
                // Bounds read when the node runs: starts, ends, then axes and steps if given.
                let v = try inputs.dropFirst().map { try integers($0!, "a slice bound") }
                s = SliceAttributes(starts: v[0], ends: v[1], axes: v.count > 2 ? v[2] : Array(0..<v[0].count),
                                    steps: v.count > 3 ? v[3] : Array(repeating: 1, count: v[0].count))
                guard s.ends.count == s.starts.count, s.axes.count == s.starts.count, s.steps.count == s.starts.count, !s.steps.contains(0) else {
                    throw NetworkError("node '\(name)' (Slice): starts \(s.starts), ends \(s.ends), axes \(s.axes) and steps \(s.steps) do not match")
                }
            }
            return try ShapeOp.slice(shape, s)
        case .pad(let p): return try ShapeOp.pad(shape, p)
        case .gather(let axis, let indices, let indexShape):
            // Indices computed when the node runs arrive as a second input.
            if inputs.count > 1, let t = inputs[1] {
                try MemoryBudget.check(count: t.count, of: 8, for: "Gather indices of shape \(t.shape)")
                let values = try t.scalars.map { (v: Float) throws -> Int in
                    guard v.isFinite, v == v.rounded(), Swift.abs(v) < 2_147_483_648 else {
                        throw NetworkError("node '\(name)' (Gather): an index holds \(v), not an integer in range")
                    }
                    return Int(v)
                }
                return try ShapeOp.gather(shape, axis: axis, indices: values, indexShape: t.shape)
            }
            return try ShapeOp.gather(shape, axis: axis, indices: indices, indexShape: indexShape)
        case .expand(let target):
            return try ShapeOp.expand(shape, to: inputs.count > 1 ? try integers(inputs[1]!, "the target shape") : target)
        default: throw NetworkError("node '\(name)' (\(op.onnxName)) moves no elements")
        }
    }

    /// The saved element map, or a new one.
    func indexMap(_ inputs: [Tensor?], state: OpState?) throws -> IndexMap {
        if case .indexMap(let m)? = state { return m }
        return try indexMap(inputs)
    }

    /// Gradients of the inputs (nil where not needed or not differentiable) given dY.
    func backward(_ inputs: [Tensor?], output: Tensor, state: OpState?, gradient dy: Tensor, needs: [Bool]) throws -> [Tensor?] {
        switch op {
        case .conv(let a):
            let (dx, dw, db) = ConvOp.backward(inputs[0]!, inputs[1]!, hasBias: inputs.count > 2 && inputs[2] != nil,
                                               a, dy, needInput: needs[0])
            return [dx, dw] + (inputs.count > 2 ? [db] : [])
        case .gemm(let a):
            let c = inputs.count > 2 ? inputs[2] : nil
            let (da, db, dc) = try LinearOp.backward(inputs[0]!, inputs[1]!, c, a, dy)
            return [da, db] + (inputs.count > 2 ? [dc] : [])
        case .matMul:
            let (da, db) = try MatMulOp.backward(inputs[0]!, inputs[1]!, dy)
            return [da, db]
        case .add:
            return [try dy.summed(toShape: inputs[0]!.shape), try dy.summed(toShape: inputs[1]!.shape)]
        case .mul:
            let (a, b) = (inputs[0]!, inputs[1]!)
            return [try (dy * b).summed(toShape: a.shape), try (dy * a).summed(toShape: b.shape)]
        case .relu:
            return [PointwiseOp.clipGradient(inputs[0]!, dy, lo: 0, hi: .infinity)]
        case .clip(let lo, let hi):
            return [PointwiseOp.clipGradient(inputs[0]!, dy, lo: lo, hi: hi)]
        case .maxPool:
            guard case .argmax(let arg)? = state else { throw NetworkError("node '\(name)': no saved pooling indices") }
            return [PoolOp.maxBackward(inputShape: inputs[0]!.shape, arg, dy)]
        case .averagePool(let a):
            return [try PoolOp.averageBackward(inputs[0]!, a, dy)]
        case .globalAveragePool:
            return [PoolOp.globalAverageBackward(inputShape: inputs[0]!.shape, dy)]
        case .flatten, .reshape, .identity:
            return [try dy.reshaped(inputs[0]!.shape)] + (inputs.count > 1 ? [nil] : [])
        case .batchNorm(let eps, _):
            let (dx, ds, db) = try BatchNormOp.backward(inputs[0]!, scale: inputs[1]!, mean: inputs[3]!,
                                                        variance: inputs[4]!, epsilon: eps, state: state, dy)
            return [dx, ds, db, nil, nil]
        case .softmax(let axis):
            return [try PointwiseOp.softmaxBackward(output, dy, axis: axis)]
        case .logSoftmax(let axis):
            return [try PointwiseOp.logSoftmaxBackward(output, dy, axis: axis)]
        case .fakeQuantize(let scale, let qmin, let qmax):
            return [PointwiseOp.clipGradient(inputs[0]!, dy, lo: Float(qmin) * scale - scale / 2, hi: Float(qmax) * scale + scale / 2)]
        case .binarize(let scale):
            return [PointwiseOp.clipGradient(inputs[0]!, dy, lo: -scale, hi: scale)]
        case .requantize:
            throw NetworkError("node '\(name)' (Requantize): an integer engine's conversion has no gradient (it simulates inference only)")
        case .learnedQuantize(let qmin, let qmax):
            let (x, step) = (inputs[0]!, inputs[1]!)
            let (dx, dsFull) = try LearnedQuantizeOp.partials(x, step, qmin: qmin, qmax: qmax)
            let g = 1 / (Float(x.count / max(1, step.count)) * Float(max(qmax, 1))).squareRoot()
            return [try dx * dy, try (dsFull * dy).summed(toShape: step.shape).map { $0 * g }]
        case .mixedQuantize(let m):
            var scale: Float = 1
            if case .scale(let s)? = state { scale = s }
            let (dx, dalpha) = m.backward(inputs[0]!, alpha: inputs[1]!, scale: scale, dy)
            return m.kind == .hwgqActivations ? [dx, dalpha, nil] : [dx, dalpha]
        case .binaryWeights:
            return [BinaryWeightsOp.backward(inputs[0]!, dy)]
        case .gumbelQuantize(let g):
            let (dx, dlogits) = g.backward(inputs[0]!, logits: inputs[1]!, noise: inputs[2]!, temperature: inputs[3]!, dy)
            return [dx, dlogits, nil, nil]
        case .pointwise(let f):
            return [f.derivative(inputs[0]!, times: dy)]
        case .binary(let f):
            return try f.backward(inputs[0]!, inputs[1]!, dy)
        case .concat(let axis):
            return try ShapeOp.split(dy, axis: axis, shapes: inputs.map { $0!.shape })
        case .transpose, .slice, .pad, .gather, .expand:
            let x = inputs[0]!
            return [try indexMap(inputs, state: state).scatter(dy, inputShape: x.shape)] + Array(repeating: nil, count: inputs.count - 1)
        case .unsqueeze, .squeeze:
            return [try dy.reshaped(inputs[0]!.shape)]
        case .resize(let r):
            return [try ResizeOp.backward(inputs[0]!, r, dy)]
        case .reduce(let r, let axes, _):
            return [try r.backward(inputs[0]!, axes: axes, dy)]
        case .layerNorm(let axis, let eps):
            return try LayerNormOp.backward(inputs[0]!, inputs[1]!, hasBias: inputs.count > 2, axis: axis, epsilon: eps, dy)
        case .lrn(let a):
            return [try LRNOp.apply(inputs[0]!, a, dy, transposed: true)]
        case .shape, .constantOfShape, .range:
            return inputs.map { _ in nil }
        case .where:
            let c = inputs[0]!
            let mask = try Tensor.zip(dy, c) { _, v in v != 0 ? 1 : 0 }
            return [nil, try (dy * mask).summed(toShape: inputs[1]!.shape),
                    try (dy * mask.map { 1 - $0 }).summed(toShape: inputs[2]!.shape)]
        }
    }

    /// The output's directional derivative along the input tangents (nil = zero tangent).
    /// Batch norm is differentiated in evaluation mode (running statistics held fixed).
    func tangent(_ inputs: [Tensor?], output: Tensor, state: OpState?, tangents t: [Tensor?]) throws -> Tensor? {
        if t.allSatisfy({ $0 == nil }) { return nil }
        func at(_ i: Int) -> Tensor? { i < t.count ? t[i] : nil }
        switch op {
        case .conv(let a):
            return try ConvOp.tangent(inputs[0]!, inputs[1]!, inputs.count > 2 ? inputs[2] : nil, a,
                                      dx: at(0), dw: at(1), db: at(2))
        case .gemm(let a):
            return try LinearOp.tangent(inputs[0]!, inputs[1]!, inputs.count > 2 ? inputs[2] : nil, a,
                                        da: at(0), db: at(1), dc: at(2))
        case .matMul:
            return try MatMulOp.tangent(inputs[0]!, inputs[1]!, da: at(0), db: at(1))
        case .add:
            var out = try Tensor.zeros(output.shape)
            if let a = at(0) { out = try out + a }
            if let b = at(1) { out = try out + b }
            return out
        case .mul:
            var out = try Tensor.zeros(output.shape)
            if let a = at(0) { out = try out + a * inputs[1]! }
            if let b = at(1) { out = try out + inputs[0]! * b }
            return out
        case .relu:
            return at(0).map { PointwiseOp.clipGradient(inputs[0]!, $0, lo: 0, hi: .infinity) }
        case .clip(let lo, let hi):
            return at(0).map { PointwiseOp.clipGradient(inputs[0]!, $0, lo: lo, hi: hi) }
        case .maxPool:
            guard case .argmax(let arg)? = state else { throw NetworkError("node '\(name)': no saved pooling indices") }
            return at(0).map { PoolOp.maxTangent(arg, outputShape: output.shape, $0) }
        case .averagePool(let a):
            return try at(0).map { try PoolOp.average($0, a) }
        case .globalAveragePool:
            return try at(0).map { try PoolOp.globalAverage($0) }
        case .flatten, .reshape, .identity:
            return try at(0).map { try $0.reshaped(output.shape) }
        case .batchNorm(let eps, _):
            if case .batchStatistics? = state {
                throw NetworkError("node '\(name)': tangents through batch norm in training mode are not supported; evaluate the model in eval mode")
            }
            let (x, s, m, v) = (inputs[0]!, inputs[1]!, inputs[3]!, inputs[4]!)
            var out = try Tensor.zeros(output.shape)
            let zeros = try Tensor.zeros(s.shape)
            if let dx = at(0) {
                out = try out + BatchNormOp.evaluate(dx, scale: s, bias: zeros, mean: zeros, variance: v, epsilon: eps)
            }
            if let ds = at(1) {
                out = try out + BatchNormOp.evaluate(x, scale: ds, bias: zeros, mean: m, variance: v, epsilon: eps)
            }
            if let db = at(2) {
                out = try out + BatchNormOp.evaluate(try Tensor.zeros(x.shape), scale: zeros, bias: db, mean: zeros,
                                                     variance: try Tensor.ones(s.shape), epsilon: 0)
            }
            return out
        case .softmax(let axis):
            return try at(0).map { try PointwiseOp.softmaxBackward(output, $0, axis: axis) }
        case .logSoftmax(let axis):
            return try at(0).map { try PointwiseOp.logSoftmaxTangent(output, $0, axis: axis) }
        case .fakeQuantize(let scale, let qmin, let qmax):
            return at(0).map { PointwiseOp.clipGradient(inputs[0]!, $0, lo: Float(qmin) * scale - scale / 2, hi: Float(qmax) * scale + scale / 2) }
        case .binarize(let scale):
            return at(0).map { PointwiseOp.clipGradient(inputs[0]!, $0, lo: -scale, hi: scale) }
        case .requantize:
            throw NetworkError("node '\(name)' (Requantize): an integer engine's conversion has no derivative (it simulates inference only)")
        case .learnedQuantize(let qmin, let qmax):
            let (dx, dsFull) = try LearnedQuantizeOp.partials(inputs[0]!, inputs[1]!, qmin: qmin, qmax: qmax)
            var out = try Tensor.zeros(output.shape)
            if let t = at(0) { out = try out + dx * t }
            if let t = at(1) { out = try out + dsFull * t }
            return out
        case .binaryWeights:
            throw NetworkError("node '\(name)' (BinaryWeights): binary weights have no forward-mode derivative; Hessian-based analyses run on the float model")
        case .mixedQuantize, .gumbelQuantize:
            throw NetworkError("node '\(name)' (\(op.onnxName)): a search layer has no forward-mode derivative; Hessian-based analyses run on the model before or after the search")
        case .pointwise(let f):
            return at(0).map { f.derivative(inputs[0]!, times: $0) }
        case .binary(let f):
            return try f.tangent(inputs[0]!, inputs[1]!, at(0), at(1))
        case .concat(let axis):
            return try ShapeOp.concat(inputs.indices.map { try at($0) ?? Tensor.zeros(inputs[$0]!.shape) }, axis: axis)
        case .transpose, .slice, .pad, .gather, .expand:
            return try at(0).map { try indexMap(inputs, state: state).gather($0) }
        case .unsqueeze, .squeeze:
            return try at(0).map { try $0.reshaped(output.shape) }
        case .resize(let r):
            return try at(0).map { try ResizeOp.forward($0, r) }
        case .reduce(let r, let axes, let keep):
            return try at(0).map { try r.forward($0, axes: axes, keepDims: keep) }
        case .layerNorm(let axis, let eps):
            return try LayerNormOp.tangent(inputs[0]!, inputs[1]!, axis: axis, epsilon: eps, dx: at(0), dg: at(1), db: at(2))
        case .lrn(let a):
            return try at(0).map { try LRNOp.apply(inputs[0]!, a, $0, transposed: false) }
        case .shape, .constantOfShape, .range:
            return nil
        case .where:
            let mask = try Tensor.zip(output, inputs[0]!) { _, v in v != 0 ? 1 : 0 }
            var out = try Tensor.zeros(output.shape)
            if let a = at(1) { out = try out + a * mask }
            if let b = at(2) { out = try out + b * mask.map { 1 - $0 } }
            return out
        }
    }
}

/// The partial derivatives LSQ uses: ∂x̂/∂x (1 inside the range, 0 outside — straight through)
/// and ∂x̂/∂s (round(x/s) − x/s inside, qmin or qmax outside), both at x's shape.
enum LearnedQuantizeOp {
    static func partials(_ x: Tensor, _ step: Tensor, qmin: Int, qmax: Int) throws -> (Tensor, Tensor) {
        let s = try Tensor.zip(x, step, operation: "LearnedQuantize") { _, s in s }
        let lo = Float(qmin), hi = Float(qmax)
        var dx = [Float](repeating: 0, count: x.count), ds = dx
        for i in 0..<x.count {
            let sv = s.scalars[i]
            guard sv > 0 else { continue }
            let v = x.scalars[i] / sv
            if v < lo { ds[i] = lo } else if v > hi { ds[i] = hi } else { dx[i] = 1; ds[i] = v.rounded(.toNearestOrEven) - v }
        }
        return (Tensor(checkedShape: x.shape, scalars: dx), Tensor(checkedShape: x.shape, scalars: ds))
    }
}
