import Foundation
import Testing
import TestSupport
import Kernels
import Network
import Quantization
import Tensors

/// METHODS.md §2's fixture: s = 0.0123 → b = 1690499128, c = 37; 12345 → 152; 81 → 1.
@Test func dyadicFixture() throws {
    let d = try Dyadic(0.0123)
    #expect(d.multiplier == 1690499128 && d.shift == 37)
    #expect(d.apply(12345) == 152)
    #expect(d.apply(81) == 1)
    #expect(throws: QuantizationError.self) { try Dyadic(0) }
    #expect(throws: QuantizationError.self) { try Dyadic(.nan) }
    // A multiplier whose mantissa rounds up to 2^31 is halved: b stays below 2^31.
    let edge = try Dyadic(1 - 1e-12)
    #expect(edge.multiplier < 1 << 31 && abs(edge.value - 1) < 1e-9)
}

/// Dyadic requantization equals exact rational rounding (half up) of y·s for random s and y,
/// except where y·s lies within its representation error of a half.
@Test func dyadicMatchesExactRoundingAwayFromTies() throws {
    var rng = RandomGenerator(seed: 77)
    var compared = 0
    for _ in 0..<200_000 {
        // Requantization's range: multipliers 2^-20 … 2^-4, accumulators within ±2^24.
        let s = pow(2, Double(rng.uniform()) * 16 - 20)
        let y = Int64(Int32(truncatingIfNeeded: rng.next() >> 32)) >> (7 + Int64(rng.next() % 16))
        let d = try Dyadic(s)
        let exact = Double(y) * s
        let fraction = exact - exact.rounded(.down)
        // b/2^c is within 2^-31 (relative) of s: only a product that close to a half may differ.
        if abs(fraction - 0.5) <= abs(exact) * 5e-10 + 1e-12 { continue }
        #expect(d.apply(y) == Int64((exact + 0.5).rounded(.down)), "s \(s) y \(y)")
        compared += 1
    }
    #expect(compared > 199_000)
}

let engineTestSet: Dataset = try! FashionMNIST.load(.test)

/// Counts the images (rows of two logit batches) with the same argmax, with every logit within
/// one output step (`steps`, per class) of the other's, and with identical logits.
func agreement(_ a: Tensor, _ b: Tensor, steps: [Double]) -> (same: Int, withinStep: Int, identical: Int) {
    let c = a.shape[1]
    var same = 0, withinStep = 0, identical = 0
    for i in 0..<a.shape[0] {
        let rowA = Array(a.scalars[(i * c)..<((i + 1) * c)]), rowB = Array(b.scalars[(i * c)..<((i + 1) * c)])
        if rowA.indices.max(by: { rowA[$0] < rowA[$1] }) == rowB.indices.max(by: { rowB[$0] < rowB[$1] }) { same += 1 }
        if (0..<c).allSatisfy({ abs(Double(rowA[$0]) - Double(rowB[$0])) <= steps[$0] * 1.0001 }) { withinStep += 1 }
        if rowA == rowB { identical += 1 }
    }
    return (same, withinStep, identical)
}

/// The integer engine against its fake-quant simulations on ResNet-20 (and the CNN) at W8A8
/// and W4A8, over the whole test set. HAWQ-V3's simulation (codes carried in floats, the
/// engine's dyadic requantization) must give logits within one output step — the final
/// accumulator's unit — on every image, and so the same predictions. The simulation with exact
/// scales must give ≥ 99.9% identical predictions; its logits stray by more than a step on some
/// images (Float32 sums and the dyadic's 31-bit mantissa move an activation across a rounding
/// boundary now and then, and the moved code carries on), which is printed.
@Test(arguments: [("resnet20", 8), ("resnet20", 4), ("cnn", 8), ("cnn", 4)])
func integerEngineAgreesWithSimulation(name: String, weightBits: Int) throws {
    let model = try Zoo.make(name)
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_\(name).npz")
    let policy = try Policy.uniform(model, bits: weightBits, activationBits: 8)
    let engine = try IntegerModel(model: model, policy: policy, calibration: try FashionMNIST.calibration().images)
    let steps = engine.outputSteps
    var exact = (same: 0, withinStep: 0, identical: 0), scaled = (same: 0, withinStep: 0)
    var start = 0
    while start < engineTestSet.count {
        let end = min(engineTestSet.count, start + 500)
        let x = try engineTestSet.images.slice(start..<end)
        let a = try engine.run(x)
        let d = try engine.dyadicSimulation.run(x).output, f = try engine.simulation.run(x).output
        let (e, s) = (agreement(a, d, steps: steps), agreement(a, f, steps: steps))
        exact.same += e.same; exact.withinStep += e.withinStep; exact.identical += e.identical
        scaled.same += s.same; scaled.withinStep += s.withinStep
        start = end
    }
    let n = engineTestSet.count
    let accuracy = try engine.accuracy(on: engineTestSet)
    print("integer engine W\(weightBits)A8 \(name): \(accuracy) accuracy; HAWQ-V3 simulation: logits within one step on \(exact.withinStep)/\(n) (bit-identical on \(exact.identical)), predictions identical on \(exact.same); exact-scale simulation: predictions identical on \(scaled.same), logits within one step on \(scaled.withinStep)")
    #expect(exact.withinStep == n)
    #expect(exact.same == n)
    #expect(Double(scaled.same) / Double(n) >= 0.999)
    // FP32: ResNet-20 93.98%, CNN 92.31%.
    #expect(accuracy > (name == "resnet20" ? 0.925 : 0.905))
}

/// Binary layers: W1A1 runs XNOR-popcount on sign(x) (the MLP's fc1 on the image; the CNN's
/// conv1, whose 3×3 padding contributes nothing), W1A8 runs ±1 weights through the int8 kernel
/// (the CNN's conv2). The engine agrees with its simulation image by image.
@Test func binaryLayersAgreeWithSimulation() throws {
    for (name, bits, activations, floor) in [("mlp", ["fc1": 1], ["fc1": 1], 0.75), ("cnn", ["conv1": 1, "conv2": 1], ["conv1": 1], 0.5)] {
        let model = try Zoo.make(name)
        try model.loadStateDict(path: "\(referenceDirectory)/fmnist_\(name).npz")
        let policy = try Policy(model: model, weightBits: model.layers.map { bits[$0.name] ?? 8 },
                                activationBits: model.layers.map { activations[$0.name] ?? 8 })
        let engine = try IntegerModel(model: model, policy: policy, calibration: try FashionMNIST.calibration().images)
        #expect(engine.simulation.nodes.contains { if case .binarize = $0.op { return true }; return false })
        let x = try engineTestSet.images.slice(0..<2000)
        let a = try engine.run(x), b = try engine.simulation.run(x).output
        let exact = agreement(a, try engine.dyadicSimulation.run(x).output, steps: engine.outputSteps)
        #expect(exact.withinStep == 2000)
        let same = agreement(a, b, steps: engine.outputSteps).same
        let right = zip(try a.argmax(axis: 1).scalars, engineTestSet.labels.prefix(2000)).filter { Int($0) == Int($1) }.count
        print("integer engine with binary layers, \(name): \(right)/2000 right; predictions identical to the simulation on \(same)/2000, logits within one step of HAWQ-V3's on \(exact.withinStep)")
        #expect(Double(same) / 2000 >= 0.999)
        #expect(Double(right) / 2000 > floor)
    }
}

/// Unsupported graphs and policies are refused with the reason.
@Test func integerEngineRefusesWhatItCannotRun() throws {
    let m = try Zoo.make("mlp")
    #expect(throws: QuantizationError.self) { try IntegerModel(model: m, policy: try Policy.uniform(m, bits: 8), calibration: try Tensor.zeros([2, 1, 28, 28])) }
    // Binary activations straight out of a residual add are not requantized by the engine.
    let resnet = try Zoo.make("resnet20")
    #expect(throws: QuantizationError.self) {
        try IntegerModel(model: resnet, policy: try Policy.uniform(resnet, bits: 1, activationBits: 1), calibration: try Tensor.zeros([2] + resnet.inputShape))
    }
}

/// A conv channel whose weights are all zero has weight scale 0: the engine gives that channel
/// zeros (and agrees with its simulation) instead of failing on the dyadic multiplier.
@Test func integerEngineHandlesAllZeroChannels() throws {
    let model = try Zoo.make("cnn")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_cnn.npz")
    let w = model.layers[1].weight
    var t = model.parameters[w]!
    let per = t.count / t.shape[0]
    t.withUnsafeMutableScalars { for i in 0..<per { $0[i] = 0 } }
    model.parameters[w] = t
    let data = try engineTestSet.slice(0..<200)
    let engine = try IntegerModel(model: model, policy: try Policy.uniform(model, bits: 8, activationBits: 8),
                                  calibration: try FashionMNIST.calibration().images)
    let a = try engine.run(data.images), b = try engine.simulation.run(data.images).output
    #expect(try a.argmax(axis: 1) == b.argmax(axis: 1))
    #expect(agreement(a, try engine.dyadicSimulation.run(data.images).output, steps: engine.outputSteps).withinStep == 200)
}

/// The Requantize op the HAWQ-V3 simulation is made of: each rule on a worked example, the
/// dyadic rule equal to `Dyadic.apply` (rounding half up, per channel), and non-integer sums refused.
@Test func requantizeOpRules() throws {
    func run(_ r: Requantization, _ x: [Float], shape: [Int]) throws -> [Float] {
        let node = Node(name: "r", op: .requantize(r), inputs: ["x"], outputs: ["y"])
        let m = try Model(name: "r", nodes: [node], input: "x", output: "y", inputShape: Array(shape.dropFirst()), parameters: [], buffers: [])
        return try m.run(Tensor(checkedShape: shape, scalars: x)).output.scalars
    }
    // Reals to codes: 2.5/1 rounds away from zero to 3 (to even: 2); −7.5 → −8 clamps to −4.
    #expect(try run(Requantization(.divide(scale: 1, rounding: .halfAwayFromZero), lo: -4, hi: 4), [2.5, -7.5, 0.49], shape: [1, 3]) == [3, -4, 0])
    #expect(try run(Requantization(.divide(scale: 0.5, rounding: .halfToEven), lo: -8, hi: 8), [1.25, -0.75, 3.9], shape: [1, 3]) == [2, -2, 8])
    // METHODS.md's fixture through the op: s = 0.0123, 12345 → 152, 81 → 1; channel 1 halves (5 → 3, −5 → −2: half up).
    let d = try Dyadic(0.0123), h = try Dyadic(0.5)
    let r = Requantization(.dyadic(multipliers: [d.multiplier, h.multiplier], shifts: [d.shift, h.shift]), lo: -100, hi: 200)
    #expect(try run(r, [12345, 81, 5, -5], shape: [1, 2, 2]) == [152, 1, 3, -2])
    #expect(throws: NetworkError.self) { try run(r, [0.5, 0, 0, 0], shape: [1, 2, 2]) }
    #expect(throws: NetworkError.self) { try run(r, [1, 2, 3], shape: [1, 3]) }
    #expect(try run(Requantization(.sign), [0, -0.1, 3], shape: [1, 3]) == [1, -1, 1])
    #expect(try run(Requantization(.multiply(scales: [0.5, 2])), [3, -3], shape: [1, 2]) == [1.5, -6])
    // Random sums: the op and Dyadic.apply agree exactly.
    var rng = RandomGenerator(seed: 5)
    let ys = (0..<1000).map { _ in Float(Int32(truncatingIfNeeded: rng.next() >> 32) >> 8) }
    let s = try Dyadic(0.00037)
    let out = try run(Requantization(.dyadic(multipliers: [s.multiplier], shifts: [s.shift])), ys, shape: [1, 1000])
    #expect(out == ys.map { Float(s.apply(Int64($0))) })
}

/// The engine runs what a policy's quantizers say, layer by layer: on ResNet-20, pow2
/// thresholds in some layers, kernel-wise widths (2/3/4/8 by channel) in others, HWGQ 4-bit
/// activations after the stem, a ternary layer, and the fc binary (1-bit weights on 8-bit
/// codes). Its logits stay within one step of HAWQ-V3's simulation on every image, and its
/// weights are those of the policy's fake-quant model (the same quantizers, on the folded
/// weights).
@Test func integerEngineRunsMixedQuantizers() throws {
    let model = try Zoo.make("resnet20")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_resnet20.npz")
    let layers = model.layers
    let entries = layers.enumerated().map { i, layer -> Policy.Entry in
        let n = layer.weightShape[0]
        let weight: Policy.Weight
        switch i {
        case 0: weight = .reference(bits: 8)
        case layers.count - 1: weight = .reference(bits: 1)
        case 5: weight = Policy.Weight(Quantizer(bits: 2, scheme: .ternary))
        case _ where i % 3 == 0: weight = Policy.Weight(Quantizer(bits: 4, scheme: .powerOfTwo, clipping: .mse))
        case _ where i % 3 == 1: weight = Policy.Weight.reference(bits: 8).perChannel((0..<n).map { [2, 3, 4, 8][$0 % 4] })
        default: weight = .reference(bits: 4)
        }
        return Policy.Entry(layer: layer, weight: weight, activation: i == 0 ? Policy.Activation(bits: 8) : Policy.Activation(bits: 4, scheme: .hwgq))
    }
    let policy = try Policy(model: model, entries: entries)
    let engine = try IntegerModel(model: model, policy: policy, calibration: try FashionMNIST.calibration().images)
    let x = try engineTestSet.images.slice(0..<1000)
    let a = try engine.run(x)
    let exact = agreement(a, try engine.dyadicSimulation.run(x).output, steps: engine.outputSteps)
    #expect(exact.withinStep == 1000)
    let right = zip(try a.argmax(axis: 1).scalars, engineTestSet.labels.prefix(1000)).filter { Int($0) == Int($1) }.count
    print("integer engine, mixed quantizers on ResNet-20: \(right)/1000 right, logits within one step of HAWQ-V3's simulation on \(exact.withinStep)/1000")
    #expect(right > 700)
    // Float weights and the mid-rise gaussian are refused with the reason.
    #expect(throws: QuantizationError.self) {
        try IntegerModel(model: model, policy: try policy.replacing(layers[3].name, weight: .some(nil)), calibration: try FashionMNIST.calibration().images)
    }
    #expect(throws: QuantizationError.self) {
        try IntegerModel(model: model, policy: try policy.replacing(layers[3].name, weight: Policy.Weight(Quantizer(bits: 2, scheme: .gaussian))),
                         calibration: try FashionMNIST.calibration().images)
    }
}

/// Layers with one output pixel run as matrix–vector products reading their weights at the
/// narrowest of 8, 4 and 2 bits that holds the codes (the MLP at 2/3/8 bits: 2, 4, 8; its fc1
/// reads the image's signed codes, flipped as the tile flips them). The logits equal HAWQ-V3's
/// simulation on every image, for a batch (images over the workers) and for single images
/// (the product's rows over two threads).
@Test func oneImageLayersRunAsMatrixVectorProducts() throws {
    let model = try Zoo.make("mlp")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_mlp.npz")
    let policy = try Policy(model: model, weightBits: [2, 3, 8], activationBits: [8, 8, 8])
    let engine = try IntegerModel(model: model, policy: policy, calibration: try FashionMNIST.calibration().images)
    #expect(engine.vectorWidths == ["fc1": 2, "fc2": 4, "fc3": 8])
    let x = try engineTestSet.images.slice(0..<300)
    let simulated = try engine.dyadicSimulation.run(x).output
    #expect(agreement(try engine.run(x, threads: 2), simulated, steps: engine.outputSteps).withinStep == 300)
    for i in 0..<20 {
        let one = try engine.run(try x.slice(i..<(i + 1)), threads: 2)
        #expect(one.scalars == Array(simulated.scalars[(i * 10)..<((i + 1) * 10)]), "image \(i)")
    }
    // The CNN's linear layers read a flattened 3×3×64 map: gathered tap by tap.
    let cnn = try Zoo.make("cnn")
    try cnn.loadStateDict(path: "\(referenceDirectory)/fmnist_cnn.npz")
    let e = try IntegerModel(model: cnn, policy: try Policy.uniform(cnn, bits: 4, activationBits: 8), calibration: try FashionMNIST.calibration().images)
    #expect(e.vectorWidths == ["fc1": 4, "fc2": 4])
    #expect(agreement(try e.run(x), try e.dyadicSimulation.run(x).output, steps: e.outputSteps).withinStep == 300)
}

/// MobileNetV2 (the zoo's, seeded weights) runs whole in the engine: depthwise 3×3
/// convolutions on byte codes (`DepthwiseConv`, against its plain reference on awkward channel
/// counts), ReLU6 as the epilogue's clamp at round(6/scale), residual adds with no ReLU after
/// them. The engine equals HAWQ-V3's simulation on every logit at W8A8 and W4A8, and predicts as
/// the fake-quant simulation on nearly every image.
@Test func mobileNetV2RunsInTheEngine() throws {
    var rng = RandomGenerator(seed: 21)
    for (channels, signed) in [(1, false), (15, true), (16, false), (33, true), (96, false)] {
        let ldw = (channels + 15) / 16 * 16, taps = [0, channels + 5, 3 * (channels + 5), 7 * (channels + 5)]
        let x = (0..<(8 * (channels + 5) + 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let w = (0..<(taps.count * ldw)).map { i in i % ldw < channels ? Int32(Int8(truncatingIfNeeded: rng.next())) : 0 }
        var fast = [Int32](repeating: 0, count: ldw), slow = [Int32](repeating: 0, count: channels)
        x.withUnsafeBufferPointer { xp in
            taps.withUnsafeBufferPointer { tp in
                w.withUnsafeBufferPointer { wp in
                    DepthwiseConv.pixel(xp.baseAddress!, signed: signed, taps: tp.baseAddress!, ntaps: taps.count, weights: wp.baseAddress!, ldw: ldw, channels: channels, sums: &fast)
                    DepthwiseConv.reference(xp.baseAddress!, signed: signed, taps: tp.baseAddress!, ntaps: taps.count, weights: wp.baseAddress!, ldw: ldw, channels: channels, sums: &slow)
                }
            }
        }
        #expect(Array(fast.prefix(channels)) == slow, "\(channels) channels, signed \(signed)")
    }
    // Whole layers with the epilogue: the C paths (VNNI, AVX2) and the portable one (pixel sums
    // through `IntegerEpilogue`) give the same bytes — codes with a clamp, and raw sums.
    // 9, 4 and 1 taps (kernels other than 3×3; an even count of taps).
    for (channels, signed, codes, ntaps) in [(7, false, true, 9), (16, true, true, 9), (40, false, false, 9), (96, true, true, 9),
                                             (33, true, false, 4), (17, false, true, 1)] {
        let ldw = (channels + 15) / 16 * 16, stride = channels + 3, pixels = 6
        let taps = (0..<ntaps).map { ($0 / 3) * 4 * stride + ($0 % 3) * stride }
        // The last pixel's last tap starts 9·stride + 10·stride in: every byte read lies inside (a
        // read past the array saw whatever the heap held there, which other tests could change
        // between the two backends' runs).
        let input = (0..<(20 * stride + 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let w = (0..<(ntaps * ldw)).map { i in i % ldw < channels ? Int32(Int8(truncatingIfNeeded: rng.next())) : 0 }
        let bias = (0..<channels).map { _ in Int32(truncatingIfNeeded: rng.next() % 2001) - 1000 }
        let e = IntegerEpilogue(bias: bias, multiplier: bias.map { _ in Int32(1 << 30) + Int32(rng.next() % 1000) }, shift: bias.map { _ in 38 },
                                lo: 0, hi: 200, mode: codes ? .codes : .sums)
        let starts = (0..<pixels).map { ($0 % 2) * stride + ($0 / 2) * 4 * stride }, outStarts = (0..<pixels).map { $0 * ldw }
        var outputs: [[UInt8]] = []
        for backend in [IGEMM.Backend.swift, .vnni, .avx2] where backend.runs {
            var out = [UInt8](repeating: 0, count: pixels * ldw * 4)
            var scratch = [Int32](repeating: 0, count: ldw)
            input.withUnsafeBufferPointer { x in
                out.withUnsafeMutableBytes { o in
                    DepthwiseConv.run(input: x.baseAddress!, signed: signed, starts: starts, outStarts: outStarts, taps: taps, weights: w, ldw: ldw,
                                      channels: channels, epilogue: e, output: o.baseAddress!, scratch: &scratch, backend: backend)
                }
            }
            outputs.append(out)
        }
        #expect(outputs.allSatisfy { $0 == outputs[0] }, "\(channels) channels, signed \(signed), codes \(codes), \(ntaps) taps")
    }
    // 3×3 layers on pairs of neighbouring codes (`PairGrid`, VNNI machines) against the portable
    // path: grids of 5×6 to 8×10 pixels, strides 1, 2 and 3 (grid rows no window reads), channels
    // off the 16-lane vectors, codes at their ends (255, −128) beside weights at theirs (−128,
    // 127), codes and sums out.
    for (channels, signed, codes, step, rows, cols) in [(7, false, true, 1, 5, 6), (16, true, false, 1, 7, 9), (33, false, true, 2, 7, 9),
                                                          (96, true, true, 2, 5, 6), (40, false, false, 1, 3, 3), (24, true, true, 3, 8, 10)] {
        let ldw = (channels + 15) / 16 * 16, px = channels + 3
        let taps = (0..<9).map { ($0 / 3) * cols * px + ($0 % 3) * px }
        let input = (0..<(rows * cols * px + 64)).map { i -> UInt8 in i % 5 == 0 ? (signed ? 0x80 : 0xFF) : UInt8(truncatingIfNeeded: rng.next()) }
        let w = (0..<(9 * ldw)).map { i -> Int32 in i % ldw >= channels ? 0 : i % 7 == 0 ? -128 : i % 7 == 1 ? 127 : Int32(Int8(truncatingIfNeeded: rng.next())) }
        let bias = (0..<channels).map { _ in Int32(truncatingIfNeeded: rng.next() % 2001) - 1000 }
        // A clamp inside the byte range on even channel counts; the bias folded into the VNNI
        // kernel's rounding terms on odd ones (what the engine's plan does where sums allow).
        let e = IntegerEpilogue(bias: bias, multiplier: bias.map { _ in Int32(1 << 30) + Int32(rng.next() % 1000) }, shift: bias.map { _ in 40 },
                                lo: 0, hi: channels % 2 == 0 ? 200 : 255, mode: codes ? .codes : .sums)
        if channels % 2 == 1 && codes {
            e.foldBias(sumsWithin: 9 * 255 * 128)
            #expect(e.biasFolded)
        }
        var starts: [Int] = []
        for oy in stride(from: 0, through: rows - 3, by: step) { for ox in stride(from: 0, through: cols - 3, by: step) { starts.append((oy * cols + ox) * px) } }
        let outStarts = starts.indices.map { $0 * ldw }
        let grid = try #require(DepthwiseConv.PairGrid(taps: taps, starts: starts, rows: rows, cols: cols, pixelBytes: px, weights: w, ldw: ldw))
        #expect(DepthwiseConv.PairGrid(taps: taps, starts: starts + [(rows - 2) * cols * px], rows: rows, cols: cols, pixelBytes: px, weights: w, ldw: ldw) == nil)
        #expect(DepthwiseConv.PairGrid(taps: taps, starts: [], rows: rows, cols: cols, pixelBytes: px, weights: w, ldw: ldw) == nil)
        if step < rows - 2 {
            #expect(DepthwiseConv.PairGrid(taps: taps, starts: starts.reversed(), rows: rows, cols: cols, pixelBytes: px, weights: w, ldw: ldw) == nil)
        }
        #expect(DepthwiseConv.PairGrid(taps: Array(taps.prefix(4)), starts: starts, rows: rows, cols: cols, pixelBytes: px, weights: Array(w.prefix(4 * ldw)), ldw: ldw) == nil)
        var outputs: [[UInt8]] = []
        for backend in [IGEMM.Backend.swift, .vnni] where backend.runs {
            var out = [UInt8](repeating: 0, count: starts.count * ldw * 4)
            var scratch = [Int32](repeating: 0, count: ldw), pairs = [Int32](repeating: -1, count: grid.count)
            input.withUnsafeBufferPointer { x in
                out.withUnsafeMutableBytes { o in
                    DepthwiseConv.run(input: x.baseAddress!, signed: signed, starts: starts, outStarts: outStarts, taps: taps, weights: w, ldw: ldw,
                                      channels: channels, epilogue: e, output: o.baseAddress!, scratch: &scratch, backend: backend, grid: grid, pairs: &pairs)
                }
            }
            outputs.append(out)
        }
        #expect(outputs.allSatisfy { $0 == outputs[0] }, "pairs: \(channels) channels, signed \(signed), codes \(codes), stride \(step), \(rows)×\(cols)")
    }
    // The pairs of a grid row by byte permutation (AVX512-VBMI) against the widening form: channel
    // counts off and on the 64-byte loads, codes at their ends, the last column (no neighbour).
    if IGEMM.Backend.vnni.runs && DepthwiseConv.PairGrid.permutes {
        for (channels, signed) in [(7, false), (16, true), (33, true), (64, false), (100, true), (128, false)] {
            let ldw = (channels + 15) / 16 * 16, px = channels + 5, cols = 6
            let row = (0..<(cols * px + 64)).map { i -> UInt8 in i % 5 == 0 ? (signed ? 0x80 : 0xFF) : i % 5 == 1 ? 0x7F : UInt8(truncatingIfNeeded: rng.next()) }
            var built: [[Int32]] = []
            for permute in [false, true] {
                var pairs = [Int32](repeating: -1, count: cols * ldw)
                DepthwiseConv.pairRow(columns: Array(0..<cols), cols: cols, input: row, pixelBytes: px, channels: channels, signed: signed,
                                      pairs: &pairs, ldw: ldw, permute: permute)
                built.append(pairs)
            }
            #expect(built[0] == built[1], "pair rows: \(channels) channels, signed \(signed)")
            #expect(!built[0].contains(-1))
        }
    }
    let model = try Zoo.make("mobilenetv2", seed: 1)
    let x = try engineTestSet.images.slice(0..<300)
    for bits in [8, 4] {
        let engine = try IntegerModel(model: model, policy: try Policy.uniform(model, bits: bits, activationBits: 8),
                                      calibration: try FashionMNIST.calibration().images)
        let a = try engine.run(x)
        #expect(agreement(a, try engine.dyadicSimulation.run(x).output, steps: engine.outputSteps).identical == 300)
        let same = agreement(a, try engine.simulation.run(x).output, steps: engine.outputSteps).same
        #expect(same >= 285, "W\(bits)A8: predictions as the fake-quant simulation on \(same)/300 (untrained weights: near ties)")
    }
}

/// `model` at W8A8 and W4A8 in the engine (calibrated on the calibration images): logits equal
/// to the dyadic simulation's on 300 of 300 test images, predictions the fake-quant twin's on ≥ 297,
/// and its QDQ export in ONNX Runtime within 1 point of the simulation's accuracy.
func expectEngineMatchesItsTwins(_ model: Model, name: String) throws {
    let data = try engineTestSet.slice(0..<300)
    for bits in [8, 4] {
        let engine = try IntegerModel(model: model, policy: try Policy.uniform(model, bits: bits, activationBits: 8),
                                      calibration: try FashionMNIST.calibration().images)
        let a = try engine.run(data.images)
        #expect(agreement(a, try engine.dyadicSimulation.run(data.images).output, steps: engine.outputSteps).identical == 300, "\(name) W\(bits)A8")
        #expect(agreement(a, try engine.simulation.run(data.images).output, steps: engine.outputSteps).same >= 297, "\(name) W\(bits)A8")
        let ort = try onnxRuntimeAccuracy(of: engine, on: data, name: "\(name)-\(bits)")
        #expect(abs(ort - (try engine.simulation.accuracy(on: data))) <= 0.01, "\(name) W\(bits)A8: ORT \(ort)")
    }
}

/// One image on two threads shares each layer (whole tiles of pixels where there are many, else
/// blocks of 32 columns), and runs reuse the workspaces of earlier ones: ResNet-20 (by tiles in
/// its first stage, by columns in its 7×7 one) and MobileNetV2 give, image by image on two
/// threads after other images ran, exactly the outputs of a fresh engine on one thread.
@Test func oneImageSharesItsLayersAndRunsReuseWorkspaces() throws {
    let calibration = try FashionMNIST.calibration().images, x = try engineTestSet.slice(0..<6).images
    for name in ["resnet20", "mobilenetv2"] {
        let model = try Zoo.make(name)
        func engine() throws -> IntegerModel {
            try IntegerModel(model: model, policy: try Policy.uniform(model, bits: 8, activationBits: 8), calibration: calibration)
        }
        let (shared, fresh) = (try engine(), try engine())
        _ = try shared.run(try x.slice(3..<6), threads: 2)
        for i in 0..<3 {
            let one = try x.slice(i..<(i + 1))
            #expect(try shared.run(one, threads: 2) == (try engine().run(one, threads: 1)), "\(name) image \(i)")
        }
        #expect(try shared.run(try x.slice(0..<3), threads: 1) == (try fresh.run(try x.slice(0..<3), threads: 1)), "\(name)")
    }
}

/// A classifier that ends in a Softmax or LogSoftmax runs in the engine, the head in Float32 on
/// its logits: opset 13's single Softmax, the pattern the importer makes of an older one (Shape,
/// Flatten, Softmax at axis 1, Reshape back) and a LogSoftmax, each at W8A8 and W4A8 with outputs
/// equal to the dyadic simulation's, predictions the fake-quant twin's and its QDQ export in ONNX
/// Runtime. The engine's output is the head applied to the headless model's engine logits; a
/// Softmax that a layer reads is still refused.
@Test func probabilityHeadsRunAfterTheEngine() throws {
    func model(_ head: (inout GraphBuilder, String) -> String) throws -> Model {
        var b = GraphBuilder(seed: 14)
        var h = b.relu(try b.conv(b.input, "conv1", in: 1, out: 8, kernel: 3, padding: 1))
        h = b.maxPool(h, kernel: 2)
        h = b.flatten(b.globalAveragePool(b.relu(try b.conv(h, "conv2", in: 8, out: 16, kernel: 3, padding: 1))))
        let output = head(&b, try b.linear(h, "fc", in: 16, out: 10))
        return try b.model(name: "head", output: output, inputShape: [1, 28, 28])
    }
    let plain = try model { _, y in y }
    let soft = try model { b, y in b.apply(.softmax(axis: -1), [y]) }
    let older = try model { b, y in
        let shape = b.apply(.shape(start: 0, end: nil), [y])
        let rows = b.apply(.softmax(axis: 1), [b.apply(.flatten(axis: 1), [y])])
        return b.apply(.reshape(shape: []), [rows, shape])
    }
    let log = try model { b, y in b.apply(.logSoftmax(axis: 1), [y]) }
    #expect(plain.probabilityHead == nil)
    #expect(soft.probabilityHead?.nodes.count == 1 && older.probabilityHead?.nodes.count == 4 && log.probabilityHead?.nodes.count == 1)
    for (m, name) in [(soft, "softmax"), (older, "softmax-opset11"), (log, "logsoftmax")] {
        #expect(m.probabilityHead?.logits == plain.output, "\(name)")
        try expectEngineMatchesItsTwins(m, name: name)
    }
    let calibration = try FashionMNIST.calibration().images, x = try engineTestSet.slice(0..<50).images
    let headless = try IntegerModel(model: plain, policy: try Policy.uniform(plain, bits: 8, activationBits: 8), calibration: calibration)
    let engine = try IntegerModel(model: older, policy: try Policy.uniform(older, bits: 8, activationBits: 8), calibration: calibration)
    let probabilities = try engine.run(x)
    #expect(probabilities == (try older.applyHead(older.probabilityHead!, to: try headless.run(x))))
    #expect(try probabilities.sum(axis: 1).scalars.allSatisfy { abs($0 - 1) < 1e-5 })
    // A Softmax in the middle of the network is not a head.
    var b = GraphBuilder(seed: 15)
    let mid = b.apply(.softmax(axis: 1), [try b.conv(b.input, "conv1", in: 1, out: 4, kernel: 3)])
    let out = try b.linear(b.flatten(b.globalAveragePool(try b.conv(mid, "conv2", in: 4, out: 4, kernel: 3))), "fc", in: 4, out: 10)
    let inner = try b.model(name: "inner-softmax", output: out, inputShape: [1, 28, 28])
    #expect(inner.probabilityHead == nil)
    #expect(throws: QuantizationError.self) {
        try IntegerModel(model: inner, policy: try Policy.uniform(inner, bits: 8, activationBits: 8), calibration: calibration)
    }
}

/// Average pooling in the engine (window averages of codes, rounded half to even): a small conv
/// net with a padded 3×3/2 pool that leaves the padding out of the count and a 2×2/2 pool that
/// counts it, at W8A8 and W4A8, gives the dyadic simulation's logits on every image and the
/// fake-quant simulation's predictions on nearly all, and its QDQ export runs in ONNX Runtime with
/// the simulation's accuracy; ceil mode is refused (average and max pooling).
@Test func averagePoolingRunsInTheEngine() throws {
    var b = GraphBuilder(seed: 11)
    var h = b.relu(try b.conv(b.input, "conv1", in: 1, out: 8, kernel: 3, padding: 1))
    h = b.averagePool(h, kernel: 3, stride: 2, pad: 1, countIncludePad: false)
    h = b.relu(try b.conv(h, "conv2", in: 8, out: 16, kernel: 3, padding: 1))
    h = b.averagePool(h, kernel: 2, stride: 2, pad: 1, countIncludePad: true)
    h = b.flatten(b.globalAveragePool(h))
    let out = try b.linear(h, "fc", in: 16, out: 10)
    let model = try b.model(name: "pools", output: out, inputShape: [1, 28, 28])
    try expectEngineMatchesItsTwins(model, name: "pools")
    var c = GraphBuilder(seed: 11)
    var g = c.relu(try c.conv(c.input, "conv1", in: 1, out: 4, kernel: 3))
    g = c.averagePool(g, kernel: 2, stride: 2, ceilMode: true)
    g = c.flatten(c.globalAveragePool(g))
    let logits = try c.linear(g, "fc", in: 4, out: 10)
    let ceil = try c.model(name: "ceil", output: logits, inputShape: [1, 28, 28])
    #expect(throws: QuantizationError.self) {
        try IntegerModel(model: ceil, policy: try Policy.uniform(ceil, bits: 8, activationBits: 8), calibration: try FashionMNIST.calibration().images)
    }
    // Max pooling in ceil mode too (the engine's pools are floor mode).
    var d = GraphBuilder(seed: 11)
    var k = d.relu(try d.conv(d.input, "conv1", in: 1, out: 4, kernel: 3))
    k = d.maxPool(k, kernel: 2, ceilMode: true)
    k = d.flatten(d.globalAveragePool(k))
    let scores = try d.linear(k, "fc", in: 4, out: 10)
    let ceilMax = try d.model(name: "ceil-max", output: scores, inputShape: [1, 28, 28])
    #expect(throws: QuantizationError.self) {
        try IntegerModel(model: ceilMax, policy: try Policy.uniform(ceilMax, bits: 8, activationBits: 8), calibration: try FashionMNIST.calibration().images)
    }
}

/// Channel concatenation (an Inception-style block: a 1×1 branch, a 3×3 branch and the block's
/// input itself joined, then a layer reading the join) runs in the engine at W8A8 and W4A8: each
/// input — sums after a ReLU, or codes at another point — requantized to the join's point. The
/// engine's logits equal the dyadic simulation's on every image, its predictions the fake-quant
/// twin's on ≥ 297 of 300, and the QDQ export runs in ONNX Runtime within 1 point of the
/// simulation's accuracy.
@Test func concatenationRunsInTheEngine() throws {
    var b = GraphBuilder(seed: 12)
    var h = b.relu(try b.conv(b.input, "stem", in: 1, out: 8, kernel: 3, padding: 1))
    h = b.maxPool(h, kernel: 2)
    let one = b.relu(try b.conv(h, "branch1", in: 8, out: 8, kernel: 1))
    let three = b.relu(try b.conv(h, "branch3", in: 8, out: 12, kernel: 3, padding: 1))
    var g = b.concat([one, three, h])
    g = b.relu(try b.conv(g, "mix", in: 28, out: 16, kernel: 3, padding: 1))
    g = b.flatten(b.globalAveragePool(g))
    let out = try b.linear(g, "fc", in: 16, out: 10)
    let model = try b.model(name: "inception", output: out, inputShape: [1, 28, 28])
    try expectEngineMatchesItsTwins(model, name: "concat")
}

/// Elementwise activations (HardSwish, Sigmoid, HardSigmoid, Tanh) run in the engine as tables
/// from input codes to output codes, at W8A8 and W4A8: logits equal to the dyadic simulation's on
/// every image, predictions the fake-quant twin's on ≥ 297 of 300, and the QDQ export in ONNX
/// Runtime within 1 point of the simulation's accuracy.
@Test func elementwiseActivationsRunAsTables() throws {
    var b = GraphBuilder(seed: 13)
    var h = b.pointwise(.hardSwish, try b.conv(b.input, "conv1", in: 1, out: 8, kernel: 3, padding: 1))
    h = b.pointwise(.sigmoid, try b.conv(h, "conv2", in: 8, out: 16, kernel: 3, padding: 1))
    // (Max pooling after the unsigned sigmoid: ONNX Runtime 1.32's QDQ propagation fails on a
    // signed DequantizeLinear before a MaxPool — microsoft/onnxruntime#25526.)
    h = b.maxPool(h, kernel: 2)
    h = b.pointwise(.hardSigmoid(alpha: 0.2, beta: 0.5), try b.conv(h, "conv3", in: 16, out: 16, kernel: 3, padding: 1))
    h = b.pointwise(.tanh, try b.conv(h, "conv4", in: 16, out: 16, kernel: 1))
    h = b.flatten(b.globalAveragePool(h))
    let out = try b.linear(h, "fc", in: 16, out: 10)
    let model = try b.model(name: "activations", output: out, inputShape: [1, 28, 28])
    try expectEngineMatchesItsTwins(model, name: "activations")
}
