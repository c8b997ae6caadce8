import Foundation
import COpenBLAS
import Kernels
import Tensors

/// f32 GEMM against OpenBLAS's cblas_sgemm, then the integer and binary GEMMs against our f32.
struct GEMMBenchmarks {
    var quick: Bool
    var budget: Double

    /// M×K×N products: squares, the convolutions of ResNet-20 on Fashion-MNIST as GEMMs
    /// (Cout × Cin·9 × Hout·Wout for 8 images side by side), and the zoo MLP's first layer at
    /// batch 256 (images × 784 inputs × 256 outputs).
    var shapes: [(name: String, m: Int, k: Int, n: Int)] {
        let squares = (quick ? [256, 1024] : [256, 512, 1024, 2048]).map { (String($0), $0, $0, $0) }
        let products = [(16, 144, 784 * 8), (32, 288, 196 * 8), (64, 576, 49 * 8), (256, 784, 256)].map { (m, k, n) in
            ("\(m)x\(k)x\(n)", m, k, n)
        }
        return squares + products
    }

    /// The integer GEMMs timed on the same shapes beside our f32 rate.
    static let integerKinds = ["s8", "s8-swift", "u4", "u2"]

    /// cblas_sgemm's GFLOP/s on random M×K times K×N (best time within `budget`).
    static func openBLASRate(m: Int, k: Int, n: Int, threads: Int, budget: Double) -> Double {
        var r = BenchRandom(seed: 1)
        let a = r.floats(m * k), b = r.floats(k * n)
        var c = [Float](repeating: 0, count: m * n)
        openblas_set_num_threads(Int32(threads))
        let t = bestTime(budget: budget) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(n), 0, &c, Int32(n))
        }
        return 2.0 * Double(m) * Double(n) * Double(k) / t / 1e9
    }

    /// The same anchor in a child process whose environment has no OPENBLAS_* variables (this
    /// machine sets OPENBLAS_CORETYPE, which fixes OpenBLAS's kernel when the library loads):
    /// OpenBLAS's own choice of kernel for this CPU. nil when the child cannot run.
    func nativeOpenBLAS(m: Int, k: Int, n: Int, threads: Int) -> Double? {
        guard let r = childOutput(URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path,
                                  ["--openblas-sgemm", "\(m),\(k),\(n),\(threads)", "--budget", "\(budget)"],
                                  environment: ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("OPENBLAS_") }), r.ok else { return nil }
        return Double(r.output.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    func run(wanted: (String) -> Bool, emit: (BenchResult) -> Void) {
        var f32Rate: [String: Double] = [:]
        // A shape's f32 product is timed when its row, or an integer row it anchors, is wanted;
        // each shape draws its operands from its own seed, so a filter does not change them.
        func timed(_ s: String, _ t: Int) -> Bool {
            (["f32"] + Self.integerKinds).contains { wanted("gemm.\($0).\(s).t\(t)") }
        }
        func integerWanted(_ s: String) -> Bool {
            [1, 2].contains { t in Self.integerKinds.contains { wanted("gemm.\($0).\(s).t\(t)") } }
        }
        for (index, s) in shapes.enumerated() where [1, 2].contains(where: { timed(s.name, $0) }) {
            var r = BenchRandom(seed: 1 + UInt64(index))
            let a = r.floats(s.m * s.k), b = r.floats(s.k * s.n)
            var c = [Float](repeating: 0, count: s.m * s.n)
            let flops = 2.0 * Double(s.m) * Double(s.n) * Double(s.k)
            for t in [1, 2] {
                let name = "gemm.f32.\(s.name).t\(t)"
                guard timed(s.name, t) else { continue }
                let ours = bestTime(budget: budget) {
                    SGEMM.multiply(m: s.m, n: s.n, k: s.k, a: a, lda: s.k, b: b, ldb: s.n, c: &c, ldc: s.n, threads: t)
                }
                f32Rate["\(s.name).t\(t)"] = flops / ours / 1e9
                guard wanted(name) else { continue }
                emit(BenchResult(name, ours: flops / ours / 1e9, anchor: "openblas",
                                 anchorValue: Self.openBLASRate(m: s.m, k: s.k, n: s.n, threads: t, budget: budget), unit: "GFLOP/s"))
                if let native = nativeOpenBLAS(m: s.m, k: s.k, n: s.n, threads: t) {
                    emit(BenchResult(name, ours: flops / ours / 1e9, anchor: "openblas-native", anchorValue: native, unit: "GFLOP/s",
                                     note: "OpenBLAS with OPENBLAS_* unset: its own kernel choice for this CPU"))
                }
            }
        }
        // Integer GEMMs: ops = 2·MACs, beside our own f32 rate on the same shape. Convolutions
        // run as the integer engine will: activations (pixels × Cin·9, u8) times weights.
        for (index, shape) in shapes.enumerated() where integerWanted(shape.name) {
            var s = shape
            var r = BenchRandom(seed: 101 + UInt64(index))
            if s.name.contains("x") { (s.m, s.n) = (s.n, s.m) }
            let au = r.bytes(s.m * s.k)
            let w8 = r.bytes(s.n * s.k).map { Int8(truncatingIfNeeded: $0) }
            let w4 = BitPacking.pack(r.bytes(s.n * s.k).map { $0 & 0xF }, bits: 4)
            let w2 = BitPacking.pack(r.bytes(s.n * s.k).map { $0 & 0x3 }, bits: 2)
            var c = [Int32](repeating: 0, count: s.m * s.n)
            let ops = 2.0 * Double(s.m) * Double(s.n) * Double(s.k)
            for t in [1, 2] {
                guard let f32 = f32Rate["\(s.name).t\(t)"] else { continue }
                let variants: [(String, IGEMM.Backend, (UnsafePointer<Int8>, UnsafePointer<UInt8>, UnsafePointer<UInt8>) -> IGEMM.Weights)] = [
                    ("s8", .automatic, { p8, _, _ in .int8(p8, ld: s.k, transposed: true) }),
                    ("s8-swift", .swift, { p8, _, _ in .int8(p8, ld: s.k, transposed: true) }),
                    ("u4", .automatic, { _, p4, _ in .packed(p4, bits: 4, rowBytes: s.k / 2) }),
                    ("u2", .automatic, { _, _, p2 in .packed(p2, bits: 2, rowBytes: s.k / 4) }),
                ]
                for (kind, backend, weights) in variants {
                    let name = "gemm.\(kind).\(s.name).t\(t)"
                    guard wanted(name), !(quick && kind == "s8-swift") else { continue }
                    IGEMM.backend = backend
                    defer { IGEMM.backend = .automatic }
                    let time = w8.withUnsafeBufferPointer { p8 in
                        w4.withUnsafeBufferPointer { p4 in
                            w2.withUnsafeBufferPointer { p2 in
                                let wts = weights(p8.baseAddress!, p4.baseAddress!, p2.baseAddress!)
                                return bestTime(budget: budget) {
                                    IGEMM.multiply(m: s.m, n: s.n, k: s.k, a: au, lda: s.k, b: wts, c: &c,
                                                   ldc: s.n, threads: t)
                                }
                            }
                        }
                    }
                    emit(BenchResult(name, ours: ops / time / 1e9, anchor: "ours-f32", anchorValue: f32,
                                     unit: "GOP/s", note: "kernel \(IGEMM.activeBackend.rawValue)"))
                }
            }
        }
        // Batch-1 products (GEMV, 4096×4096): the int8 kernel beside OpenBLAS's sgemv on the same
        // shape, then 4- and 2-bit weights beside the int8 kernel (where reading the weights bounds
        // the time, fewer bits should buy it).
        let (gn, gk) = (4096, 4096)
        if [1, 2].contains(where: { t in ["s8", "u4", "u2"].contains { wanted("gemm.\($0).gemv4096.t\(t)") } }) {
            gemv(n: gn, k: gk, wanted: wanted, emit: emit)
        }
        binary(wanted: wanted, emit: emit)
    }

    /// Batch-1 products (n×k): int8 beside OpenBLAS's sgemv, 4 and 2 bits beside int8.
    func gemv(n gn: Int, k gk: Int, wanted: (String) -> Bool, emit: (BenchResult) -> Void) {
        var r = BenchRandom(seed: 2)
        let gx = r.bytes(gk)
        let gemvWeights = [8, 4, 2].map { bits -> GEMV.Weights in
            let lo = bits == 8 ? -128 : -(1 << (bits - 1)), span = UInt64(bits == 8 ? 256 : 1 << bits)
            return GEMV.Weights(codes: (0..<(gn * gk)).map { _ in Int8(lo + Int(r.next() % span)) }, n: gn, k: gk, bits: bits)
        }
        let fw = r.floats(gn * gk), fx = r.floats(gk)
        var fy = [Float](repeating: 0, count: gn)
        var gy = [Int32](repeating: 0, count: gn)
        let gops = 2.0 * Double(gn) * Double(gk)
        for t in [1, 2] {
            var s8Rate = 0.0
            for w in gemvWeights {
                let kind = w.bits == 8 ? "s8" : "u\(w.bits)"
                let name = "gemm.\(kind).gemv4096.t\(t)"
                guard wanted(name) || (w.bits == 8 && [4, 2].contains { wanted("gemm.u\($0).gemv4096.t\(t)") }) else { continue }
                let ours = gx.withUnsafeBufferPointer { xp in
                    gy.withUnsafeMutableBufferPointer { yp in bestTime(budget: budget) { GEMV.multiply(w, x: xp.baseAddress!, y: yp.baseAddress!, threads: t) } }
                }
                if w.bits == 8 {
                    s8Rate = gops / ours / 1e9
                    guard wanted(name) else { continue }
                    openblas_set_num_threads(Int32(t))
                    let theirs = bestTime(budget: budget) {
                        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(gn), Int32(gk), 1, fw, Int32(gk), fx, 1, 0, &fy, 1)
                    }
                    emit(BenchResult(name, ours: s8Rate, anchor: "openblas-sgemv", anchorValue: gops / theirs / 1e9, unit: "GOP/s",
                                     note: "kernel \(IGEMM.activeBackend.rawValue)"))
                } else {
                    emit(BenchResult(name, ours: gops / ours / 1e9, anchor: "ours-s8", anchorValue: s8Rate, unit: "GOP/s",
                                     note: "kernel \(IGEMM.activeBackend.rawValue)"))
                }
            }
        }
    }

    /// Binary GEMM: multiply-adds per second against f32 multiply-adds per second.
    func binary(wanted: (String) -> Bool, emit: (BenchResult) -> Void) {
        var r = BenchRandom(seed: 3)
        for (mn, k) in (quick ? [(256, 1024)] : [(256, 1024), (512, 4096), (1024, 1024)]) {
            guard [1, 2].contains(where: { wanted("gemm.bin.\(mn)x\(k)x\(mn).t\($0)") }) else { continue }
            let wds = BinaryGEMM.words(k)
            let a = (0..<(mn * wds)).map { _ in r.next() }, b = (0..<(mn * wds)).map { _ in r.next() }
            var c = [Int32](repeating: 0, count: mn * mn)
            let fa = r.floats(mn * k), fb = r.floats(k * mn)
            var fc = [Float](repeating: 0, count: mn * mn)
            let macs = Double(mn) * Double(mn) * Double(k)
            for t in [1, 2] {
                let name = "gemm.bin.\(mn)x\(k)x\(mn).t\(t)"
                guard wanted(name) else { continue }
                let ours = bestTime(budget: budget) {
                    BinaryGEMM.multiply(m: mn, n: mn, k: k, a: a, b: b, c: &c, ldc: mn, threads: t)
                }
                let f32 = bestTime(budget: budget) {
                    SGEMM.multiply(m: mn, n: mn, k: k, a: fa, lda: k, b: fb, ldb: mn, c: &fc, ldc: mn, threads: t)
                }
                emit(BenchResult(name, ours: macs / ours / 1e9, anchor: "ours-f32", anchorValue: macs / f32 / 1e9,
                                 unit: "GMAC/s"))
            }
        }
    }
}

/// Seeded benchmark inputs, from the library's own generator.
struct BenchRandom {
    var rng: RandomGenerator
    init(seed: UInt64) { rng = RandomGenerator(seed: seed) }
    mutating func next() -> UInt64 { rng.next() }
    mutating func floats(_ n: Int) -> [Float] { (0..<n).map { _ in rng.uniform() * 2 - 1 } }
    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
}
