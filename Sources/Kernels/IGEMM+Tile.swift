import CKernels

/// Weights of one integer layer laid out once for the tile kernel: K padded to groups of 4,
/// columns (output channels) in blocks of 16, b[block][group][16 columns][4 codes].
public struct IntegerWeights: @unchecked Sendable {
    public let k: Int, n: Int
    public var groups: Int { (k + 3) / 4 }
    public var blocks: Int { (n + 15) / 16 }
    public let data: [Int8]
    /// Σ_p B[p, j]: what a +128 shift of the activations adds to column j, divided by 128.
    public let columnSums: [Int32]

    /// From codes row-major n × k (row j: the k codes of output channel j).
    public init(codes: [Int8], n: Int, k: Int) {
        precondition(codes.count == n * k)
        self.k = k; self.n = n
        let groups = (k + 3) / 4, blocks = (n + 15) / 16
        var data = [Int8](repeating: 0, count: blocks * groups * 64)
        var sums = [Int32](repeating: 0, count: n)
        for j in 0..<n {
            let (block, column) = (j / 16, j % 16)
            for p in 0..<k {
                let c = codes[j * k + p]
                data[((block * groups + p / 4) * 16 + column) * 4 + p % 4] = c
                sums[j] &+= Int32(c)
            }
        }
        self.data = data
        columnSums = sums
    }
}

/// What a tile does with its sums, column by column (see `mpq_epilogue`): bias, then raw Int32
/// (`.sums`), or dyadic requantization y·mult >> shift rounded half up and clamped to lo…hi,
/// stored as Int32 (`.scaledSums`) or as bytes (`.codes`). Holds its arrays at fixed addresses
/// for the kernel.
public final class IntegerEpilogue: @unchecked Sendable {
    public enum Mode: Int32, Sendable { case sums = 0, scaledSums = 1, codes = 2 }
    public let mode: Mode
    public let bias: [Int32], multiplier: [Int32], shift: [Int32]
    public let lo: Int32, hi: Int32
    let raw: UnsafeMutablePointer<mpq_epilogue>
    let storage: UnsafeMutablePointer<Int32>

    /// One entry per column; `multiplier` and `shift` are ignored for `.sums`.
    public init(bias: [Int32], multiplier: [Int32], shift: [Int32], lo: Int32, hi: Int32, mode: Mode) {
        precondition(multiplier.count == bias.count && shift.count == bias.count)
        // Padded to whole blocks of 16 so the kernel's masked loads stay in bounds.
        let padded = (bias.count + 15) / 16 * 16
        self.bias = bias; self.multiplier = multiplier; self.shift = shift
        self.lo = lo; self.hi = hi; self.mode = mode
        storage = .allocate(capacity: 3 * padded)
        storage.initialize(repeating: 0, count: 3 * padded)
        for (j, v) in bias.enumerated() { storage[j] = v }
        for (j, v) in multiplier.enumerated() { storage[padded + j] = v }
        for j in 0..<padded { storage[2 * padded + j] = j < shift.count ? max(shift[j], 1) : 1 }
        raw = .allocate(capacity: 1)
        raw.initialize(to: mpq_epilogue(bias: storage, mult: storage + padded, shift: storage + 2 * padded, lo: lo, hi: hi, mode: mode.rawValue))
    }

    deinit { storage.deallocate(); raw.deallocate() }
}

extension IGEMM {
    /// Rows of the A sliver a tile takes (a[(g·12 + i)·4 + t]).
    public static let tileRows = 12

    /// One tile: `rows` (≤ 12) rows of the sliver `a` times columns `column..<column+cols` of
    /// the weights (`column` a multiple of 16, cols ≤ 32), through the epilogue, into `out`
    /// (row i at out + i·ldo elements of the mode's type: Int32, or bytes for `.codes`).
    @inline(__always)
    public static func tile(rows: Int, a: UnsafePointer<UInt8>, weights: UnsafePointer<Int8>, groups: Int, column: Int, cols: Int,
                            epilogue e: IntegerEpilogue, out: UnsafeMutableRawPointer, ldo: Int) {
        let nb = cols > 16 ? 2 : 1
        let b0 = weights + column / 16 * groups * 64
        if activeBackend == .vnni {
            mpq_igemm_vnni_tile(Int64(rows), Int64(cols), Int64(nb), Int64(groups), a, b0, b0 + groups * 64, e.raw, Int64(column), out, Int64(ldo))
        } else {
            tileSwift(rows: rows, a: a, b: b0, groups: groups, cols: cols, e: e.raw.pointee, column: column, out: out, ldo: ldo)
        }
    }

    /// The portable tile, and the oracle of the VNNI one: the same sums and epilogue in plain
    /// integer arithmetic.
    static func tileSwift(rows: Int, a: UnsafePointer<UInt8>, b: UnsafePointer<Int8>, groups: Int, cols: Int,
                          e: mpq_epilogue, column: Int, out: UnsafeMutableRawPointer, ldo: Int) {
        for i in 0..<rows {
            for j in 0..<cols {
                let block = b + (j / 16) * groups * 64
                var s: Int32 = 0
                for g in 0..<groups {
                    for t in 0..<4 {
                        s &+= Int32(a[(g * tileRows + i) * 4 + t]) * Int32(block[(g * 16 + j % 16) * 4 + t])
                    }
                }
                let y = s &+ e.bias[column + j]
                if e.mode == 0 {
                    out.storeBytes(of: y, toByteOffset: (i * ldo + j) * 4, as: Int32.self)
                    continue
                }
                let shift = Int64(e.shift[column + j])
                let q = min(max((Int64(y) * Int64(e.mult[column + j]) + (1 << (shift - 1))) >> shift, Int64(e.lo)), Int64(e.hi))
                if e.mode == 1 {
                    out.storeBytes(of: Int32(q), toByteOffset: (i * ldo + j) * 4, as: Int32.self)
                } else {
                    out.storeBytes(of: UInt8(truncatingIfNeeded: q), toByteOffset: i * ldo + j, as: UInt8.self)
                }
            }
        }
    }
}
