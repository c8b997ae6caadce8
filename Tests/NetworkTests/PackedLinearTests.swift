import Testing
import TestSupport
import Network
import Tensors

/// A fully connected net on a large batch multiplies by weights packed once (`SGEMM.PackedB`,
/// bias and ReLU in the GEMM's epilogue): the same logits as the graph interpreter within float
/// rounding, on the zoo's MLP and on Gemms with α, β, an untransposed weight and no bias; a
/// changed weight is packed again before the next run.
@Test func packedLinearLayersMatchTheInterpreter() throws {
    func close(_ a: Tensor, _ b: Tensor, _ what: String) {
        #expect(a.shape == b.shape)
        let scale = max(1, b.scalars.map(abs).max() ?? 1)
        let worst = zip(a.scalars, b.scalars).map { abs($0 - $1) }.max() ?? .nan
        #expect(worst <= 1e-5 * scale, "\(what): worst difference \(worst) at scale \(scale)")
    }
    let mlp = try Zoo.make("mlp")
    let x = try testSet.images.slice(0..<100)
    let before = try mlp.run(x).output
    close(before, try mlp.run(x, keepTrace: true).output, "zoo mlp")
    let weight = mlp.layers[0].weight
    mlp.parameters[weight]!.withUnsafeMutableScalars { $0[0] += 1 }
    let after = try mlp.run(x).output
    #expect(after.scalars != before.scalars)
    close(after, try mlp.run(x, keepTrace: true).output, "zoo mlp after a weight changed")

    var rng = RandomGenerator(seed: 9)
    func t(_ shape: [Int]) throws -> Tensor { try Tensor.random(shape, .normal(mean: 0, std: 0.5), using: &rng) }
    let nodes = [
        Node(name: "g1", op: .gemm(GemmAttributes(alpha: 0.5, beta: 2)), inputs: ["x", "w1", "b1"], outputs: ["h"]),
        Node(name: "r", op: .relu, inputs: ["h"], outputs: ["r"]),
        Node(name: "g2", op: .gemm(GemmAttributes(transB: true)), inputs: ["r", "w2"], outputs: ["y"]),
    ]
    let odd = try Model(name: "odd", nodes: nodes, input: "x", output: "y", inputShape: [20],
                        parameters: [("w1", try t([20, 30])), ("b1", try t([30])), ("w2", try t([7, 30]))], buffers: [])
    let xs = try t([70, 20])
    close(try odd.run(xs).output, try odd.run(xs, keepTrace: true).output, "α, β, untransposed, no bias")
}
