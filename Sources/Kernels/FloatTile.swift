import CKernels

/// A float convolution or linear layer laid out once for the compiled float plan's tile
/// kernel: columns (output channels) in blocks of 16, each block's weights tap by tap and
/// input channel by input channel, `data[((block·taps + t)·cin + ci)·16 + j]`; the bias padded
/// with zeros to whole blocks (and one block more, which the kernel's second vector may read).
public struct FloatTileWeights: @unchecked Sendable {
    public let taps: Int, cin: Int, n: Int
    public var blocks: Int { (n + 15) / 16 }
    /// Floats from one block of 16 columns to the next.
    public var blockStride: Int { taps * cin * 16 }
    public let data: [Float]
    public let bias: [Float]

    /// `weight(j, t, ci)` is output channel j's weight on input channel ci at tap t.
    public init(n: Int, taps: Int, cin: Int, bias: [Float]?, weight: (Int, Int, Int) -> Float) {
        precondition(n > 0 && taps > 0 && cin > 0 && (bias?.count ?? n) == n)
        self.n = n; self.taps = taps; self.cin = cin
        let blocks = (n + 15) / 16
        var data = [Float](repeating: 0, count: blocks * taps * cin * 16)
        for j in 0..<n {
            let (block, column) = (j / 16, j % 16)
            for t in 0..<taps {
                for ci in 0..<cin { data[((block * taps + t) * cin + ci) * 16 + column] = weight(j, t, ci) }
            }
        }
        self.data = data
        var padded = [Float](repeating: 0, count: (blocks + 1) * 16)
        for (j, b) in (bias ?? []).enumerated() { padded[j] = b }
        self.bias = padded
    }
}

/// The float plan's kernels: a tile of up to 12 output pixels × 32 output channels (each
/// pixel's receptive field read in place through a pointer and the layer's tap offsets, the
/// bias, a residual branch and a clamp in the epilogue), and a depthwise convolution over
/// channels-last pixels. AVX-512 (CKernels/conv_f32.c) where the CPU has it, AVX2 + FMA
/// (conv_f32_avx2.c) where it has that; the plain loops below otherwise, and as the oracle the
/// tests hold the fast ones to.
public enum FloatTile {
    public static let rows = 12, columns = 32
    /// Which kernels run: the vector ones of an instruction set, or the plain loops.
    public enum ISA: Sendable, CaseIterable {
        case avx512, avx2, plain
        /// Whether this CPU executes the kernels.
        public var runs: Bool {
            switch self {
            case .avx512: mpq_cpu_has_avx512f() == 1
            case .avx2: mpq_cpu_has_avx2_fma() == 1
            case .plain: true
            }
        }
    }
    /// The fastest kernels this CPU runs.
    public static let best: ISA = ISA.allCases.first { $0.runs }!
    /// Whether vector kernels run (the plain loops otherwise).
    public static let vectorized = best != .plain

    /// Output pixels `0..<rows` (≤ 12) × columns `column..<column + cols` (cols ≤ 32, column a
    /// multiple of 16): out[i][column + j] = clamp(bias + Σ_t Σ_ci a[i][taps[t] + ci]·w + res[i][column + j]).
    @inline(__always)
    public static func run(rows: Int, cols: Int, a: UnsafePointer<UnsafePointer<Float>>, taps: UnsafePointer<Int64>,
                           weights: FloatTileWeights, packed: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                           lo: Float, hi: Float, column: Int, out: UnsafePointer<UnsafeMutablePointer<Float>>,
                           res: UnsafePointer<UnsafePointer<Float>>?, isa: ISA = best) {
        precondition(rows >= 1 && rows <= Self.rows && cols >= 1 && cols <= Self.columns && column % 16 == 0)
        let b = packed + column / 16 * weights.blockStride
        if isa != .plain {
            let tile = isa == .avx512 ? mpq_conv_f32 : mpq_conv_f32_avx2
            a.withMemoryRebound(to: Optional<UnsafePointer<Float>>.self, capacity: rows) { ap in
                out.withMemoryRebound(to: Optional<UnsafeMutablePointer<Float>>.self, capacity: rows) { op in
                    if let res {
                        res.withMemoryRebound(to: Optional<UnsafePointer<Float>>.self, capacity: rows) { rp in
                            tile(Int64(rows), Int64(cols), ap, taps, Int64(weights.taps), Int64(weights.cin), b,
                                 Int64(weights.blockStride), bias, lo, hi, Int64(column), op, rp)
                        }
                    } else {
                        tile(Int64(rows), Int64(cols), ap, taps, Int64(weights.taps), Int64(weights.cin), b,
                             Int64(weights.blockStride), bias, lo, hi, Int64(column), op, nil)
                    }
                }
            }
            return
        }
        reference(rows: rows, cols: cols, a: a, taps: taps, weights: weights, block: b, bias: bias, lo: lo, hi: hi, column: column, out: out, res: res)
    }

    /// The widths (floats between one pixel's receptive field and the next) the vector `runLine` takes.
    public static let rowSteps: Set<Int> = [1, 2, 3, 6, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, 2048]

    /// `count` output pixels along a line: pixel i's receptive field starts at a + i·step, its
    /// outputs at out + i·outStep (+ column), its residual at res + i·resStep. Whole tiles of 12
    /// address their rows from one register (`step` must be in `rowSteps`), the last few take a
    /// tile of just that many rows. Returns false, doing nothing, when the kernels are vector
    /// ones and `step` is not in `rowSteps`; the plain loop takes any step.
    @inline(__always)
    public static func runLine(count: Int, cols: Int, a: UnsafePointer<Float>, step: Int, taps: UnsafePointer<Int64>,
                               weights: FloatTileWeights, packed: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                               lo: Float, hi: Float, column: Int, out: UnsafeMutablePointer<Float>, outStep: Int,
                               res: UnsafePointer<Float>?, resStep: Int, isa: ISA = best) -> Bool {
        precondition(count >= 0 && cols >= 1 && cols <= Self.columns && column % 16 == 0)
        let b = packed + column / 16 * weights.blockStride
        if isa != .plain {
            let line = isa == .avx512 ? mpq_conv_f32_line : mpq_conv_f32_line_avx2
            return line(Int64(count), Int64(cols), a, Int64(step), out, Int64(outStep), res, Int64(resStep), taps, Int64(weights.taps),
                        Int64(weights.cin), b, Int64(weights.blockStride), bias, lo, hi, Int64(column)) == 1
        }
        for first in stride(from: 0, to: count, by: Self.rows) {
            let n = min(Self.rows, count - first)
            let ap = (first..<first + n).map { a + $0 * step }, op = (first..<first + n).map { out + $0 * outStep }
            let rp = res.map { r in (first..<first + n).map { r + $0 * resStep } }
            reference(rows: n, cols: cols, a: ap, taps: taps, weights: weights, block: b, bias: bias, lo: lo, hi: hi,
                      column: column, out: op, res: rp)
        }
        return true
    }

    /// Columns one `runRow` call covers.
    public static let rowColumns = 128

    /// One output pixel × up to 128 columns from `column` (a multiple of 16): eight vectors of
    /// sums in flight, where a one-row tile has two (each multiply-add waits on the last).
    public static func runRow(cols: Int, a: UnsafePointer<Float>, taps: UnsafePointer<Int64>, weights: FloatTileWeights,
                              packed: UnsafePointer<Float>, bias: UnsafePointer<Float>, lo: Float, hi: Float, column: Int,
                              out: UnsafeMutablePointer<Float>, res: UnsafePointer<Float>?, isa: ISA = best) {
        precondition(cols >= 1 && cols <= Self.rowColumns && column % 16 == 0)
        let b = packed + column / 16 * weights.blockStride
        if isa != .plain {
            (isa == .avx512 ? mpq_conv_f32_row : mpq_conv_f32_row_avx2)(Int64(cols), a, taps, Int64(weights.taps), Int64(weights.cin), b, Int64(weights.blockStride),
                             bias, lo, hi, Int64(column), out, res)
            return
        }
        var (ap, op) = (a, out)
        withUnsafePointer(to: &ap) { ap in
            withUnsafePointer(to: &op) { op in
                if var rp = res {
                    withUnsafePointer(to: &rp) { rp in
                        reference(rows: 1, cols: cols, a: ap, taps: taps, weights: weights, block: b, bias: bias, lo: lo, hi: hi,
                                  column: column, out: op, res: rp)
                    }
                } else {
                    reference(rows: 1, cols: cols, a: ap, taps: taps, weights: weights, block: b, bias: bias, lo: lo, hi: hi,
                              column: column, out: op, res: nil)
                }
            }
        }
    }

    /// The plain tile: the same sums in the same order per output (bias first, then tap by tap
    /// and channel by channel, one fused multiply-add each), then residual and clamp.
    static func reference(rows: Int, cols: Int, a: UnsafePointer<UnsafePointer<Float>>, taps: UnsafePointer<Int64>,
                          weights: FloatTileWeights, block b: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                          lo: Float, hi: Float, column: Int, out: UnsafePointer<UnsafeMutablePointer<Float>>,
                          res: UnsafePointer<UnsafePointer<Float>>?) {
        for i in 0..<rows {
            for j in 0..<cols {
                let w = b + (j / 16) * weights.blockStride + j % 16
                var s = bias[column + j]
                for t in 0..<weights.taps {
                    for ci in 0..<weights.cin { s = s.addingProduct(a[i][Int(taps[t]) + ci], w[(t * weights.cin + ci) * 16]) }
                }
                if let res { s += res[i][column + j] }
                out[i][column + j] = Swift.min(Swift.max(s, lo), hi)
            }
        }
    }

    /// Depthwise: out[p][c] = clamp(bias[c] + Σ_t a[p][taps[t] + c]·w[t·ldw + c]) for each of
    /// `pixels` pixels and c < channels.
    public static func depthwise(pixels: Int, a: UnsafePointer<UnsafePointer<Float>>, out: UnsafePointer<UnsafeMutablePointer<Float>>,
                                 taps: UnsafePointer<Int64>, ntaps: Int, weights w: UnsafePointer<Float>, ldw: Int, channels: Int,
                                 bias: UnsafePointer<Float>, lo: Float, hi: Float, isa: ISA = best) {
        if isa != .plain {
            let kernel = isa == .avx512 ? mpq_depthwise_f32 : mpq_depthwise_f32_avx2
            a.withMemoryRebound(to: Optional<UnsafePointer<Float>>.self, capacity: pixels) { ap in
                out.withMemoryRebound(to: Optional<UnsafeMutablePointer<Float>>.self, capacity: pixels) { op in
                    kernel(Int64(pixels), ap, op, taps, Int64(ntaps), w, Int64(ldw), Int64(channels), bias, lo, hi)
                }
            }
            return
        }
        for p in 0..<pixels {
            for c in 0..<channels {
                var s = bias[c]
                for t in 0..<ntaps { s = s.addingProduct(a[p][Int(taps[t]) + c], w[t * ldw + c]) }
                out[p][c] = Swift.min(Swift.max(s, lo), hi)
            }
        }
    }
}
