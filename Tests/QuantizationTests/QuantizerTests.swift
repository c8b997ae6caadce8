import Foundation
import Testing
import TestSupport
import Network
import Quantization
import Tensors

func randomWeights(_ shape: [Int], seed: UInt64) throws -> Tensor {
    var rng = RandomGenerator(seed: seed)
    return try Tensor.random(shape, .normal(mean: 0.05, std: 0.3), using: &rng)
}

/// With its defaults the configurable quantizer is the reference one, bit for bit.
@Test func defaultsAreTheReferenceQuantizer() throws {
    let w = try randomWeights([8, 3, 3, 3], seed: 1)
    for bits in 2...8 {
        #expect(try Quantizer(bits: bits).quantize(w).dequantized == WeightQuantizer.quantize(w, bits: bits, granularity: .perChannel))
        #expect(try Quantizer(bits: bits, slicing: .tensor).quantize(w).dequantized == WeightQuantizer.quantize(w, bits: bits, granularity: .perTensor))
    }
}

@Test func schemesKeepTheirPromises() throws {
    let w = try randomWeights([4, 64], seed: 2)
    // Asymmetric: zero is exact, the error inside the range is at most half a step.
    let a = try Quantizer(bits: 3, scheme: .asymmetric).quantize(w)
    for c in 0..<4 {
        let row = Array(w.scalars[(c * 64)..<((c + 1) * 64)]), q = Array(a.dequantized.scalars[(c * 64)..<((c + 1) * 64)])
        #expect(zip(row, q).allSatisfy { abs($0 - $1) <= a.scales[c] / 2 + 1e-6 })
        #expect((0...7).contains(a.zeroPoints[c]))
    }
    let z = try Quantizer(bits: 4, scheme: .asymmetric, slicing: .tensor).quantize(Tensor([0, 0.3, -0.2]))
    #expect(z.dequantized.scalars[0] == 0)
    // Full-range symmetric 8-bit: step 2m/255, codes within −128…127.
    let f = try Quantizer(bits: 8, scheme: .symmetricFull, slicing: .tensor).quantize(w)
    let m = w.scalars.map(abs).max()!
    #expect(abs(f.scales[0] - 2 * m / 255) < 1e-7)
    #expect(f.dequantized.scalars.allSatisfy { ($0 / f.scales[0]).rounded() >= -128 && ($0 / f.scales[0]).rounded() <= 127 })
    // Ternary: three values per channel.
    let t = try Quantizer(bits: 2, scheme: .ternary).quantize(w)
    for c in 0..<4 { #expect(Set(t.dequantized.scalars[(c * 64)..<((c + 1) * 64)].map { abs($0) }).count <= 2) }
    // Groups: one scale per 16 weights.
    #expect(try Quantizer(bits: 4, slicing: .group(16)).quantize(w).scales.count == 16)
    #expect(throws: QuantizationError.self) { try Quantizer(bits: 4, slicing: .group(10)).quantize(w) }
    #expect(throws: QuantizationError.self) { try Quantizer(bits: 3, scheme: .ternary).quantize(w) }
    #expect(throws: QuantizationError.self) { try Quantizer(bits: 4).quantize(Tensor([1, .nan])) }
}

@Test func clippingAndRounding() throws {
    let w = try randomWeights([1, 4096], seed: 3)
    func error(_ q: Quantizer) throws -> Float {
        let r = try q.quantize(w).dequantized
        return zip(r.scalars, w.scalars).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
    }
    // The MSE search includes max clipping, so it is never worse; at 3 bits it is better.
    #expect(try error(Quantizer(bits: 3, clipping: .mse)) < error(Quantizer(bits: 3)))
    #expect(try error(Quantizer(bits: 3, clipping: .percentile(99))) < error(Quantizer(bits: 3)))
    // Stochastic rounding: seeded, and unbiased — the mean over seeds approaches x.
    let x = Tensor([0.13, -0.41, 0.77, 1.0])
    var mean = [Float](repeating: 0, count: 4)
    for seed in 0..<2000 {
        let q = try Quantizer(bits: 3, slicing: .tensor, rounding: .stochastic(seed: UInt64(seed))).quantize(x).dequantized
        for i in 0..<4 { mean[i] += q.scalars[i] / 2000 }
    }
    #expect(zip(mean, x.scalars).allSatisfy { abs($0 - $1) < 0.01 })
    let once = try Quantizer(bits: 3, rounding: .stochastic(seed: 5)).quantize(w).dequantized
    #expect(try Quantizer(bits: 3, rounding: .stochastic(seed: 5)).quantize(w).dequantized == once)
    // Half away from zero differs from half to even only at ties: 0.5 and 2.5 steps.
    let ties = Tensor([0.5, 2.5, 3])   // max 3 at 3 bits: s = 1
    #expect(try Quantizer(bits: 3, slicing: .tensor, rounding: .nearestAway).quantize(ties).dequantized.scalars == [1, 3, 3])
    #expect(try Quantizer(bits: 3, slicing: .tensor).quantize(ties).dequantized.scalars == [0, 2, 3])
}

/// Packed tensors: codes at their bits, exact bytes, the same values after dequantizing and
/// after a save/load round trip; damaged files are refused with the byte offset.
@Test func packedTensorsRoundTrip() throws {
    let w = try randomWeights([16, 8, 3, 3], seed: 9)
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-packed-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    for (bits, scheme) in [(8, Quantizer.Scheme.symmetric), (3, .symmetric), (4, .symmetricFull), (3, .asymmetric), (1, .binary), (2, .ternary)] {
        let q = Quantizer(bits: bits, scheme: scheme)
        let p = try PackedTensor(w, quantizer: q)
        #expect(p.dequantize() == (try q.quantize(w).dequantized), "\(scheme) \(bits)")
        #expect(p.bytes.count == (w.count * bits + 7) / 8)
        #expect(p.byteCount == p.bytes.count + 4 * 16 + (scheme == .asymmetric ? 16 : 0))
        let path = dir.appendingPathComponent("w\(bits)\(scheme.rawValue).mpqt").path
        try p.save(to: path)
        #expect(try PackedTensor.load(path) == p)
        var bytes = try FileIO.read(path)
        bytes.removeLast()
        try FileIO.writeAtomically(bytes, to: path)
        #expect(throws: QuantizationError.self) { try PackedTensor.load(path) }
    }
    let bad = dir.appendingPathComponent("bad.mpqt").path
    try FileIO.writeAtomically(Array("nope".utf8), to: bad)
    #expect(throws: QuantizationError.self) { try PackedTensor.load(bad) }
    #expect(throws: QuantizationError.self) { try PackedTensor(w, quantizer: Quantizer(bits: 3, scheme: .gaussian)) }
}

/// EdMIPS' Gaussian weights take 2^b mid-rise levels; HWGQ clamps and rounds to its steps.
@Test func gaussianAndHWGQ() throws {
    let w = try randomWeights([2, 500], seed: 4)
    let g = try Quantizer(bits: 2, scheme: .gaussian).quantize(w)
    for c in 0..<2 { #expect(Set(g.dequantized.scalars[(c * 500)..<((c + 1) * 500)]).count <= 4) }
    let h = try Quantizer.hwgq(Tensor([-1, 0.3, 0.6, 5]), bits: 2)
    #expect(zip(h.scalars, [0, 0.538, 0.538, 1.614] as [Float]).allSatisfy { abs($0 - $1) < 1e-5 })
    #expect(throws: QuantizationError.self) { try Quantizer.hwgq(Tensor([1]), bits: 5) }
}

/// LSQ's partials on values worked by hand: s = 0.5, range −3…3. x = 0.6 → v = 1.2 (inside:
/// ∂x̂/∂x = 1, ∂x̂/∂s = round(1.2) − 1.2 = −0.2); x = 2.0 → v = 4 (outside: 0 and qmax = 3).
@Test func learnedQuantizerGradients() throws {
    let node = Node(name: "q", op: .learnedQuantize(qmin: -3, qmax: 3), inputs: ["x", "s"], outputs: ["y"])
    let m = try Model(name: "lsq", nodes: [node], input: "x", output: "y", inputShape: [2],
                      parameters: [("s", Tensor([0.5]))], buffers: [])
    let x = try Tensor(shape: [1, 2], scalars: [0.6, 2.0])
    let (y, trace) = try m.run(x, keepTrace: true)
    #expect(y.scalars == [0.5, 1.5])
    let g = try m.gradients(trace!, outputGradient: Tensor(shape: [1, 2], scalars: [1, 1]), inputGradient: true)
    #expect(g["x"]!.scalars == [1, 0])
    // g = 1/√(n·qmax) with n = 2 elements sharing the step.
    #expect(abs(g["s"]!.scalars[0] - (-0.2 + 3) / (2 * 3 as Float).squareRoot()) < 1e-5)
}

/// Quantization-aware training recovers what post-training quantization loses: the CNN at 2-bit
/// weights (uniform per channel: 21.6%) trained one epoch with LSQ steps.
@Test func lsqTrainingRecoversTwoBitWeights() throws {
    let model = try Zoo.make("cnn")
    try model.loadStateDict(path: "\(referenceDirectory)/fmnist_cnn.npz")
    let q = try model.learnedQuantization(weightBits: 2)
    #expect(q.layers.map(\.name) == model.layers.map(\.name))
    let train = try FashionMNIST.load(.train)
    var options = TrainingOptions()
    options.epochs = 1; options.schedule = .oneCycle(peak: 0.01); options.flip = false
    _ = try q.train(on: train, options: options)
    let acc = try q.accuracy(on: try FashionMNIST.load(.test))
    print("LSQ W2 CNN after one epoch: \(acc)")
    #expect(acc > 0.85)
}

/// HMQ's power-of-two thresholds: a worked fixture, power-of-two steps, and the MSE choice no
/// worse than the largest threshold.
@Test func powerOfTwoThresholds() throws {
    let x = Tensor(checkedShape: [4], scalars: [0.3, -0.2, 0.05, 0.6])
    // max|x| = 0.6 → T_max = 1, Δ = 1/4 at 3 bits: 1.2 → 1, −0.8 → −1, 0.2 → 0, 2.4 → 2.
    let r = try Quantizer(bits: 3, scheme: .powerOfTwo, slicing: .tensor).quantize(x)
    #expect(r.dequantized.scalars == [0.25, -0.25, 0, 0.5])
    #expect(r.scales == [0.25])
    #expect(Quantizer.powerOfTwoThresholds([0.5, -0.25]) == [0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625])
    let w = try randomWeights([8, 64], seed: 3)
    for bits in 2...8 {
        let top = try Quantizer(bits: bits, scheme: .powerOfTwo).quantize(w)
        let best = try Quantizer(bits: bits, scheme: .powerOfTwo, clipping: .mse).quantize(w)
        for s in best.scales where s > 0 { #expect(Float(sign: .plus, exponent: s.exponent, significand: 1) == s) }
        func error(_ y: Tensor) -> Float { zip(y.scalars, w.scalars).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } }
        #expect(error(best.dequantized) <= error(top.dequantized))
    }
    #expect(throws: QuantizationError.self) { try Quantizer(bits: 1, scheme: .powerOfTwo).quantize(w) }
}
