import Testing
import Kernels

enum WeightForm: String, CaseIterable, Sendable { case int8, int8T, packed4, packed2, packed3 }

struct IGEMMCase: CustomStringConvertible, Sendable {
    var m: Int, n: Int, k: Int, signedA: Bool, form: WeightForm, accumulate: Bool, backend: IGEMM.Backend
    var description: String { "m\(m) n\(n) k\(k) sA\(signedA) \(form) acc\(accumulate) \(backend)" }
}

let igemmCases: [IGEMMCase] = {
    var r = TestRandom(seed: 11)
    var cases: [IGEMMCase] = []
    let backends: [IGEMM.Backend] = [.swift] + (IGEMM.hasVNNI ? [.vnni] : []) + (IGEMM.hasAVX2 ? [.avx2] : [])
    for backend in backends {
        for m in awkwardSizes {
            for n in [1, 7, 33, 65] {
                let k = awkwardSizes[r.int(0...(awkwardSizes.count - 1))] + r.int(0...3)
                cases.append(IGEMMCase(m: m, n: n, k: k, signedA: r.next() % 2 == 0,
                                       form: WeightForm.allCases[r.int(0...4)], accumulate: r.next() % 3 == 0,
                                       backend: backend))
            }
        }
        cases.append(IGEMMCase(m: 200, n: 70, k: 1100, signedA: false, form: .int8T, accumulate: false, backend: backend))
        cases.append(IGEMMCase(m: 197, n: 64, k: 600, signedA: true, form: .packed4, accumulate: true, backend: backend))
        // A short product walking K inside each task, and rows cut into equal parts per worker.
        cases.append(IGEMMCase(m: 40, n: 300, k: 1100, signedA: true, form: .int8T, accumulate: true, backend: backend))
        cases.append(IGEMMCase(m: 1000, n: 40, k: 150, signedA: false, form: .packed4, accumulate: false, backend: backend))
    }
    return cases
}()

/// Cases run one at a time: each sets the process-wide `IGEMM.backend`.
@Test(.serialized, arguments: igemmCases)
func igemmIsExact(_ t: IGEMMCase) {
    var r = TestRandom(seed: UInt64(t.m * 7919 + t.n * 31 + t.k))
    let lda = t.k + 1
    let a = r.bytes(t.m * lda, in: t.signedA ? -128...127 : 0...255)
    let bits: Int = switch t.form { case .packed4: 4; case .packed2: 2; case .packed3: 3; default: 8 }
    let half = 1 << (bits - 1)
    // Weight codes as a Cout × K matrix w[j][p].
    let w = r.bytes(t.n * t.k, in: -half...(half - 1))
    var storage: [UInt8]
    var rowBytes = 0
    switch t.form {
    case .int8: // k × n
        storage = [UInt8](repeating: 0, count: t.k * t.n)
        for j in 0..<t.n { for p in 0..<t.k { storage[p * t.n + j] = w[j * t.k + p] } }
    case .int8T:
        storage = w
    default:
        rowBytes = BitPacking.byteCount(codes: t.k, bits: bits) + 1
        storage = [UInt8](repeating: 0xA5, count: t.n * rowBytes)
        for j in 0..<t.n {
            let packed = BitPacking.pack(Array(w[(j * t.k)..<((j + 1) * t.k)]), bits: bits)
            for q in 0..<packed.count { storage[j * rowBytes + q] = packed[q] }
        }
    }
    let ldc = t.n + 3
    let c0 = (0..<(t.m * ldc)).map { _ in Int32(truncatingIfNeeded: r.int(-1000...1000)) }
    var c = c0, ref = c0
    storage.withUnsafeBufferPointer { s in
        let weights: IGEMM.Weights = switch t.form {
        case .int8: .int8(UnsafeRawPointer(s.baseAddress!).assumingMemoryBound(to: Int8.self), ld: t.n, transposed: false)
        case .int8T: .int8(UnsafeRawPointer(s.baseAddress!).assumingMemoryBound(to: Int8.self), ld: t.k, transposed: true)
        default: .packed(s.baseAddress!, bits: bits, rowBytes: rowBytes)
        }
        let saved = IGEMM.backend
        IGEMM.backend = t.backend
        defer { IGEMM.backend = saved }
        a.withUnsafeBufferPointer { ap in
            if t.signedA {
                let sa = UnsafeRawPointer(ap.baseAddress!).assumingMemoryBound(to: Int8.self)
                IGEMM.multiply(m: t.m, n: t.n, k: t.k, a: sa, lda: lda, b: weights, c: &c, ldc: ldc,
                               accumulate: t.accumulate, threads: 2)
            } else {
                IGEMM.multiply(m: t.m, n: t.n, k: t.k, a: ap.baseAddress!, lda: lda, b: weights, c: &c, ldc: ldc,
                               accumulate: t.accumulate, threads: 2)
            }
            IGEMM.reference(m: t.m, n: t.n, k: t.k, a: ap.baseAddress!, lda: lda, signedA: t.signedA,
                            b: weights, c: &ref, ldc: ldc, accumulate: t.accumulate)
        }
    }
    #expect(c == ref)
}

/// The direct convolution tile (every backend this CPU runs: plain Swift, VNNI, AVX2) against plain integer arithmetic: random
/// receptive fields and taps, 1…12 rows, 1…32 columns, signed input (flip), every output mode,
/// and residual branches as Int32 sums or unsigned/signed codes.
@Test func convTileIsExact() {
    var r = TestRandom(seed: 5)
    var foldedTrials = 0
    let backends: [IGEMM.Backend] = [.swift, .vnni, .avx2].filter { $0 == .swift || ($0.runs && $0 != .automatic) }
    for trial in 0..<120 {
        let rows = [1, 5, 12][trial % 3], cols = [3, 16, 20, 32][(trial / 3) % 4]
        let ntaps = r.int(1...9), gpp = r.int(1...4), flip = trial % 5 == 0
        let k = ntaps * gpp * 4, n = cols + 16 * r.int(0...1)
        let input = r.bytes(4096)
        let taps = (0..<ntaps).map { _ in Int64(r.int(0...200) * 4) }
        let starts = (0..<rows).map { _ in r.int(0...(4096 - 4 * gpp - 804)) }
        // 8-bit codes, or narrow ones (7, 5, 4, 2 bits) that the AVX2 tile multiplies as bytes.
        let half = [128, 64, 16, 8, 2][(trial / 12) % 5]
        let codes = (0..<(n * k)).map { _ in Int8(r.int(-half...(half - 1))) }
        let weights = IntegerWeights(codes: codes, n: n, k: k, widen: true)
        let narrow = IntegerWeights(codes: codes, n: n, k: k, widen: false)
        let m = max(1, -Int(codes.min()!), Int(codes.max()!) + 1)
        #expect((narrow.narrowSteps > 0) == (m <= 64) && narrow.narrowSteps * 510 * m <= 32_767)
        // The AVX2 backend runs twice where the codes are narrow: on Int16 weights and on bytes.
        let runs = backends.map { ($0, weights) } + (IGEMM.Backend.avx2.runs && narrow.narrowSteps > 0 ? [(.avx2, narrow)] : [])
        let mode: IntegerEpilogue.Mode = [.sums, .scaledSums, .codes][trial % 3]
        let residual: IntegerEpilogue.Residual = mode == .sums ? .none
            : [.none, .sums, .codes(signed: false, multiplier: 1_500_000_000, shift: 31), .codes(signed: true, multiplier: 1_200_000_000, shift: 30),
               .codes(signed: false, multiplier: 2_000_000_000, shift: 33), .rescaledSums(multiplier: 1_800_000_000, shift: 30),
               .rescaledSums(multiplier: 1_300_000_000, shift: 36)][(trial / 2) % 7]
        // Sums near both ends of Int32 in some trials (a bias there), shifts below 32 in others:
        // each form of the dyadic multiply at its edges.
        let bias = (0..<n).map { _ in Int32(trial % 7 == 6 ? [Int(Int32.max) - r.int(0...5000), Int(Int32.min) + r.int(0...5000)][r.int(0...1)] : r.int(-5000...5000)) }
        let mult = (0..<n).map { _ in Int32(r.int(1 << 30...(1 << 31) - 1)) }
        // (Shifts 31…33 all ≥ 31: the general form without saturation.)
        let shift = (0..<n).map { _ in Int32(trial % 4 == 3 ? (trial % 8 == 7 ? r.int(31...33) : r.int(24...33)) : r.int(32...40)) }
        // Codes clamped at the 8-bit range's ends or inside it (ReLU6's round(6/scale), say).
        let (lo, hi): (Int32, Int32) = mode == .codes ? [(0, 255), (-128, 127), (0, 200), (-100, 90), (7, 255)][(trial / 3) % 5] : (Int32.min, Int32.max)
        let e = IntegerEpilogue(bias: bias, multiplier: mult, shift: shift, lo: lo, hi: hi, mode: mode, residual: residual)
        // The same epilogue with the bias folded into the rounding terms where the sums' bound
        // (k products of a code and a weight) allows it.
        let folded = IntegerEpilogue(bias: bias, multiplier: mult, shift: shift, lo: lo, hi: hi, mode: mode, residual: residual)
        folded.foldBias(sumsWithin: Int64(k) * 255 * 128)
        if folded.biasFolded { foldedTrials += 1 }
        let resBytes = r.bytes(rows * n * 4)
        // The expected outputs, by plain arithmetic.
        func dyadic(_ y: Int64, _ m: Int32, _ s: Int32) -> Int64 { min(max((y * Int64(m) + (1 << (Int64(s) - 1))) >> Int64(s), Int64(Int32.min)), Int64(Int32.max)) }
        var expected = [Int64](repeating: 0, count: rows * cols)
        for i in 0..<rows {
            for j in 0..<cols {
                var sum: Int32 = 0
                for t in 0..<ntaps {
                    for c in 0..<(gpp * 4) {
                        let x = Int32(input[starts[i] + Int(taps[t]) + c] ^ (flip ? 0x80 : 0))
                        sum &+= x * Int32(codes[j * k + t * gpp * 4 + c])
                    }
                }
                let y = sum &+ bias[j]
                guard mode != .sums else { expected[i * cols + j] = Int64(y); continue }
                var q = dyadic(Int64(y), mult[j], shift[j])
                let rv: Int32? = switch residual {
                case .none: nil
                case .sums: resBytes.withUnsafeBytes { $0.load(fromByteOffset: (i * n + j) * 4, as: Int32.self) }
                case let .codes(signed, m, s):
                    Int32(dyadic(signed ? Int64(Int8(bitPattern: resBytes[i * n + j])) : Int64(resBytes[i * n + j]), m, s))
                case let .rescaledSums(m, s):
                    Int32(dyadic(Int64(resBytes.withUnsafeBytes { $0.load(fromByteOffset: (i * n + j) * 4, as: Int32.self) }), m, s))
                }
                if let rv { q = Int64(Int32(truncatingIfNeeded: q) &+ rv) }
                expected[i * cols + j] = min(max(q, Int64(lo)), Int64(hi))
            }
        }
        for (backend, weights, e) in runs.flatMap({ run in [e, folded].map { (run.0, run.1, $0) } }) {
            let elementBytes = mode == .codes ? 1 : 4
            var out = [UInt8](repeating: 0, count: rows * n * elementBytes)
            input.withUnsafeBufferPointer { ip in
                weights.data.withUnsafeBufferPointer { wp in
                    out.withUnsafeMutableBytes { op in
                        resBytes.withUnsafeBytes { rp in
                            let a = (0..<rows).map { UnsafePointer(ip.baseAddress! + starts[$0]) }
                            let o = (0..<rows).map { op.baseAddress! + $0 * n * elementBytes }
                            let rr = (0..<rows).map { rp.baseAddress! + $0 * n * residual.elementBytes }
                            var column = 0
                            while column < cols {
                                IGEMM.convTile(rows: rows, cols: min(32, cols - column), a: a, taps: taps, ntaps: ntaps, gpp: gpp,
                                               flip: flip ? 0x8080_8080 : 0, weights: weights, base: wp.baseAddress!, column: column,
                                               epilogue: e, out: o, res: rr, backend: backend)
                                column += 32
                            }
                        }
                    }
                }
            }
            var wrong = 0
            for i in 0..<rows {
                for j in 0..<cols {
                    let got: Int64 = mode == .codes
                        ? (lo < 0 ? Int64(Int8(bitPattern: out[i * n + j])) : Int64(out[i * n + j]))
                        : Int64(out.withUnsafeBytes { $0.load(fromByteOffset: (i * n + j) * 4, as: Int32.self) })
                    if got != expected[i * cols + j] { wrong += 1 }
                }
            }
            #expect(wrong == 0, "trial \(trial) \(backend) \(weights.widened.isEmpty ? "bytes" : "int16") folded \(e.biasFolded): rows \(rows) cols \(cols) taps \(ntaps) gpp \(gpp) flip \(flip) \(mode) \(residual)")
        }
    }
    // Folding happens in the trials of the short form with a bias far from Int32's ends.
    #expect(foldedTrials > 20)
}
