import CKernels

/// The integer engine's elementwise steps on Int32 sums (those that are not a layer's epilogue):
/// requantized by per-channel dyadic numbers m·2^−s into sums (the branches of a residual add)
/// or into codes (a quantize step), and their signs packed 64 to a word (a binary layer's input).
/// y = (x·m + 2^(s−1)) >> s in Int64 (rounding half up), saturated to Int32. Rows are `pixels`
/// pixels `stride` elements apart, channels contiguous. With AVX2 the kernels of
/// CKernels/requantize_avx2.c run (the two rescaling ones with AVX-512 where the engine's VNNI
/// kernels do: requantize_avx512.c); `reference…` are the plain loops they are tested against.
public enum Requantize {
    /// Per-channel multipliers (0…2^31 − 1) and shifts (0…62), one entry meaning every channel,
    /// padded for the kernels. m = 1, s = 0 leaves a value as it is.
    public struct Scales: Sendable {
        public let channels: Int
        /// `channels` rounded up to a multiple of 8 entries, zero past `channels`.
        public let multipliers: [Int32], shifts: [Int32]
        /// The kernels' form: 0 every value as it is (m = 1, s = 0), 2 every shift ≥ 32 (a shorter
        /// exact form), else 1.
        let form: Int32

        public init(multipliers: [Int64], shifts: [Int], channels: Int) {
            precondition(multipliers.count == shifts.count && (multipliers.count == 1 || multipliers.count == channels))
            precondition(multipliers.allSatisfy { (0...Int64(Int32.max)).contains($0) } && shifts.allSatisfy { (0...62).contains($0) })
            let padded = (channels + 7) / 8 * 8
            func entry<T>(_ a: [T], _ c: Int) -> T { a.count == 1 ? a[0] : a[c] }
            self.channels = channels
            self.multipliers = (0..<padded).map { $0 < channels ? Int32(entry(multipliers, $0)) : 0 }
            self.shifts = (0..<padded).map { $0 < channels ? Int32(entry(shifts, $0)) : 0 }
            form = multipliers.allSatisfy { $0 == 1 } && shifts.allSatisfy { $0 == 0 } ? 0 : shifts.allSatisfy { $0 >= 32 } ? 2 : 1
        }

        /// Every channel as it is.
        public static func identity(channels: Int) -> Scales { Scales(multipliers: [1], shifts: [0], channels: channels) }

        @inline(__always)
        public func apply(_ x: Int32, channel c: Int) -> Int32 {
            let s = Int64(shifts[c]), v = Int64(x) * Int64(multipliers[c]) + (s > 0 ? 1 << (s - 1) : 0)
            return Int32(min(max(v >> s, Int64(Int32.min)), Int64(Int32.max)))
        }
    }

    static var vectorized: Bool { IGEMM.hasAVX2 && IGEMM.activeBackend != .swift }

    /// dst = scaled src (or dst += scaled src, wrapping, with `accumulate`). `backend` (the
    /// engine's by default) picks the AVX-512 kernels (`.vnni`, CKernels/requantize_avx512.c),
    /// the AVX2 ones or the plain loop.
    public static func sums(pixels: Int, _ scales: Scales, src: UnsafePointer<Int32>, srcStride: Int,
                            dst: UnsafeMutablePointer<Int32>, dstStride: Int, accumulate: Bool, backend: IGEMM.Backend? = nil) {
        let resolved = (backend ?? .automatic).resolved
        guard resolved != .swift else {
            return referenceSums(pixels: pixels, scales, src: src, srcStride: srcStride, dst: dst, dstStride: dstStride, accumulate: accumulate)
        }
        let kernel = resolved == .vnni ? mpq_requantize_sums_avx512 : mpq_requantize_sums_avx2
        scales.multipliers.withUnsafeBufferPointer { m in
            scales.shifts.withUnsafeBufferPointer { s in
                kernel(Int64(pixels), Int64(scales.channels), src, Int64(srcStride), dst, Int64(dstStride),
                       m.baseAddress!, s.baseAddress!, scales.form, accumulate ? 1 : 0)
            }
        }
    }

    /// dst = the low byte of scaled src clamped to lo…hi (codes; signed codes as their bit pattern).
    public static func codes(pixels: Int, _ scales: Scales, src: UnsafePointer<Int32>, srcStride: Int,
                             dst: UnsafeMutablePointer<UInt8>, dstStride: Int, lo: Int32, hi: Int32, backend: IGEMM.Backend? = nil) {
        let resolved = (backend ?? .automatic).resolved
        guard resolved != .swift else {
            return referenceCodes(pixels: pixels, scales, src: src, srcStride: srcStride, dst: dst, dstStride: dstStride, lo: lo, hi: hi)
        }
        let kernel = resolved == .vnni ? mpq_requantize_codes_avx512 : mpq_requantize_codes_avx2
        scales.multipliers.withUnsafeBufferPointer { m in
            scales.shifts.withUnsafeBufferPointer { s in
                kernel(Int64(pixels), Int64(scales.channels), src, Int64(srcStride), dst, Int64(dstStride), m.baseAddress!, s.baseAddress!,
                       scales.form, lo, hi)
            }
        }
    }

    /// Bit c mod 64 of word ⌊c/64⌋ of pixel p (⌈channels/64⌉ words a pixel, contiguous) set where
    /// the sum is negative; bits past `channels` clear.
    public static func signs(pixels: Int, channels: Int, src: UnsafePointer<Int32>, srcStride: Int, dst: UnsafeMutablePointer<UInt64>) {
        guard vectorized else { return referenceSigns(pixels: pixels, channels: channels, src: src, srcStride: srcStride, dst: dst) }
        mpq_pack_signs_avx2(Int64(pixels), Int64(channels), src, Int64(srcStride), dst)
    }

    /// The same for signed codes (a byte per channel, pixels `srcStride` bytes apart): bit set
    /// where the code is negative.
    public static func signs(pixels: Int, channels: Int, codes src: UnsafePointer<UInt8>, srcStride: Int, dst: UnsafeMutablePointer<UInt64>) {
        guard vectorized else { return referenceSigns(pixels: pixels, channels: channels, codes: src, srcStride: srcStride, dst: dst) }
        mpq_pack_sign_bytes_avx2(Int64(pixels), Int64(channels), src, Int64(srcStride), dst)
    }

    public static func referenceSums(pixels: Int, _ scales: Scales, src: UnsafePointer<Int32>, srcStride: Int,
                                     dst: UnsafeMutablePointer<Int32>, dstStride: Int, accumulate: Bool) {
        for p in 0..<pixels {
            for c in 0..<scales.channels {
                let q = scales.apply(src[p * srcStride + c], channel: c), o = p * dstStride + c
                dst[o] = accumulate ? dst[o] &+ q : q
            }
        }
    }

    public static func referenceCodes(pixels: Int, _ scales: Scales, src: UnsafePointer<Int32>, srcStride: Int,
                                      dst: UnsafeMutablePointer<UInt8>, dstStride: Int, lo: Int32, hi: Int32) {
        for p in 0..<pixels {
            for c in 0..<scales.channels {
                dst[p * dstStride + c] = UInt8(truncatingIfNeeded: min(max(scales.apply(src[p * srcStride + c], channel: c), lo), hi))
            }
        }
    }

    public static func referenceSigns(pixels: Int, channels: Int, src: UnsafePointer<Int32>, srcStride: Int, dst: UnsafeMutablePointer<UInt64>) {
        let words = (channels + 63) / 64
        for p in 0..<pixels {
            for q in 0..<words {
                var word: UInt64 = 0
                for t in 0..<min(64, channels - q * 64) where src[p * srcStride + q * 64 + t] < 0 { word |= 1 << UInt64(t) }
                dst[p * words + q] = word
            }
        }
    }

    public static func referenceSigns(pixels: Int, channels: Int, codes src: UnsafePointer<UInt8>, srcStride: Int, dst: UnsafeMutablePointer<UInt64>) {
        let words = (channels + 63) / 64
        for p in 0..<pixels {
            for q in 0..<words {
                var word: UInt64 = 0
                for t in 0..<min(64, channels - q * 64) where Int8(bitPattern: src[p * srcStride + q * 64 + t]) < 0 { word |= 1 << UInt64(t) }
                dst[p * words + q] = word
            }
        }
    }
}
