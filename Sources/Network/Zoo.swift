import Tensors

/// The model zoo: the architectures of ../shared/reference, so their state dicts load by name.
public enum Zoo {
    public static let names = ["mlp", "cnn", "resnet20", "mobilenetv2"]

    public static let summaries: [String: String] = [
        "mlp": "MLP 784-256-128-10 with ReLU",
        "cnn": "3×(conv3×3 + BN + ReLU + maxpool 2) with 16/32/64 channels, then FC 576-128-10",
        "resnet20": "ResNet-20: conv + 3 stages × 3 basic blocks (16/32/64 channels, 1×1 projection shortcuts), GAP, FC",
        "mobilenetv2": "MobileNetV2 for 28×28 inputs: inverted residuals (expansion 6, ReLU6, depthwise 3×3), 16→64 channels",
    ]

    /// The architecture for inputs of `input` ([channels, height, width]; the references' is
    /// [1, 28, 28]) and `classes` outputs.
    /// `hidden`: the MLP's hidden widths (default 256, 128); other architectures refuse it.
    public static func make(_ name: String, seed: UInt64 = 0, input: [Int] = [1, 28, 28], classes: Int = 10, hidden: [Int]? = nil) throws -> Model {
        guard input.count == 3, input.allSatisfy({ (1...4096).contains($0) }), input[0] <= 64, (2...100_000).contains(classes) else {
            throw NetworkError("zoo: expected an input [channels ≤ 64, height, width] of positive sizes and 2…100000 classes, found \(input) and \(classes)")
        }
        if name == "cnn" && (input[1] < 8 || input[2] < 8) { throw NetworkError("zoo: the cnn pools three times and needs inputs of at least 8×8, found \(input)") }
        if name != "mlp" && (input[1] < 4 || input[2] < 4) { throw NetworkError("zoo: \(name) needs inputs of at least 4×4, found \(input)") }
        if let hidden {
            guard name == "mlp" else { throw NetworkError("zoo: hidden widths are for the mlp; \(name) has a fixed architecture") }
            guard (1...16).contains(hidden.count), hidden.allSatisfy({ (1...16384).contains($0) }) else {
                throw NetworkError("zoo: expected 1…16 hidden widths of 1…16384, found \(hidden)")
            }
        }
        let shape = Shape(input: input, classes: classes)
        switch name {
        case "mlp": return try mlp(seed: seed, shape, hidden: hidden ?? [256, 128])
        case "cnn": return try cnn(seed: seed, shape)
        case "resnet20": return try resnet20(seed: seed, shape)
        case "mobilenetv2": return try mobileNetV2(seed: seed, shape)
        default:
            let near = names.min { editDistance($0, name) < editDistance($1, name) } ?? ""
            throw NetworkError("zoo: no model named '\(name)'; expected one of \(names.joined(separator: ", ")) (did you mean '\(near)'?)")
        }
    }

    struct Shape {
        var input: [Int]
        var classes: Int
        var pixels: Int { input.reduce(1, *) }
    }

    static func mlp(seed: UInt64, _ shape: Shape, hidden: [Int]) throws -> Model {
        var b = GraphBuilder(seed: seed)
        var x = b.flatten(b.input)
        var width = shape.pixels
        for (i, h) in hidden.enumerated() {
            x = b.relu(try b.linear(x, "fc\(i + 1)", in: width, out: h))
            width = h
        }
        x = try b.linear(x, "fc\(hidden.count + 1)", in: width, out: shape.classes)
        return try b.model(name: "mlp", output: x, inputShape: shape.input)
    }

    static func cnn(seed: UInt64, _ shape: Shape) throws -> Model {
        var b = GraphBuilder(seed: seed)
        var x = b.input
        for (i, (cin, cout)) in [(shape.input[0], 16), (16, 32), (32, 64)].enumerated() {
            x = try b.conv(x, "conv\(i + 1)", in: cin, out: cout, kernel: 3)
            x = b.relu(try b.batchNorm(x, "bn\(i + 1)", channels: cout))
            x = b.maxPool(x, kernel: 2)
        }
        x = b.flatten(x)
        x = b.relu(try b.linear(x, "fc1", in: 64 * (shape.input[1] / 8) * (shape.input[2] / 8), out: 128))
        x = try b.linear(x, "fc2", in: 128, out: shape.classes)
        return try b.model(name: "cnn", output: x, inputShape: shape.input)
    }

    static func resnet20(seed: UInt64, _ shape: Shape) throws -> Model {
        var b = GraphBuilder(seed: seed)
        var x = b.relu(try b.batchNorm(try b.conv(b.input, "conv1", in: shape.input[0], out: 16, kernel: 3), "bn1", channels: 16))
        var cin = 16
        for block in 0..<9 {
            let cout = [16, 32, 64][block / 3], stride = block % 3 == 0 && block > 0 ? 2 : 1
            let m = "layers.\(block)"
            var y = b.relu(try b.batchNorm(try b.conv(x, "\(m).conv1", in: cin, out: cout, kernel: 3, stride: stride),
                                           "\(m).bn1", channels: cout))
            y = try b.batchNorm(try b.conv(y, "\(m).conv2", in: cout, out: cout, kernel: 3), "\(m).bn2", channels: cout)
            var shortcut = x
            if stride != 1 || cin != cout {
                shortcut = try b.batchNorm(try b.conv(x, "\(m).down.0", in: cin, out: cout, kernel: 1, stride: stride, padding: 0),
                                           "\(m).down.1", channels: cout)
            }
            x = b.relu(b.sum(y, shortcut))
            cin = cout
        }
        x = b.flatten(b.globalAveragePool(x))
        x = try b.linear(x, "fc", in: 64, out: shape.classes)
        return try b.model(name: "resnet20", output: x, inputShape: shape.input)
    }

    /// Inverted residual blocks (t, c, n, s) sized for 28×28: 28 → 14 → 7.
    static func mobileNetV2(seed: UInt64, _ shape: Shape) throws -> Model {
        var b = GraphBuilder(seed: seed)
        var x = b.relu6(try b.batchNorm(try b.conv(b.input, "features.0.0", in: shape.input[0], out: 16, kernel: 3), "features.0.1", channels: 16))
        var cin = 16, index = 1
        for (t, c, n, s) in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 2, 1)] {
            for i in 0..<n {
                let stride = i == 0 ? s : 1, hidden = cin * t, m = "features.\(index).conv"
                var y = x, layer = 0
                if t != 1 {
                    y = b.relu6(try b.batchNorm(try b.conv(y, "\(m).\(layer)", in: cin, out: hidden, kernel: 1),
                                                "\(m).\(layer + 1)", channels: hidden))
                    layer += 2
                }
                y = b.relu6(try b.batchNorm(try b.conv(y, "\(m).\(layer)", in: hidden, out: hidden, kernel: 3, stride: stride,
                                                       groups: hidden), "\(m).\(layer + 1)", channels: hidden))
                y = try b.batchNorm(try b.conv(y, "\(m).\(layer + 2)", in: hidden, out: c, kernel: 1), "\(m).\(layer + 3)", channels: c)
                x = stride == 1 && cin == c ? b.sum(x, y) : y
                cin = c; index += 1
            }
        }
        x = b.relu6(try b.batchNorm(try b.conv(x, "features.\(index).0", in: cin, out: 128, kernel: 1),
                                    "features.\(index).1", channels: 128))
        x = b.flatten(b.globalAveragePool(x))
        x = try b.linear(x, "classifier", in: 128, out: shape.classes)
        return try b.model(name: "mobilenetv2", output: x, inputShape: shape.input)
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
public func editDistance(_ a: String, _ b: String) -> Int {
    let x = Array(a), y = Array(b)
    if x.isEmpty { return y.count }
    var row = Array(0...y.count)
    for i in 1...x.count {
        var prev = row[0]; row[0] = i
        for j in stride(from: 1, through: y.count, by: 1) {
            let cur = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (x[i - 1] == y[j - 1] ? 0 : 1))
            prev = cur
        }
    }
    return row[y.count]
}
