import Testing
import TestSupport
import Network
import Runtime
import Tensors

/// A fully connected net at inference on a large batch leaves its input's NaN check to its first
/// linear layer (`InputCheck`, the GEMM's in-place kernel looking at every sum): the same error as
/// the check made first, for a NaN or an infinity of either sign anywhere in the batch (first
/// element, last, one between), on one and two threads; a finite input whose sums overflow is
/// not refused (the pass over the input decides); a linear layer that cannot vouch (α = 0) and a
/// model whose first node is not a view or a linear layer check the input themselves.
@Test func inputCheckLeftToTheFirstLinearLayer() throws {
    let refused = "the input holds NaN or infinite values"
    let mlp = try Zoo.make("mlp")
    let x = try testSet.images.slice(0..<100)
    let clean = try mlp.run(x).output
    for threads in [1, 2] {
        for (value, index) in [(Float.nan, x.count - 1), (.infinity, 0), (-.infinity, x.count / 2 + 13)] {
            var bad = x
            bad.withUnsafeMutableScalars { $0[index] = value }
            #expect(throws: NetworkError("model '\(mlp.name)': \(refused)"), "\(value) at \(index), \(threads) threads") {
                try Parallel.withThreads(threads) { try mlp.run(bad) }
            }
        }
        let huge = x.map { $0 >= 0 ? 3e38 : -3e38 }
        #expect(!huge.hasNonFinite)
        let overflowed = try Parallel.withThreads(threads) { try mlp.run(huge).output }
        #expect(overflowed.hasNonFinite, "no sum overflowed on \(threads) threads: the case is not tested")
        let again = try Parallel.withThreads(threads) { try mlp.run(x).output }
        #expect(again.scalars == clean.scalars, "the clean batch changed on \(threads) threads")
    }

    var rng = RandomGenerator(seed: 3)
    func t(_ shape: [Int]) throws -> Tensor { try Tensor.random(shape, .normal(mean: 0, std: 0.5), using: &rng) }
    let xs = try t([80, 12])
    var bad = xs
    bad.withUnsafeMutableScalars { $0[500] = .nan }
    let silent = [
        Node(name: "g", op: .gemm(GemmAttributes(alpha: 0)), inputs: ["x", "w"], outputs: ["h"]),
        Node(name: "r", op: .relu, inputs: ["h"], outputs: ["y"]),
    ]
    let zero = try Model(name: "zero", nodes: silent, input: "x", output: "y", inputShape: [12],
                         parameters: [("w", try t([12, 5]))], buffers: [])
    #expect(throws: NetworkError("model 'zero': \(refused)")) { try zero.run(bad) }
    _ = try zero.run(xs)
    let first = [
        Node(name: "r", op: .relu, inputs: ["x"], outputs: ["h"]),
        Node(name: "g", op: .gemm(GemmAttributes()), inputs: ["h", "w"], outputs: ["y"]),
    ]
    let reluFirst = try Model(name: "relu first", nodes: first, input: "x", output: "y", inputShape: [12],
                              parameters: [("w", try t([12, 5]))], buffers: [])
    #expect(throws: NetworkError("model 'relu first': \(refused)")) { try reluFirst.run(bad) }
    _ = try reluFirst.run(xs)
}
