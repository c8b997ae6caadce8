import Foundation
import Tensors

/// Builds graphs module by module, naming parameters by PyTorch module path (`conv1.weight`,
/// `bn1.running_mean`) so that state dicts load by name. Weights start from seeded Kaiming
/// initialisation (normal, fan-out, for ReLU nets), linear layers from PyTorch's uniform default.
public struct GraphBuilder {
    public private(set) var nodes: [Node] = []
    public private(set) var parameters: [(String, Tensor)] = []
    public private(set) var buffers: [(String, Tensor)] = []
    var rng: RandomGenerator
    var counter = 0
    public let input = "input"

    public init(seed: UInt64) { rng = RandomGenerator(seed: seed) }

    mutating func fresh(_ hint: String) -> String { counter += 1; return "\(hint):\(counter)" }

    mutating func add(_ op: Op, _ module: String, _ inputs: [String]) -> String {
        let out = fresh(module.isEmpty ? op.onnxName : module)
        nodes.append(Node(name: "/\(module.replacingOccurrences(of: ".", with: "/"))/\(op.onnxName)", op: op,
                          inputs: inputs, outputs: [out]))
        return out
    }

    public mutating func conv(_ x: String, _ module: String, in cin: Int, out cout: Int, kernel k: Int, stride: Int = 1,
                              padding: Int? = nil, groups: Int = 1, bias: Bool = false) throws -> String {
        let fanOut = Float(cout * k * k / groups)
        let w = try Tensor.random([cout, cin / groups, k, k], .normal(mean: 0, std: (2 / fanOut).squareRoot()), using: &rng)
        parameters.append(("\(module).weight", w))
        var inputs = [x, "\(module).weight"]
        if bias {
            parameters.append(("\(module).bias", try Tensor.zeros([cout])))
            inputs.append("\(module).bias")
        }
        let p = padding ?? k / 2
        return add(.conv(ConvAttributes(strides: [stride, stride], pads: [p, p, p, p], groups: groups)), module, inputs)
    }

    /// A binary convolution (XNOR-Net): sign(x) (`binarize`, scale 1) into a convolution whose
    /// weight reaches it through `binaryWeights`; the weight keeps the float layer's name.
    public mutating func binaryConv(_ x: String, _ module: String, in cin: Int, out cout: Int, kernel k: Int, stride: Int = 1) throws -> String {
        let signs = add(.binarize(scale: 1), module, [x])
        let fanOut = Float(cout * k * k)
        parameters.append(("\(module).weight", try Tensor.random([cout, cin, k, k], .normal(mean: 0, std: (2 / fanOut).squareRoot()), using: &rng)))
        let w = add(.binaryWeights, module, ["\(module).weight"])
        return add(.conv(ConvAttributes(strides: [stride, stride], pads: [k / 2, k / 2, k / 2, k / 2])), module, [signs, w])
    }

    /// A binary fully connected layer: sign(x) times binary weights, plus a float bias.
    public mutating func binaryLinear(_ x: String, _ module: String, in fin: Int, out fout: Int) throws -> String {
        let signs = add(.binarize(scale: 1), module, [x])
        let bound = 1 / Float(fin).squareRoot()
        parameters.append(("\(module).weight", try Tensor.random([fout, fin], .uniform(low: -bound, high: bound), using: &rng)))
        parameters.append(("\(module).bias", try Tensor.random([fout], .uniform(low: -bound, high: bound), using: &rng)))
        let w = add(.binaryWeights, module, ["\(module).weight"])
        return add(.gemm(GemmAttributes(transB: true)), module, [signs, w, "\(module).bias"])
    }

    public mutating func batchNorm(_ x: String, _ module: String, channels: Int) throws -> String {
        parameters.append(("\(module).weight", try Tensor.ones([channels])))
        parameters.append(("\(module).bias", try Tensor.zeros([channels])))
        buffers.append(("\(module).running_mean", try Tensor.zeros([channels])))
        buffers.append(("\(module).running_var", try Tensor.ones([channels])))
        return add(.batchNorm(epsilon: 1e-5, momentum: 0.1), module,
                   [x, "\(module).weight", "\(module).bias", "\(module).running_mean", "\(module).running_var"])
    }

    public mutating func linear(_ x: String, _ module: String, in fin: Int, out fout: Int) throws -> String {
        let bound = 1 / Float(fin).squareRoot()
        parameters.append(("\(module).weight", try Tensor.random([fout, fin], .uniform(low: -bound, high: bound), using: &rng)))
        parameters.append(("\(module).bias", try Tensor.random([fout], .uniform(low: -bound, high: bound), using: &rng)))
        return add(.gemm(GemmAttributes(transB: true)), module, [x, "\(module).weight", "\(module).bias"])
    }

    public mutating func relu(_ x: String, _ module: String = "") -> String { add(.relu, module, [x]) }
    public mutating func relu6(_ x: String, _ module: String = "") -> String { add(.clip(min: 0, max: 6), module, [x]) }
    public mutating func pointwise(_ f: Pointwise, _ x: String, _ module: String = "") -> String { add(.pointwise(f), module, [x]) }
    public mutating func maxPool(_ x: String, kernel: Int, ceilMode: Bool = false, _ module: String = "") -> String {
        add(.maxPool(PoolAttributes(kernel: [kernel, kernel], ceilMode: ceilMode)), module, [x])
    }
    public mutating func globalAveragePool(_ x: String, _ module: String = "") -> String { add(.globalAveragePool, module, [x]) }
    public mutating func averagePool(_ x: String, kernel: Int, stride: Int, pad: Int = 0, countIncludePad: Bool = false, ceilMode: Bool = false,
                                     _ module: String = "") -> String {
        add(.averagePool(PoolAttributes(kernel: [kernel, kernel], strides: [stride, stride], pads: [pad, pad, pad, pad],
                                        countIncludePad: countIncludePad, ceilMode: ceilMode)), module, [x])
    }
    public mutating func flatten(_ x: String, _ module: String = "") -> String { add(.flatten(axis: 1), module, [x]) }
    /// Any operation on `inputs` (values or parameters), for graphs the helpers above do not make.
    public mutating func apply(_ op: Op, _ inputs: [String], _ module: String = "") -> String { add(op, module, inputs) }
    public mutating func sum(_ a: String, _ b: String, _ module: String = "") -> String { add(.add, module, [a, b]) }
    /// The inputs joined along the channels (axis 1).
    public mutating func concat(_ xs: [String], _ module: String = "") -> String { add(.concat(axis: 1), module, xs) }

    public func model(name: String, output: String, inputShape: [Int]) throws -> Model {
        try Model(name: name, nodes: nodes, input: input, output: output, inputShape: inputShape,
                  parameters: parameters, buffers: buffers)
    }
}
