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
    let backends: [IGEMM.Backend] = IGEMM.hasVNNI ? [.swift, .vnni] : [.swift]
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
