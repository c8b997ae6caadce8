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
    public static func run(input: UnsafePointer<UInt8>, signed: Bool, starts: [Int], outStarts: [Int], taps: [Int],
                           weights: [Int32], ldw: Int, channels: Int, epilogue e: IntegerEpilogue,
                           output: UnsafeMutableRawPointer, scratch: UnsafeMutablePointer<Int32>, backend: IGEMM.Backend? = nil) {
        let elementBytes = e.mode == .codes ? 1 : 4
        let kernel = (backend ?? .automatic).resolved
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
