import CKernels

/// Depthwise convolution on NHWC byte codes, one output pixel at a time: each channel's taps
/// multiply that channel's own weights, so the work runs across channels — 16 at a time in
/// 512-bit lanes, codes widened to Int32 (unsigned, or signed codes read as Int8), each tap's
/// weights pre-widened per channel. `run` does whole layers with the epilogue (in C beside the
/// tile's epilogue where VNNI or AVX2 is there; `pixel` and `IntegerEpilogue` elsewhere); `reference`
/// is the plain loop both are tested against.
public enum DepthwiseConv {
    /// Every output pixel p: its receptive field at input + starts[p], the taps' byte offsets,
    /// sums through `epilogue` into output + outStarts[p]·(4 for sums, 1 for codes). `scratch`
    /// holds `ldw` Int32s (the portable path's sums). `backend` forces one path (tests).
    /// `grid` and `pairs` (room for `grid.count` Int32s): with VNNI, a 3×3 layer runs on pairs of
    /// horizontal neighbours (`PairGrid`).
    public static func run(input: UnsafePointer<UInt8>, signed: Bool, starts: [Int], outStarts: [Int], taps: [Int],
                           weights: [Int32], ldw: Int, channels: Int, epilogue e: IntegerEpilogue,
                           output: UnsafeMutableRawPointer, scratch: UnsafeMutablePointer<Int32>, backend: IGEMM.Backend? = nil,
                           grid: PairGrid? = nil, pairs: UnsafeMutablePointer<Int32>? = nil) {
        let elementBytes = e.mode == .codes ? 1 : 4
        let kernel = (backend ?? .automatic).resolved
        if kernel == .vnni, let grid, let pairs {
            // A row of windows at a time; the grid rows it reads kept in a ring of three (row r in
            // slot r mod 3), each built once, just before the first row of windows that reads it.
            // Unsigned codes as triples where bytes permute (one vpdpbusd a tap row), else pairs.
            let triples = !signed && PairGrid.permutes && !grid.tripleWeights.isEmpty
            let form: Int32 = triples ? 2 : PairGrid.permutes ? 1 : 0
            let ring = grid.cols * ldw, rowBytes = grid.cols * grid.pixelBytes
            var built = 0
            let (columns, weights) = triples ? (grid.tripleColumns, grid.tripleWeights) : (grid.columns, grid.weights)
            columns.withUnsafeBufferPointer { c in grid.lefts.withUnsafeBufferPointer { l in outStarts.withUnsafeBufferPointer { o in
                weights.withUnsafeBufferPointer { w in
                    c.baseAddress!.withMemoryRebound(to: Int64.self, capacity: c.count) { c64 in
                        l.baseAddress!.withMemoryRebound(to: Int64.self, capacity: l.count) { l64 in
                            o.baseAddress!.withMemoryRebound(to: Int64.self, capacity: o.count) { o64 in
                                for (top, pixels) in grid.bands {
                                    for r in max(built, top)..<(top + 3) {
                                        mpq_depthwise_pairs_avx512(c64, Int64(c.count), Int64(grid.cols), input + r * rowBytes, Int64(grid.pixelBytes),
                                                                   Int64(channels), signed ? 1 : 0, pairs + r % 3 * ring, Int64(ldw), form)
                                    }
                                    built = max(built, top + 3)
                                    mpq_depthwise3x3_pairs_avx512(Int64(pixels.count), l64 + pixels.lowerBound, o64 + pixels.lowerBound,
                                                                  pairs + top % 3 * ring, pairs + (top + 1) % 3 * ring, pairs + (top + 2) % 3 * ring,
                                                                  Int64(ldw), output.assumingMemoryBound(to: CChar.self), Int64(elementBytes),
                                                                  w.baseAddress!, Int64(channels), e.raw, triples ? 1 : 0)
                                }
                            }
                        }
                    }
                }
            } } }
            return
        }
        if kernel == .vnni || kernel == .avx2 {
            starts.withUnsafeBufferPointer { s in outStarts.withUnsafeBufferPointer { o in taps.withUnsafeBufferPointer { t in
                weights.withUnsafeBufferPointer { w in
                    s.baseAddress!.withMemoryRebound(to: Int64.self, capacity: s.count) { s64 in
                        o.baseAddress!.withMemoryRebound(to: Int64.self, capacity: o.count) { o64 in
                            t.baseAddress!.withMemoryRebound(to: Int64.self, capacity: t.count) { t64 in
                                let out = output.assumingMemoryBound(to: CChar.self)
                                if kernel == .vnni {
                                    mpq_depthwise_avx512(Int64(s.count), s64, o64, input, out, Int64(elementBytes),
                                                         t64, Int64(t.count), w.baseAddress!, Int64(ldw), Int64(channels), signed ? 1 : 0, e.raw)
                                } else {
                                    mpq_depthwise_avx2(Int64(s.count), s64, o64, input, out, Int64(elementBytes),
                                                       t64, Int64(t.count), w.baseAddress!, Int64(ldw), Int64(channels), signed ? 1 : 0, e.raw)
                                }
                            }
                        }
                    }
                }
            } } }
            return
        }
        let lanes = e.finishesCodesInLanes
        weights.withUnsafeBufferPointer { w in
            taps.withUnsafeBufferPointer { t in
                for p in 0..<starts.count {
                    pixel(input + starts[p], signed: signed, taps: t.baseAddress!, ntaps: t.count, weights: w.baseAddress!, ldw: ldw,
                          channels: channels, sums: scratch)
                    let out = output + outStarts[p] * elementBytes
                    if lanes { e.finishCodes(scratch, count: channels, out: out.assumingMemoryBound(to: UInt8.self)); continue }
                    for c in 0..<channels { e.finish(scratch[c], column: c, out: out, res: UnsafeRawPointer(input)) }
                }
            }
        }
    }

    /// A 3×3 layer (dilation 1, any stride) over a padded input grid, for the pair path: its codes
    /// are widened into pairs of horizontal neighbours (an Int32 per channel and grid position: the
    /// code in the low 16 bits, its right neighbour's in the high 16), and then each of the three
    /// tap rows costs two 16-bit multiply-adds per 16 channels — against (w[ky][0], w[ky][1]) at the
    /// receptive field's column and (w[ky][2], 0) two columns on — where the plain path widens and
    /// multiplies nine taps one by one. The same integer sums. The windows go a row at a time
    /// (`bands`), and only the three grid rows a row of windows reads are kept as pairs. Unsigned
    /// codes on a CPU with AVX512-VBMI go as triples instead (a code and its next two neighbours in
    /// one Int32's bytes): one u8 × s8 multiply-add of four bytes per tap row.
    public struct PairGrid: Sendable {
        /// Whether pairs are built by byte permutation (AVX512-VBMI; the same pairs either way).
        public static let permutes = mpq_cpu_has_avx512_vbmi() == 1
        /// The input grid's size in pixels (padding included) and the bytes from one pixel to the next.
        public let rows: Int, cols: Int, pixelBytes: Int
        /// Each output pixel's receptive field: its left grid column.
        public let lefts: [Int]
        /// The rows of windows: a grid row and the output pixels whose windows start on it.
        public let bands: [(top: Int, pixels: Range<Int>)]
        /// (w[ky][0], w[ky][1]) then (w[ky][2], 0) for ky = 0, 1, 2, as Int16 pairs: 6·ldw.
        public let weights: [Int32]
        /// For unsigned codes built as triples of neighbours (the code at a column and at the next
        /// two in one Int32's bytes): (w[ky][0], w[ky][1], w[ky][2], 0) as bytes, 3·ldw; empty when
        /// some weight lies outside −128…127.
        public let tripleWeights: [Int32]
        /// The columns triples are built at: the windows' left columns.
        public let tripleColumns: [Int]
        /// Int32s of the pair buffer: three grid rows, 3·cols·ldw.
        public let count: Int
        /// The grid columns some window reads pairs at (a stride of 2 reads every other column):
        /// only those are built.
        public let columns: [Int]

        /// nil unless `taps` are the 9 taps of a 3×3 window at dilation 1 on this grid and there
        /// are starts, each a whole pixel whose window lies inside it, their rows in order.
        public init?(taps: [Int], starts: [Int], rows: Int, cols: Int, pixelBytes: Int, weights: [Int32], ldw: Int) {
            let rowBytes = cols * pixelBytes
            guard taps.count == 9, !starts.isEmpty, pixelBytes > 0, rows >= 3, cols >= 3, weights.count == 9 * ldw,
                  taps.enumerated().allSatisfy({ $1 == ($0 / 3) * rowBytes + ($0 % 3) * pixelBytes }),
                  starts.allSatisfy({ $0 >= 0 && $0 % pixelBytes == 0 && ($0 / pixelBytes) / cols + 2 < rows && ($0 / pixelBytes) % cols + 2 < cols })
            else { return nil }
            let positions = starts.map { $0 / pixelBytes }, tops = positions.map { $0 / cols }
            guard zip(tops, tops.dropFirst()).allSatisfy({ $0 <= $1 }) else { return nil }
            self.rows = rows; self.cols = cols; self.pixelBytes = pixelBytes
            lefts = positions.map { $0 % cols }
            var bands: [(top: Int, pixels: Range<Int>)] = []
            var first = 0
            for p in 1...tops.count where p == tops.count || tops[p] != tops[first] {
                bands.append((top: tops[first], pixels: first..<p))
                first = p
            }
            self.bands = bands
            columns = Set(lefts.flatMap { [$0, $0 + 2] }).sorted()
            func pair(_ lo: Int32, _ hi: Int32) -> Int32 { Int32(bitPattern: UInt32(UInt16(truncatingIfNeeded: lo)) | UInt32(UInt16(truncatingIfNeeded: hi)) << 16) }
            var w = [Int32](repeating: 0, count: 6 * ldw)
            for ky in 0..<3 {
                for c in 0..<ldw {
                    w[2 * ky * ldw + c] = pair(weights[(3 * ky) * ldw + c], weights[(3 * ky + 1) * ldw + c])
                    w[(2 * ky + 1) * ldw + c] = pair(weights[(3 * ky + 2) * ldw + c], 0)
                }
            }
            self.weights = w
            tripleColumns = Set(lefts).sorted()
            if weights.allSatisfy({ (-128...127).contains($0) }) {
                func byte(_ v: Int32, _ at: Int) -> UInt32 { UInt32(UInt8(truncatingIfNeeded: v)) << (8 * at) }
                tripleWeights = (0..<3).flatMap { ky in
                    (0..<ldw).map { c in
                        Int32(bitPattern: byte(weights[3 * ky * ldw + c], 0) | byte(weights[(3 * ky + 1) * ldw + c], 1) | byte(weights[(3 * ky + 2) * ldw + c], 2))
                    }
                }
            } else {
                tripleWeights = []
            }
            count = 3 * cols * ldw
        }
    }

    /// One grid row's pairs (`PairGrid`) at the given columns of a row of `cols` pixels: pairs[j·ldw + c]
    /// for channel c < ldw, zero past `channels`; built by byte permutation where `permute`
    /// (which needs `PairGrid.permutes`). For tests of the two forms; VNNI machines only.
    public static func pairRow(columns: [Int], cols: Int, input: UnsafePointer<UInt8>, pixelBytes: Int, channels: Int, signed: Bool,
                               pairs: UnsafeMutablePointer<Int32>, ldw: Int, permute: Bool) {
        precondition(IGEMM.Backend.vnni.runs && (!permute || PairGrid.permutes) && columns.allSatisfy { (0..<cols).contains($0) })
        columns.withUnsafeBufferPointer { c in
            c.baseAddress!.withMemoryRebound(to: Int64.self, capacity: c.count) { c64 in
                mpq_depthwise_pairs_avx512(c64, Int64(c.count), Int64(cols), input, Int64(pixelBytes), Int64(channels), signed ? 1 : 0, pairs,
                                           Int64(ldw), permute ? 1 : 0)
            }
        }
    }

    /// sums[ch] = Σ_t code(x[taps[t] + ch]) · w[t·ldw + ch] for ch < channels. `ldw` is
    /// `channels` rounded up to 16 with zero weights past them; `sums` holds `ldw` entries (those
    /// past `channels` are written too). The 16-byte loads may read up to 15 bytes past the last
    /// channel of a tap: the caller's buffer must allow it.
    @inline(__always)
    public static func pixel(_ x: UnsafePointer<UInt8>, signed: Bool, taps: UnsafePointer<Int>, ntaps: Int,
                             weights: UnsafePointer<Int32>, ldw: Int, channels: Int, sums: UnsafeMutablePointer<Int32>) {
        if signed {
            accumulate(x, taps: taps, ntaps: ntaps, weights: weights, ldw: ldw, channels: channels, sums: sums) {
                SIMD16<Int32>(truncatingIfNeeded: SIMD16<Int8>(truncatingIfNeeded: $0))
            }
        } else {
            accumulate(x, taps: taps, ntaps: ntaps, weights: weights, ldw: ldw, channels: channels, sums: sums) {
                SIMD16<Int32>(truncatingIfNeeded: $0)
            }
        }
    }

    /// The loop of `pixel`, with the widening of 16 codes fixed (no branch inside).
    @inline(__always)
    static func accumulate(_ x: UnsafePointer<UInt8>, taps: UnsafePointer<Int>, ntaps: Int, weights: UnsafePointer<Int32>, ldw: Int,
                           channels: Int, sums: UnsafeMutablePointer<Int32>, widen: (SIMD16<UInt8>) -> SIMD16<Int32>) {
        let raw = UnsafeRawPointer(x), w = UnsafeRawPointer(weights)
        var ch = 0
        while ch < channels {
            var acc = SIMD16<Int32>(repeating: 0)
            for t in 0..<ntaps {
                acc &+= widen(raw.loadUnaligned(fromByteOffset: taps[t] + ch, as: SIMD16<UInt8>.self))
                    &* w.loadUnaligned(fromByteOffset: (t * ldw + ch) * 4, as: SIMD16<Int32>.self)
            }
            UnsafeMutableRawPointer(sums + ch).storeBytes(of: acc, as: SIMD16<Int32>.self)
            ch += 16
        }
    }

    /// The same sums by plain loops (channels only).
    public static func reference(_ x: UnsafePointer<UInt8>, signed: Bool, taps: UnsafePointer<Int>, ntaps: Int,
                                 weights: UnsafePointer<Int32>, ldw: Int, channels: Int, sums: UnsafeMutablePointer<Int32>) {
        for ch in 0..<channels {
            var s: Int32 = 0
            for t in 0..<ntaps {
                let b = x[taps[t] + ch]
                s &+= (signed ? Int32(Int8(bitPattern: b)) : Int32(b)) &* weights[t * ldw + ch]
            }
            sums[ch] = s
        }
    }
}
