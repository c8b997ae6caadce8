import Tensors

/// Binary variants of zoo models, with the float models' parameter names (so a trained float
/// model's weights load as the starting point): every layer but the first and last is binary
/// — sign(x) of its input (`binarize`) into a convolution or product with XNOR-Net weights
/// α_c·sign(W) (`binaryWeights`) — and no ReLU sits before a sign (sign(ReLU(x)) would be +1).
/// - cnn (XNOR-Net order, BN → sign → binary conv → pool): conv1 → bn1 → pool, then twice
///   sign → conv → bn → pool, flatten → sign → fc1 → ReLU → fc2.
/// - resnet20 (Bi-Real Net): the stem conv1 → bn1, then in every basic block each binary
///   convolution gets its own real-valued shortcut, y = bn1(conv1(sign x)) + shortcut(x) with
///   the float model's 1×1 projection (down.0, down.1: real) where the shape changes, and
///   z = bn2(conv2(sign y)) + y; GAP → fc.
extension Zoo {
    public static let binaryNames = ["cnn", "resnet20"]

    public static func binary(_ name: String, seed: UInt64 = 0, input: [Int] = [1, 28, 28], classes: Int = 10) throws -> Model {
        guard binaryNames.contains(name) else {
            throw NetworkError("zoo: no binary variant of '\(name)'; there are \(binaryNames.joined(separator: ", "))")
        }
        let float = try make(name, seed: seed, input: input, classes: classes)  // checks the shape
        let shape = Shape(input: float.inputShape, classes: classes)
        var b = GraphBuilder(seed: seed)
        switch name {
        case "cnn":
            var x = b.maxPool(try b.batchNorm(try b.conv(b.input, "conv1", in: shape.input[0], out: 16, kernel: 3), "bn1", channels: 16), kernel: 2)
            for (i, (cin, cout)) in [(16, 32), (32, 64)].enumerated() {
                x = b.maxPool(try b.batchNorm(try b.binaryConv(x, "conv\(i + 2)", in: cin, out: cout, kernel: 3), "bn\(i + 2)", channels: cout), kernel: 2)
            }
            x = b.relu(try b.binaryLinear(b.flatten(x), "fc1", in: 64 * (shape.input[1] / 8) * (shape.input[2] / 8), out: 128))
            x = try b.linear(x, "fc2", in: 128, out: shape.classes)
            return try b.model(name: "cnn (binary)", output: x, inputShape: shape.input)
        default:
            var x = try b.batchNorm(try b.conv(b.input, "conv1", in: shape.input[0], out: 16, kernel: 3), "bn1", channels: 16)
            var cin = 16
            for block in 0..<9 {
                let cout = [16, 32, 64][block / 3], stride = block % 3 == 0 && block > 0 ? 2 : 1
                let m = "layers.\(block)"
                var shortcut = x
                if stride != 1 || cin != cout {
                    shortcut = try b.batchNorm(try b.conv(x, "\(m).down.0", in: cin, out: cout, kernel: 1, stride: stride, padding: 0),
                                               "\(m).down.1", channels: cout)
                }
                let y = b.sum(try b.batchNorm(try b.binaryConv(x, "\(m).conv1", in: cin, out: cout, kernel: 3, stride: stride), "\(m).bn1", channels: cout), shortcut)
                x = b.sum(try b.batchNorm(try b.binaryConv(y, "\(m).conv2", in: cout, out: cout, kernel: 3), "\(m).bn2", channels: cout), y)
                cin = cout
            }
            x = try b.linear(b.flatten(b.globalAveragePool(x)), "fc", in: 64, out: shape.classes)
            return try b.model(name: "resnet20 (binary)", output: x, inputShape: shape.input)
        }
    }
}
