import Testing
import Network
import Tensors

/// The plain loop's 2×2 / stride-2 max pooling: the window's taps in row order, a later tap
/// taking over only when greater, or when it is NaN and the best so far is not. Values and the
/// flat index each output took.
private func halvingReference(_ values: [Float], planes: Int, h: Int, w: Int) -> (values: [Float], at: [Int]) {
    var out: [Float] = [], at: [Int] = []
    for p in 0..<planes {
        for oy in 0..<(h / 2) {
            for ox in 0..<(w / 2) {
                var best = Float(0), index = -1
                for u in 0..<2 {
                    for v in 0..<2 {
                        let i = p * h * w + (2 * oy + u) * w + 2 * ox + v
                        if index < 0 || values[i] > best || (values[i].isNaN && !best.isNaN) { best = values[i]; index = i }
                    }
                }
                out.append(best); at.append(index)
            }
        }
    }
    return (out, at)
}

/// Max pooling 2×2 / stride 2 takes eight outputs at a time; its argmax (seen through the
/// gradient) on ties and its values on NaNs (made inside the graph: an input may not hold them)
/// must be the plain loop's. Shapes: rows of 19 outputs (two whole groups of eight, then a
/// group across rows), of 7 (the CNN's second pool: every group across rows), of 7 from an odd
/// width, and a single output.
@Test(arguments: [(6, 38), (4, 14), (6, 15), (2, 2)])
func maxPoolingOfHalvesKeepsTheFirstMaximumAndNaN(_ h: Int, _ w: Int) throws {
    let c = 3
    var rng = RandomGenerator(seed: 3)
    let draws = (0..<(2 * c * h * w)).map { _ in rng.next() % 16 }
    let pool = Node(name: "pool", op: .maxPool(PoolAttributes(kernel: [2, 2], strides: [2, 2])), inputs: ["x"], outputs: ["y"])
    // Ties: values from {0, 1, 2}; the gradient lands where each output's maximum was taken.
    let ties = draws.map { Float($0 % 3) }
    let model = try Model(name: "pool", nodes: [pool], input: "x", output: "y", inputShape: [c, h, w], parameters: [], buffers: [])
    let (y, trace) = try model.run(try Tensor(shape: [2, c, h, w], scalars: ties), training: true, keepTrace: true)
    let expected = halvingReference(ties, planes: 2 * c, h: h, w: w)
    let r = try Tensor(shape: y.shape, scalars: (0..<y.count).map { Float($0 + 1) })
    let dx = try model.gradients(trace!, outputGradient: r, inputGradient: true)["x"]!
    var gradient = [Float](repeating: 0, count: ties.count)
    for (o, i) in expected.at.enumerated() { gradient[i] += r.scalars[o] }
    #expect(y.scalars == expected.values && dx.scalars == gradient)
    // NaNs: √ of a negative input.
    let signed = draws.map { $0 == 0 ? -1 : Float($0 % 3) }
    let root = Node(name: "root", op: .pointwise(.sqrt), inputs: ["x"], outputs: ["r"])
    let pooled = Node(name: "pool", op: .maxPool(PoolAttributes(kernel: [2, 2], strides: [2, 2])), inputs: ["r"], outputs: ["y"])
    let nan = try Model(name: "pool", nodes: [root, pooled], input: "x", output: "y", inputShape: [c, h, w], parameters: [], buffers: [])
    let reference = halvingReference(signed.map { $0.squareRoot() }, planes: 2 * c, h: h, w: w).values
    #expect(h * w <= 4 || (reference.contains { $0.isNaN } && reference.contains { !$0.isNaN }))
    // With argmax (a kept trace) and without (inference).
    for keepTrace in [true, false] {
        let z = try nan.run(try Tensor(shape: [2, c, h, w], scalars: signed), training: keepTrace, keepTrace: keepTrace).output
        let differ = zip(z.scalars, reference).enumerated().filter { !($0.element.0 == $0.element.1 || ($0.element.0.isNaN && $0.element.1.isNaN)) }
        #expect(differ.isEmpty, "first differences (output, ours, plain loop): \(differ.prefix(4).map { ($0.offset, $0.element.0, $0.element.1) }), keepTrace \(keepTrace)")
    }
}
