import Foundation
import Testing
import TestSupport
import Network
import Tensors

/// The compiled float plan against the graph interpreter (`keepTrace` runs the graph node by
/// node) on the zoo's models and the reference ResNet-20: the same logits within
/// float rounding (the two sum in different orders), the same predictions.
@Test(arguments: ["mlp", "cnn", "resnet20", "mobilenetv2"])
func floatPlanMatchesTheInterpreter(_ name: String) throws {
    let model = try Zoo.make(name)
    if name == "resnet20" { try model.loadStateDict(path: "\(referenceDirectory)/fmnist_resnet20.npz") }
    let plan = try FloatPlan(model)
    let x = try testSet.images.slice(0..<37)
    let fast = try plan.run(x, threads: 2)
    let graph = try model.run(x, keepTrace: true).output
    #expect(fast.shape == graph.shape)
    let scale = graph.scalars.map(abs).max() ?? 1
    let worst = zip(fast.scalars, graph.scalars).map { abs($0 - $1) }.max() ?? 0
    #expect(worst <= 1e-4 * max(1, scale), "\(name): worst difference \(worst) at logit scale \(scale)")
    // Model.run takes the plan for a batch of this size.
    #expect(model.compiledPlan() != nil)
    #expect(try model.run(x).output.scalars == fast.scalars)
    // One image on two threads (the threads share each layer) and on one: the same logits,
    // the same as in the batch (each output is summed in the same order however tiles fall).
    let one = try x.slice(3..<4)
    let shared = try plan.run(one, threads: 2), alone = try plan.run(one, threads: 1)
    #expect(shared.scalars == alone.scalars)
    #expect(shared.scalars == Array(fast.scalars[(3 * shared.count)..<(4 * shared.count)]))
}

/// Layers the zoo does not exercise: padded max pooling, average pooling counting or not the
/// padding, a dilated convolution, a 1×1 stride-2 projection, Clip, a standalone Relu and Add,
/// a Gemm (weights not transposed, α and β) on a flattened value that has a border, Softmax,
/// a weight computed from constants, a Reshape reading its target shape, and a padded
/// convolution reading through an Identity (the border goes to the Identity's input).
@Test func floatPlanCoversPaddedPoolingAndPlainGemm() throws {
    var rng = RandomGenerator(seed: 5)
    func t(_ shape: [Int]) throws -> Tensor { try Tensor.random(shape, .normal(mean: 0, std: 0.5), using: &rng) }
    let conv = { (s: Int, p: Int, d: Int) in Op.conv(ConvAttributes(strides: [s, s], pads: [p, p, p, p], dilations: [d, d])) }
    let nodes = [
        Node(name: "c1", op: conv(1, 1, 1), inputs: ["x", "w1", "b1"], outputs: ["c1"]),
        Node(name: "k1", op: .clip(min: -0.5, max: 6), inputs: ["c1"], outputs: ["k1"]),
        Node(name: "p1", op: .maxPool(PoolAttributes(kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1])), inputs: ["k1"], outputs: ["p1"]),
        Node(name: "c2", op: conv(1, 2, 2), inputs: ["p1", "w2"], outputs: ["c2"]),
        Node(name: "r2", op: .relu, inputs: ["p1"], outputs: ["r2"]),
        Node(name: "a2", op: .add, inputs: ["c2", "r2"], outputs: ["a2"]),
        Node(name: "p2", op: .averagePool(PoolAttributes(kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], countIncludePad: true)),
             inputs: ["a2"], outputs: ["p2"]),
        Node(name: "c3", op: conv(2, 0, 1), inputs: ["p2", "w3", "b3"], outputs: ["c3"]),
        Node(name: "p3", op: .averagePool(PoolAttributes(kernel: [2, 2], strides: [1, 1], pads: [1, 1, 1, 1])), inputs: ["c3"], outputs: ["p3"]),
        Node(name: "id", op: .identity, inputs: ["p3"], outputs: ["pid"]),
        Node(name: "c4", op: conv(1, 1, 1), inputs: ["pid", "w4"], outputs: ["c4"]),
        Node(name: "f", op: .flatten(axis: 1), inputs: ["p3"], outputs: ["f"]),
        Node(name: "fc", op: .gemm(GemmAttributes(alpha: 0.5, beta: 2)), inputs: ["f", "wf", "bf"], outputs: ["y"]),
        Node(name: "g", op: .globalAveragePool, inputs: ["c4"], outputs: ["g"]),
        Node(name: "sm", op: .softmax(axis: -1), inputs: ["y"], outputs: ["sm"]),
        Node(name: "k", op: .constantOfShape(value: 0.25), inputs: ["shape"], outputs: ["k"]),
        Node(name: "c5", op: conv(1, 0, 1), inputs: ["c3", "k"], outputs: ["c5"]),
        Node(name: "r5", op: .reshape(shape: []), inputs: ["c5", "target"], outputs: ["r5"]),
    ]
    let params: [(String, Tensor)] = [("w1", try t([8, 3, 3, 3])), ("b1", try t([8])), ("w2", try t([8, 8, 3, 3])),
                                      ("w3", try t([16, 8, 1, 1])), ("b3", try t([16])), ("w4", try t([4, 16, 3, 3])),
                                      ("wf", try t([16 * 3 * 3, 5])), ("bf", try t([5])),
                                      ("shape", Tensor([2, 16, 1, 1])), ("target", Tensor([0, -1]))]
    // A softmax on the Gemm; a convolution whose weight a ConstantOfShape makes, reshaped by a
    // shape input.
    for output in ["y", "g", "sm", "r5"] {
        let model = try Model(name: "odd", nodes: nodes, input: "x", output: output, inputShape: [3, 11, 9], parameters: params, buffers: [])
        let plan = try FloatPlan(model)
        let xs = try Tensor.random([13, 3, 11, 9], .normal(mean: 0, std: 1), using: &rng)
        let fast = try plan.run(xs, threads: 2), graph = try model.run(xs, keepTrace: true).output
        #expect(fast.shape == graph.shape)
        let worst = zip(fast.scalars, graph.scalars).map { abs($0 - $1) }.max() ?? .nan
        #expect(worst <= 1e-4, "output \(output): worst difference \(worst)")
    }
}

/// A convolution whose weights pass `FloatPlan.weightCacheBytes` (3×3 × 160 → 200: 1.15 MB)
/// takes its tiles column block by column block, with a residual branch and a partial last
/// block: the interpreter's logits on one and two threads, and one image alone.
@Test func floatPlanRunsLargeWeightsBlockByBlock() throws {
    var rng = RandomGenerator(seed: 7)
    func t(_ shape: [Int]) throws -> Tensor { try Tensor.random(shape, .normal(mean: 0, std: 0.1), using: &rng) }
    let conv = { (p: Int) in Op.conv(ConvAttributes(strides: [1, 1], pads: [p, p, p, p], dilations: [1, 1])) }
    let nodes = [
        Node(name: "r", op: conv(0), inputs: ["x", "wr"], outputs: ["r"]),
        Node(name: "c", op: conv(1), inputs: ["x", "w", "b"], outputs: ["c"]),
        Node(name: "a", op: .add, inputs: ["c", "r"], outputs: ["a"]),
        Node(name: "y", op: .relu, inputs: ["a"], outputs: ["y"]),
    ]
    let params: [(String, Tensor)] = [("wr", try t([200, 160, 1, 1])), ("w", try t([200, 160, 3, 3])), ("b", try t([200]))]
    #expect(200 * 160 * 9 * 4 > FloatPlan.weightCacheBytes)
    let model = try Model(name: "wide", nodes: nodes, input: "x", output: "y", inputShape: [160, 6, 7], parameters: params, buffers: [])
    let plan = try FloatPlan(model)
    let xs = try Tensor.random([5, 160, 6, 7], .normal(mean: 0, std: 1), using: &rng)
    let graph = try model.run(xs, keepTrace: true).output
    for threads in [1, 2] {
        let fast = try plan.run(xs, threads: threads)
        let worst = zip(fast.scalars, graph.scalars).map { abs($0 - $1) }.max() ?? .nan
        #expect(fast.shape == graph.shape && worst <= 1e-4, "\(threads) threads: worst difference \(worst)")
        let one = try plan.run(try xs.slice(2..<3), threads: threads)
        #expect(one.scalars == Array(fast.scalars[(2 * one.count)..<(3 * one.count)]))
    }
}

/// Max poolings fused into the convolution before them (`FloatPlan.fusePools`) give exactly
/// the separate steps' values: a 1-channel 3×3 layer run by lines into 20 channels (a channel
/// tail past 16) pooled 2×2; a 20 → 40 layer in tiles of 12 (two column blocks, the second
/// partial) whose 15×15 output a 2×2 pool reads only 14×14 of; a 3×3 / stride-3 pool reading 3×3
/// of a 5×5 output; one pooling not fused (its input is read twice). On one and two threads,
/// and one image with the threads sharing its rows of windows. The fused plan is also held to
/// the interpreter.
@Test func fusedPoolingsMatchTheirSteps() throws {
    var rng = RandomGenerator(seed: 9)
    func t(_ shape: [Int]) throws -> Tensor { try Tensor.random(shape, .normal(mean: 0, std: 0.3), using: &rng) }
    let conv = { (p: Int) in Op.conv(ConvAttributes(strides: [1, 1], pads: [p, p, p, p], dilations: [1, 1])) }
    let pool = { (k: Int) in Op.maxPool(PoolAttributes(kernel: [k, k], strides: [k, k])) }
    let nodes = [
        Node(name: "c1", op: conv(1), inputs: ["x", "w1", "b1"], outputs: ["c1"]),
        Node(name: "r1", op: .relu, inputs: ["c1"], outputs: ["r1"]),
        Node(name: "p1", op: pool(2), inputs: ["r1"], outputs: ["p1"]),
        Node(name: "c2", op: conv(1), inputs: ["p1", "w2", "b2"], outputs: ["c2"]),
        Node(name: "p2", op: pool(2), inputs: ["c2"], outputs: ["p2"]),
        Node(name: "c3", op: conv(0), inputs: ["p2", "w3"], outputs: ["c3"]),
        Node(name: "r3", op: .relu, inputs: ["c3"], outputs: ["r3"]),
        Node(name: "p3", op: pool(3), inputs: ["r3"], outputs: ["p3"]),
        Node(name: "c4", op: conv(1), inputs: ["p2", "w4"], outputs: ["c4"]),
        Node(name: "p4", op: pool(2), inputs: ["c4"], outputs: ["p4"]),
        Node(name: "g4", op: .globalAveragePool, inputs: ["c4"], outputs: ["g4"]),
        Node(name: "f3", op: .flatten(axis: 1), inputs: ["p3"], outputs: ["f3"]),
        Node(name: "f4", op: .flatten(axis: 1), inputs: ["p4"], outputs: ["f4"]),
        Node(name: "fg", op: .flatten(axis: 1), inputs: ["g4"], outputs: ["fg"]),
        Node(name: "y3", op: .gemm(GemmAttributes(transB: true)), inputs: ["f3", "wf"], outputs: ["y3"]),
        Node(name: "y4", op: .gemm(GemmAttributes(transB: true)), inputs: ["f4", "wg"], outputs: ["y4"]),
        Node(name: "yg", op: .gemm(GemmAttributes(transB: true)), inputs: ["fg", "wh"], outputs: ["yg"]),
        Node(name: "s", op: .add, inputs: ["y3", "y4"], outputs: ["s"]),
        Node(name: "y", op: .add, inputs: ["s", "yg"], outputs: ["y"]),
    ]
    let params: [(String, Tensor)] = [("w1", try t([20, 1, 3, 3])), ("b1", try t([20])), ("w2", try t([40, 20, 3, 3])), ("b2", try t([40])),
                                      ("w3", try t([16, 40, 3, 3])), ("w4", try t([8, 40, 3, 3])), ("wf", try t([10, 16])),
                                      ("wg", try t([10, 8 * 3 * 3])), ("wh", try t([10, 8]))]
    let model = try Model(name: "pools", nodes: nodes, input: "x", output: "y", inputShape: [1, 30, 30], parameters: params, buffers: [])
    let (fused, steps) = (try FloatPlan(model), try FloatPlan(model, fusingPools: false))
    #expect(fused.fusedPools == 3 && steps.fusedPools == 0)
    let xs = try Tensor.random([5, 1, 30, 30], .normal(mean: 0, std: 1), using: &rng)
    let graph = try model.run(xs, keepTrace: true).output
    for threads in [1, 2] {
        let (a, b) = (try fused.run(xs, threads: threads), try steps.run(xs, threads: threads))
        #expect(a.shape == [5, 10] && a.scalars == b.scalars, "\(threads) threads: the fused poolings differ from their steps")
        let scale = graph.scalars.map(abs).max() ?? 1
        let worst = zip(a.scalars, graph.scalars).map { abs($0 - $1) }.max() ?? .nan
        #expect(worst <= 1e-4 * max(1, scale), "\(threads) threads: worst difference \(worst) from the interpreter at scale \(scale)")
        let one = try xs.slice(3..<4)
        #expect(try fused.run(one, threads: threads).scalars == Array(a.scalars[30..<40]))
    }
}

/// A graph with a node the plan has no step for runs through the interpreter; a changed
/// parameter is seen by the next run (the cached plan is rebuilt).
@Test func floatPlanFallsBackAndFollowsParameterChanges() throws {
    let model = try Zoo.make("cnn")
    let x = try testSet.images.slice(0..<64)
    let before = try model.run(x).output
    let weight = model.layers[0].weight
    model.parameters[weight]!.withUnsafeMutableScalars { $0[0] += 1 }
    let after = try model.run(x).output
    #expect(after.scalars != before.scalars)
    let graph = try model.run(x, keepTrace: true).output
    #expect(zip(after.scalars, graph.scalars).allSatisfy { abs($0 - $1) <= 1e-4 })

    var b = GraphBuilder(seed: 1)
    let c = try b.conv(b.input, "c", in: 1, out: 8, kernel: 3)
    let f = b.flatten(c, "f")
    let odd = try Model(name: "squared", nodes: b.nodes + [Node(name: "s", op: .mul, inputs: [f, f], outputs: ["s"])],
                        input: b.input, output: "s", inputShape: [1, 8, 8], parameters: b.parameters, buffers: b.buffers)
    #expect(odd.compiledPlan() == nil)
    do { _ = try FloatPlan(odd); Issue.record("compiled a Mul") } catch { #expect("\(error)".contains("Mul")) }
    var rng = RandomGenerator(seed: 2)
    let xs = try Tensor.random([80, 1, 8, 8], .normal(mean: 0, std: 1), using: &rng)
    #expect(try odd.run(xs).output.shape == [80, 512])
}
