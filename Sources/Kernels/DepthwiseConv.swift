/// Depthwise convolution on NHWC byte codes, one output pixel at a time: each channel's taps
/// multiply that channel's own weights, so the work runs across channels — 16 at a time in
/// 512-bit lanes, codes widened to Int32 (unsigned, or signed codes read as Int8), each tap's
/// weights pre-widened per channel. `reference` is the plain loop it is tested against.
public enum DepthwiseConv {
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
