import CKernels

/// Weights of one integer layer laid out once for the tile kernel: K padded to groups of 4,
/// columns (output channels) in blocks of 16, b[block][group][16 columns][4 codes]; for the AVX2
/// tile also the same codes widened to Int16 (`widened`).
public struct IntegerWeights: @unchecked Sendable {
    public let k: Int, n: Int
    public var groups: Int { (k + 3) / 4 }
    public var blocks: Int { (n + 15) / 16 }
    public let data: [Int8]
    /// `data` as Int16 for the AVX2 tile on 8-bit weights, made when `widen`, else empty.
    public let widened: [Int16]
    /// Σ_p B[p, j]: what a +128 shift of the activations adds to column j, divided by 128.
    public let columnSums: [Int32]
    /// For codes all within −m…m−1, m ≤ 64 (every weight of ≤ 7 bits): ⌊32,767 / (510·m)⌋, the
    /// 16-bit pair sums the AVX2 tile adds before widening (`mpq_conv_avx2_narrow`, on `data`);
    /// 0 when some code lies outside −64…63.
    public let narrowSteps: Int

    /// From codes row-major n × k (row j: the k codes of output channel j). `widen` (by default:
    /// where the AVX2 tile is the engine's and the codes are not narrow) also makes `widened`.
    public init(codes: [Int8], n: Int, k: Int, widen: Bool? = nil) {
        precondition(codes.count == n * k)
        self.k = k; self.n = n
        let m = max(1, -Int(codes.min() ?? 0), Int(codes.max() ?? 0) + 1)
        narrowSteps = m <= 64 ? 32_767 / (510 * m) : 0
        let widen = widen ?? (IGEMM.activeBackend == .avx2 && narrowSteps == 0)
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
        widened = widen ? data.map { Int16($0) } : []
        columnSums = sums
    }
}

/// What a layer does with its sums, column by column (see `mpq_epilogue`): bias, then raw Int32
/// (`.sums`), or dyadic requantization y·mult >> shift rounded half up, plus an optional
/// residual branch, clamped to lo…hi, stored as Int32 (`.scaledSums`) or as bytes (`.codes`).
/// Holds its arrays at fixed addresses for the kernel.
public final class IntegerEpilogue: @unchecked Sendable {
    public enum Mode: Int32, Sendable { case sums = 0, scaledSums = 1, codes = 2 }
    /// A branch added before the clamp: Int32 already at the output scale, or codes (unsigned
    /// or signed) or Int32 requantized by their own dyadic multiplier and shift.
    public enum Residual: Sendable, Equatable {
        case none, sums
        case codes(signed: Bool, multiplier: Int32, shift: Int32)
        case rescaledSums(multiplier: Int32, shift: Int32)
        /// Bytes per element of the branch: Int32 sums or codes.
        public var elementBytes: Int { switch self { case .sums, .rescaledSums: 4; default: 1 } }
    }
    public let mode: Mode
    public let residual: Residual
    public let bias: [Int32], multiplier: [Int32], shift: [Int32]
    public let lo: Int32, hi: Int32
    let raw: UnsafeMutablePointer<mpq_epilogue>
    let storage: UnsafeMutablePointer<Int32>
    /// The short form's Int64 rows, `half` entries each (see `init`).
    let wide: UnsafeMutablePointer<Int64>, half: Int

    /// One entry per column; `multiplier` and `shift` are ignored for `.sums`.
    public init(bias: [Int32], multiplier: [Int32], shift: [Int32], lo: Int32, hi: Int32, mode: Mode, residual: Residual = .none) {
        precondition(multiplier.count == bias.count && shift.count == bias.count)
        // Padded to whole blocks of 16 so the kernel's masked loads stay in bounds.
        let padded = (bias.count + 15) / 16 * 16
        self.bias = bias; self.multiplier = multiplier; self.shift = shift
        self.lo = lo; self.hi = hi; self.mode = mode; self.residual = residual
        // Rows: bias, multiplier, shift, and the short form's odd multipliers.
        storage = .allocate(capacity: 4 * padded)
        storage.initialize(repeating: 0, count: 4 * padded)
        for (j, v) in bias.enumerated() { storage[j] = v }
        for (j, v) in multiplier.enumerated() { storage[padded + j] = v }
        for j in 0..<padded { storage[2 * padded + j] = j < shift.count ? max(shift[j], 1) : 1 }
        for j in 0..<padded { storage[3 * padded + j] = j + 1 < multiplier.count ? multiplier[j + 1] : 0 }
        // The short form's Int64 rows (padded / 2 entries each): rounding terms and shifts of the
        // even and odd columns, the odd shifts less 32 (see `mpq_epilogue`).
        half = padded / 2
        wide = .allocate(capacity: 4 * half)
        for i in 0..<half {
            let (se, so) = (Int64(storage[2 * padded + 2 * i]), Int64(storage[2 * padded + 2 * i + 1]))
            (wide[i], wide[half + i]) = (Int64(1) << (se - 1), Int64(1) << (so - 1))
            (wide[2 * half + i], wide[3 * half + i]) = (se, so - 32)
        }
        var kind: Int32 = 0, rm: Int32 = 0, rs: Int32 = 1
        switch residual {
        case .none: break
        case .sums: kind = 1
        case let .codes(signed, m, s): kind = signed ? 3 : 2; rm = m; rs = max(s, 1)
        case let .rescaledSums(m, s): kind = 4; rm = m; rs = max(s, 1)
        }
        eights = (bias.count + 7) / 8 * 8
        lanes = .allocate(capacity: 4 * eights)
        lanes.initialize(repeating: 0, count: 4 * eights)
        for c in bias.indices {
            let sh = Int64(max(shift[c], 1))
            (lanes[c], lanes[eights + c], lanes[2 * eights + c], lanes[3 * eights + c]) = (Int64(bias[c]), Int64(multiplier[c]), sh, Int64(1) << (sh - 1))
        }
        raw = .allocate(capacity: 1)
        raw.initialize(to: mpq_epilogue(bias: storage, mult: storage + padded, shift: storage + 2 * padded, lo: lo, hi: hi,
                                        mode: mode.rawValue, residual: kind, rmult: rm, rshift: rs,
                                        shift32: shift.allSatisfy { $0 >= 32 } && !multiplier.contains(Int32.min) ? 1 : 0,
                                        mult_odd: storage + 3 * padded, round_even: wide, round_odd: wide + half,
                                        shift_even: wide + 2 * half, shift_odd: wide + 3 * half, bias_folded: 0,
                                        unsaturated: shift.allSatisfy { $0 >= 31 } && !multiplier.contains(Int32.min) ? 1 : 0))
    }

    /// Whether `foldBias` folded the bias.
    public var biasFolded: Bool { raw.pointee.bias_folded == 1 }

    /// Folds the bias into the short form's rounding terms — bias·mult + 2^(shift−1) — so the
    /// VNNI kernels skip one addition per 16 columns, when the raw sums are known to lie within
    /// ±`bound`: then sum + bias cannot wrap Int32 and (sum + bias)·mult + 2^(shift−1) is the same
    /// integer either way (below 2^63). Does nothing otherwise, or outside the short form; the
    /// other paths read `bias` as before. Call before the epilogue is used.
    public func foldBias(sumsWithin bound: Int64) {
        let largest = bias.map { abs(Int64($0)) }.max() ?? 0
        guard raw.pointee.shift32 == 1, mode != .sums, bound >= 0, bound <= Int64(Int32.max) - largest else { return }
        for c in bias.indices {
            let term = Int64(bias[c]) * Int64(multiplier[c]) + (Int64(1) << (Int64(max(shift[c], 1)) - 1))
            if c % 2 == 0 { wide[c / 2] = term } else { wide[half + c / 2] = term }
        }
        raw.pointee.bias_folded = 1
    }

    deinit { storage.deallocate(); wide.deallocate(); raw.deallocate(); lanes.deallocate() }

    /// Per column, padded to whole blocks of 8 for `finishCodes`: four rows of Int64 lanes —
    /// bias, multiplier, shift and the rounding term 2^(shift−1) — made once in `init` (engines
    /// run images on several threads).
    private let lanes: UnsafeMutablePointer<Int64>
    /// Columns rounded up to 8: the stride between the four rows of `lanes`.
    private let eights: Int

    /// Whether `finishCodes` applies: requantization to codes with no residual branch.
    public var finishesCodesInLanes: Bool { mode == .codes && residual == .none }

    /// Columns 0..<count of one pixel's sums to codes, eight lanes at a time — what `finish`
    /// does column by column for `.codes` without a residual (the caller checks
    /// `finishesCodesInLanes`). `sums` must hold `count` rounded up to 8 entries; `out` gets
    /// `count` bytes.
    @inline(__always)
    public func finishCodes(_ sums: UnsafePointer<Int32>, count: Int, out: UnsafeMutablePointer<UInt8>) {
        let (lo, hi) = (SIMD8<Int64>(repeating: Int64(self.lo)), SIMD8<Int64>(repeating: Int64(self.hi)))
        let raw = UnsafeRawPointer(lanes), e = eights * 8
        var c = 0
        while c < count {
            let y = SIMD8<Int64>(truncatingIfNeeded: UnsafeRawPointer(sums + c).loadUnaligned(as: SIMD8<Int32>.self))
                &+ raw.loadUnaligned(fromByteOffset: c * 8, as: SIMD8<Int64>.self)
            // (Int32 sum + bias) wraps as Int32 does in `finish`.
            let wrapped = SIMD8<Int64>(truncatingIfNeeded: SIMD8<Int32>(truncatingIfNeeded: y))
            var q = (wrapped &* raw.loadUnaligned(fromByteOffset: e + c * 8, as: SIMD8<Int64>.self)
                     &+ raw.loadUnaligned(fromByteOffset: 3 * e + c * 8, as: SIMD8<Int64>.self))
                &>> raw.loadUnaligned(fromByteOffset: 2 * e + c * 8, as: SIMD8<Int64>.self)
            q = q.clamped(lowerBound: lo, upperBound: hi)
            let bytes = SIMD8<UInt8>(truncatingIfNeeded: q)
            if c + 8 <= count { UnsafeMutableRawPointer(out + c).storeBytes(of: bytes, as: SIMD8<UInt8>.self) } else {
                for j in 0..<(count - c) { out[c + j] = bytes[j] }
            }
            c += 8
        }
    }

    /// Column c's sum s through the epilogue in plain integer arithmetic — bias, then stored
    /// raw, or requantized, the residual added, clamped and stored — into the row at `out`
    /// (residual row at `res`): what the VNNI kernel's epilogue does, for the portable tile and
    /// for sums that come from elsewhere (`GEMV`).
    @inline(__always)
    public func finish(_ s: Int32, column c: Int, out: UnsafeMutableRawPointer, res: UnsafeRawPointer) {
        func dyadic(_ y: Int64, _ m: Int32, _ s: Int32) -> Int64 {
            min(max((y * Int64(m) + (1 << (Int64(s) - 1))) >> Int64(s), Int64(Int32.min)), Int64(Int32.max))
        }
        let y = s &+ bias[c]
        if mode == .sums {
            out.storeBytes(of: y, toByteOffset: c * 4, as: Int32.self)
            return
        }
        var q = dyadic(Int64(y), multiplier[c], shift[c])
        switch residual {
        case .none: break
        case .sums:
            q = Int64(Int32(truncatingIfNeeded: q) &+ res.load(fromByteOffset: c * 4, as: Int32.self))
        case let .codes(signed, m, sh):
            let byte = res.load(fromByteOffset: c, as: UInt8.self)
            let r = dyadic(signed ? Int64(Int8(bitPattern: byte)) : Int64(byte), m, sh)
            q = Int64(Int32(truncatingIfNeeded: q) &+ Int32(truncatingIfNeeded: r))
        case let .rescaledSums(m, sh):
            let r = dyadic(Int64(res.load(fromByteOffset: c * 4, as: Int32.self)), m, sh)
            q = Int64(Int32(truncatingIfNeeded: q) &+ Int32(truncatingIfNeeded: r))
        }
        q = min(max(q, Int64(lo)), Int64(hi))
        if mode == .scaledSums {
            out.storeBytes(of: Int32(q), toByteOffset: c * 4, as: Int32.self)
        } else {
            out.storeBytes(of: UInt8(truncatingIfNeeded: q), toByteOffset: c, as: UInt8.self)
        }
    }
}

extension IGEMM {
    /// Output pixels per convolution tile.
    public static let tileRows = 12

    /// A direct convolution tile (see `mpq_conv_vnni`): `rows` (≤ 12) output pixels whose
    /// receptive fields start at `a[i]`, tap offsets `taps` (bytes), `gpp` groups of 4 channels
    /// per tap, codes XORed with `flip`; output channels `column..<column+cols` (`column` a
    /// multiple of 16, cols ≤ 32) through the epilogue into `out[i]`, residuals from `res[i]`.
    /// `base` is the start of `weights.data` (the AVX2 tile on 8-bit weights reads
    /// `weights.widened` instead; on narrow ones `data`, see `narrowSteps`).
    @inline(__always)
    public static func convTile(rows: Int, cols: Int, a: UnsafePointer<UnsafePointer<UInt8>>, taps: UnsafePointer<Int64>, ntaps: Int,
                                gpp: Int, flip: UInt32, weights: IntegerWeights, base: UnsafePointer<Int8>, column: Int,
                                epilogue e: IntegerEpilogue, out: UnsafePointer<UnsafeMutableRawPointer>,
                                res: UnsafePointer<UnsafeRawPointer>, backend: Backend? = nil) {
        let block = weights.groups * 64
        let b = base + column / 16 * block
        let kernel = (backend ?? .automatic).resolved
        if kernel == .avx2 && weights.widened.isEmpty && weights.narrowSteps > 0 {
            a.withMemoryRebound(to: Optional<UnsafePointer<UInt8>>.self, capacity: rows) { ap in
                out.withMemoryRebound(to: Optional<UnsafeMutableRawPointer>.self, capacity: rows) { op in
                    res.withMemoryRebound(to: Optional<UnsafeRawPointer>.self, capacity: rows) { rp in
                        mpq_conv_avx2_narrow(Int64(rows), Int64(cols), ap, taps, Int64(ntaps), Int64(gpp), flip, b, Int64(block),
                                             Int64(weights.narrowSteps), e.raw, Int64(column), op, rp)
                    }
                }
            }
        } else if kernel == .avx2 && !weights.widened.isEmpty && (flip & 0xFF) * 0x0101_0101 == flip {
            // Each row's receptive field widened on its own (the engine widens a layer's whole
            // input once instead, `widenCodes`, and calls `convTileWide`).
            var span = 0
            for t in 0..<ntaps { span = max(span, Int(taps[t]) + 4 * gpp) }
            let wide = UnsafeMutablePointer<Int16>.allocate(capacity: rows * span)
            let rowsWide = UnsafeMutablePointer<UnsafePointer<Int16>>.allocate(capacity: rows)
            defer { wide.deallocate(); rowsWide.deallocate() }
            for i in 0..<rows {
                widenCodes(a[i], count: span, flip: UInt8(flip & 0xFF), into: wide + i * span)
                rowsWide[i] = UnsafePointer(wide + i * span)
            }
            convTileWide(rows: rows, cols: cols, a: rowsWide, taps: taps, ntaps: ntaps, gpp: gpp, weights: weights, column: column,
                         epilogue: e, out: out, res: res)
        } else if kernel == .vnni {
            a.withMemoryRebound(to: Optional<UnsafePointer<UInt8>>.self, capacity: rows) { ap in
                out.withMemoryRebound(to: Optional<UnsafeMutableRawPointer>.self, capacity: rows) { op in
                    res.withMemoryRebound(to: Optional<UnsafeRawPointer>.self, capacity: rows) { rp in
                        mpq_conv_vnni(Int64(rows), Int64(cols), ap, taps, Int64(ntaps), Int64(gpp), flip, b, Int64(block), e.raw,
                                      Int64(column), op, rp)
                    }
                }
            }
        } else {
            convTileSwift(rows: rows, cols: cols, a: a, taps: taps, ntaps: ntaps, gpp: gpp, flip: flip, b: b, block: block,
                          e: e, column: column, out: out, res: res)
        }
    }

    /// A whole layer of VNNI tiles (`mpq_conv_vnni_layer`; call only when `activeBackend` is
    /// `.vnni`): output pixel p reads its receptive field at `input + starts[p]`, writes its `cout`
    /// outputs at `output + outStarts[p]·elementBytes` and, with a residual, adds the branch at
    /// `residual + resStarts[p]·residualBytes` — the same results as `convTile` on each tile.
    /// `pixels` and `columns` (a multiple of 32 from) restrict it to a share of the layer.
    public static func convLayerVNNI(input: UnsafePointer<UInt8>, starts: [Int], output: UnsafeMutableRawPointer, outStarts: [Int],
                                     elementBytes: Int, residual: UnsafeRawPointer?, resStarts: [Int], residualBytes: Int,
                                     taps: [Int64], gpp: Int, flip: UInt32, weights: IntegerWeights, cout: Int, epilogue e: IntegerEpilogue,
                                     pixels: Range<Int>? = nil, columns: Range<Int>? = nil) {
        precondition(hasVNNI && starts.count == outStarts.count && (residual == nil || resStarts.count == starts.count))
        let pixels = pixels ?? 0..<starts.count, columns = columns ?? 0..<cout
        precondition(pixels.lowerBound >= 0 && pixels.upperBound <= starts.count && columns.lowerBound % 32 == 0 && columns.upperBound <= cout)
        if pixels.isEmpty || columns.isEmpty { return }
        let p0 = pixels.lowerBound
        starts.withUnsafeBufferPointer { s in
            outStarts.withUnsafeBufferPointer { o in
                resStarts.withUnsafeBufferPointer { r in
                    taps.withUnsafeBufferPointer { t in
                        weights.data.withUnsafeBufferPointer { w in
                            s.withMemoryRebound(to: Int64.self) { s64 in
                                o.withMemoryRebound(to: Int64.self) { o64 in
                                    r.withMemoryRebound(to: Int64.self) { r64 in
                                        mpq_conv_vnni_layer(Int64(pixels.count), s64.baseAddress! + p0, o64.baseAddress! + p0,
                                                            residual == nil ? nil : r64.baseAddress! + p0, input,
                                                            output.assumingMemoryBound(to: CChar.self), Int64(elementBytes),
                                                            residual?.assumingMemoryBound(to: CChar.self), Int64(residualBytes),
                                                            t.baseAddress, Int64(t.count), Int64(gpp), flip, w.baseAddress,
                                                            Int64(weights.groups * 64), e.raw, Int64(columns.lowerBound), Int64(columns.upperBound))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The AVX2 tile on 8-bit weights (`weights.widened`) with each row's codes already widened
    /// to Int16 and flipped (`widenCodes`): a[i] and `taps` count Int16 elements. The engine
    /// widens a layer's whole input once and calls this for every tile.
    @inline(__always)
    public static func convTileWide(rows: Int, cols: Int, a: UnsafePointer<UnsafePointer<Int16>>, taps: UnsafePointer<Int64>, ntaps: Int,
                                    gpp: Int, weights: IntegerWeights, column: Int, epilogue e: IntegerEpilogue,
                                    out: UnsafePointer<UnsafeMutableRawPointer>, res: UnsafePointer<UnsafeRawPointer>) {
        precondition(hasAVX2 && !weights.widened.isEmpty, "convTileWide needs AVX2 and widened weights")
        let block = weights.groups * 64
        weights.widened.withUnsafeBufferPointer { wide in
            a.withMemoryRebound(to: Optional<UnsafePointer<Int16>>.self, capacity: rows) { ap in
                out.withMemoryRebound(to: Optional<UnsafeMutableRawPointer>.self, capacity: rows) { op in
                    res.withMemoryRebound(to: Optional<UnsafeRawPointer>.self, capacity: rows) { rp in
                        mpq_conv_avx2(Int64(rows), Int64(cols), ap, taps, Int64(ntaps), Int64(gpp), wide.baseAddress! + column / 16 * block,
                                      Int64(block), e.raw, Int64(column), op, rp)
                    }
                }
            }
        }
    }

    /// dst[i] = Int16(src[i] ^ flip) for i < count (AVX2 where the CPU has it).
    public static func widenCodes(_ src: UnsafePointer<UInt8>, count: Int, flip: UInt8, into dst: UnsafeMutablePointer<Int16>) {
        if hasAVX2 { mpq_widen_codes_avx2(src, Int64(count), flip, dst); return }
        for i in 0..<count { dst[i] = Int16(src[i] ^ flip) }
    }

    /// The portable tile, and the oracle of the VNNI one: the same sums and epilogue in plain
    /// integer arithmetic.
    static func convTileSwift(rows: Int, cols: Int, a: UnsafePointer<UnsafePointer<UInt8>>, taps: UnsafePointer<Int64>, ntaps: Int,
                              gpp: Int, flip: UInt32, b: UnsafePointer<Int8>, block: Int, e: IntegerEpilogue, column: Int,
                              out: UnsafePointer<UnsafeMutableRawPointer>, res: UnsafePointer<UnsafeRawPointer>) {
        let flipBytes = (0..<4).map { UInt8(truncatingIfNeeded: flip >> (8 * $0)) }
        for i in 0..<rows {
            for j in 0..<cols {
                let weights = b + (j / 16) * block
                var s: Int32 = 0
                for t in 0..<ntaps {
                    for g in 0..<gpp {
                        for u in 0..<4 {
                            let x = a[i][Int(taps[t]) + 4 * g + u] ^ flipBytes[u]
                            s &+= Int32(x) * Int32(weights[((t * gpp + g) * 16 + j % 16) * 4 + u])
                        }
                    }
                }
                e.finish(s, column: column + j, out: out[i], res: res[i])
            }
        }
    }
}
