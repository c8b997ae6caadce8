import CKernels

/// Direct convolution of packed signs (XNOR-Net's binary convolution), reading its input in place.
///
/// Layout: an image of `channels` signs per pixel is `words = ⌈channels/64⌉` UInt64 words per
/// pixel, pixels in row-major order (NHWC bit planes); bit `c mod 64` of word `⌊c/64⌋` is 1 when
/// channel c is −1 (as `BinaryGEMM.packSigns`), and the bits past `channels` are 0 in the input
/// and the weights, so they agree and count nothing. A tap that falls in the padding is skipped:
/// the float convolution multiplies zeros there, so it contributes nothing (not ±1). For an output
/// pixel with `v` valid taps and output channel o the dots are
///   (v·channels − 2·Σ_taps Σ_words popcount(x ⊕ w_o))·2^shift,
/// the shift giving a bias added after (and so a sign taken downstream) finer steps than one
/// agreement. A layer runs through `layer` (BinaryConv+Layer.swift), which adds the bias in its
/// epilogue; `pixel` is its portable path: each input word broadcast against the same word of 8
/// consecutive output channels (one 512-bit load), 32 channels per pass, every lane one output
/// channel — no horizontal sums — or, where the AVX2 kernels are chosen (no vpopcntq),
/// CKernels/xnor_avx2.c, counting bits by table look-ups added in bytes. `reference` is the plain
/// loop all are checked against.
public enum BinaryConv {
    public struct Geometry: Sendable, Equatable {
        public var height: Int, width: Int, channels: Int
        public var kernelH: Int, kernelW: Int, strideH: Int, strideW: Int, dilationH: Int, dilationW: Int
        public var padTop: Int, padLeft: Int
        public var outH: Int, outW: Int, cout: Int
        public var words: Int { (channels + 63) / 64 }
        public var taps: Int { kernelH * kernelW }
        public init(height: Int, width: Int, channels: Int, kernelH: Int, kernelW: Int, strideH: Int = 1, strideW: Int = 1,
                    dilationH: Int = 1, dilationW: Int = 1, padTop: Int = 0, padLeft: Int = 0, outH: Int, outW: Int, cout: Int) {
            self.height = height; self.width = width; self.channels = channels; self.kernelH = kernelH; self.kernelW = kernelW
            self.strideH = strideH; self.strideW = strideW; self.dilationH = dilationH; self.dilationW = dilationW
            self.padTop = padTop; self.padLeft = padLeft; self.outH = outH; self.outW = outW; self.cout = cout
        }
    }

    /// Weight signs regrouped for the kernel, `[block of 8 outputs][tap][word][lane]`, and the
    /// live-channel mask padded to whole blocks.
    public struct Weights: Sendable {
        public let bits: [UInt64]
        /// −1 for a channel whose dots count, 0 for one whose weights are all zero (α = 0: its dots
        /// are 0 and its output the bias alone — signs cannot say 0).
        public let mask: [Int32]
        public let cout: Int, taps: Int, words: Int
        public var blocks: Int { (cout + 7) / 8 }
        /// For 9 taps of one word and at most 32 input channels (a 3×3 layer's `channels`, when
        /// given): each output channel's taps narrowed to `packedLanes` bits (16 for ≤ 16
        /// channels, else 32) and packed into words — taps 0–3 and 4–7 (or 0–1, 2–3, 4–5, 6–7),
        /// tap 0 in the low bits — then tap 8 alone, `[block of 8][packed word][lane]`: what
        /// `layer`'s kernel reads for pixels with all nine taps. Empty and 0 otherwise.
        public let packed: [UInt64], packedLanes: Int
        /// `signs`: `[cout][tap][word]`, 1 = −1, bits past the channels 0; `live`: per output
        /// channel, false where its weights are zero (all live when nil).
        public init(signs: [UInt64], cout: Int, taps: Int, words: Int, live: [Bool]? = nil, channels: Int? = nil) {
            precondition(signs.count == cout * taps * words && (live?.count ?? cout) == cout)
            mask = (0..<((cout + 7) / 8 * 8)).map { $0 < cout && live?[$0] != false ? -1 : 0 }
            self.cout = cout; self.taps = taps; self.words = words
            let blocks = (cout + 7) / 8
            var bits = [UInt64](repeating: 0, count: blocks * taps * words * 8)
            for o in 0..<cout {
                for t in 0..<taps {
                    for q in 0..<words { bits[(((o / 8) * taps + t) * words + q) * 8 + o % 8] = signs[(o * taps + t) * words + q] }
                }
            }
            self.bits = bits
            if let channels, taps == 9, words == 1, channels <= 32 {
                let lanes = channels <= 16 ? 16 : 32, perWord = 64 / lanes, count = 8 / perWord + 1
                var packed = [UInt64](repeating: 0, count: blocks * count * 8)
                for o in 0..<cout {
                    for t in 0..<9 {
                        let k = t == 8 ? count - 1 : t / perWord, at = t == 8 ? 0 : (t % perWord) * lanes
                        packed[((o / 8) * count + k) * 8 + o % 8] |= signs[o * taps + t] << UInt64(at)
                    }
                }
                (self.packed, packedLanes) = (packed, lanes)
            } else {
                (packed, packedLanes) = ([], 0)
            }
        }
    }

    /// Packs one image's signs from `source(pixel, channel) < 0` into `words` words per pixel.
    @inline(__always)
    public static func pack(pixels: Int, channels: Int, into dst: UnsafeMutablePointer<UInt64>, isNegative: (Int, Int) -> Bool) {
        let words = (channels + 63) / 64
        for p in 0..<pixels {
            for q in 0..<words {
                var word: UInt64 = 0
                for t in 0..<min(64, channels - q * 64) where isNegative(p, q * 64 + t) { word |= 1 << UInt64(t) }
                dst[p * words + q] = word
            }
        }
    }

    /// One output pixel's dots: for each group of up to four 8-channel blocks, Σ over the listed
    /// taps (`start + offsets[t]`, weights of tap `tapIndex[t]`, or of tap t when nil) of popcount(x ⊕ w).
    @inline(__always)
    static func pixel(start: UnsafePointer<UInt64>, offsets: UnsafePointer<Int>, tapIndex: UnsafePointer<Int>?, valid: Int, g: Geometry,
                      weights: UnsafeRawPointer, blocks: Int, mask: UnsafePointer<Int32>,
                      out: UnsafeMutablePointer<Int32>, shift: Int, avx2: Bool) {
        if avx2 {
            mpq_xnor_pixel_avx2(start, UnsafePointer(OpaquePointer(offsets)), tapIndex.map { UnsafePointer(OpaquePointer($0)) }, Int64(valid),
                                Int64(g.words), Int64(g.channels), weights.assumingMemoryBound(to: UInt64.self), Int64(blocks), Int64(g.taps),
                                mask, Int64(g.cout), Int64(shift), out)
            return
        }
        typealias V = SIMD8<UInt64>
        let words = g.words, tapBytes = words * 64, blockBytes = g.taps * words * 64
        let base = SIMD8<Int32>(repeating: Int32(truncatingIfNeeded: valid * g.channels))
        @inline(__always) func store(_ s: V, _ block: Int) {
            let dots = (base &- 2 &* SIMD8<Int32>(truncatingIfNeeded: s)) &<< Int32(shift)
                & UnsafeRawPointer(mask + block * 8).loadUnaligned(as: SIMD8<Int32>.self)
            let n = min(8, g.cout - block * 8)
            if n == 8 { UnsafeMutableRawPointer(out + block * 8).storeBytes(of: dots, as: SIMD8<Int32>.self) } else {
                for t in 0..<n { out[block * 8 + t] = dots[t] }
            }
        }
        var b0 = 0
        while b0 < blocks {
            let nb = min(4, blocks - b0)
            var s0 = V(), s1 = V(), s2 = V(), s3 = V()
            let w = weights + b0 * blockBytes
            if words == 1 && nb == 4 {
                for t in 0..<valid {
                    let v = V(repeating: start[offsets[t]]), o = (tapIndex?[t] ?? t) * 64
                    s0 &+= (v ^ w.loadUnaligned(fromByteOffset: o, as: V.self)).nonzeroBitCount
                    s1 &+= (v ^ w.loadUnaligned(fromByteOffset: o + blockBytes, as: V.self)).nonzeroBitCount
                    s2 &+= (v ^ w.loadUnaligned(fromByteOffset: o + 2 * blockBytes, as: V.self)).nonzeroBitCount
                    s3 &+= (v ^ w.loadUnaligned(fromByteOffset: o + 3 * blockBytes, as: V.self)).nonzeroBitCount
                }
            } else if words == 1 && nb == 2 {
                for t in 0..<valid {
                    let v = V(repeating: start[offsets[t]]), o = (tapIndex?[t] ?? t) * 64
                    s0 &+= (v ^ w.loadUnaligned(fromByteOffset: o, as: V.self)).nonzeroBitCount
                    s1 &+= (v ^ w.loadUnaligned(fromByteOffset: o + blockBytes, as: V.self)).nonzeroBitCount
                }
            } else {
                for t in 0..<valid {
                    let x = start + offsets[t], o0 = (tapIndex?[t] ?? t) * tapBytes
                    for q in 0..<words {
                        let v = V(repeating: x[q]), o = o0 + q * 64
                        s0 &+= (v ^ w.loadUnaligned(fromByteOffset: o, as: V.self)).nonzeroBitCount
                        if nb > 1 { s1 &+= (v ^ w.loadUnaligned(fromByteOffset: o + blockBytes, as: V.self)).nonzeroBitCount }
                        if nb > 2 { s2 &+= (v ^ w.loadUnaligned(fromByteOffset: o + 2 * blockBytes, as: V.self)).nonzeroBitCount }
                        if nb > 3 { s3 &+= (v ^ w.loadUnaligned(fromByteOffset: o + 3 * blockBytes, as: V.self)).nonzeroBitCount }
                    }
                }
            }
            store(s0, b0)
            if nb > 1 { store(s1, b0 + 1) }
            if nb > 2 { store(s2, b0 + 2) }
            if nb > 3 { store(s3, b0 + 3) }
            b0 += nb
        }
    }

    /// The oracle: the same convolution on unpacked signs (`x` NHWC, `w` [cout][ky][kx][channel],
    /// each value's sign taken with sign(0) = +1), padding contributing nothing.
    /// A channel whose weights are all zero gives its bias.
    public static func reference(_ g: Geometry, x: [Float], w: [Float], bias: [Int32], shift: Int = 0) -> [Int32] {
        var out = [Int32](repeating: 0, count: g.outH * g.outW * g.cout)
        for oy in 0..<g.outH {
            for ox in 0..<g.outW {
                for o in 0..<g.cout {
                    var s = 0
                    for ky in 0..<g.kernelH {
                        let iy = oy * g.strideH - g.padTop + ky * g.dilationH
                        guard iy >= 0 && iy < g.height else { continue }
                        for kx in 0..<g.kernelW {
                            let ix = ox * g.strideW - g.padLeft + kx * g.dilationW
                            guard ix >= 0 && ix < g.width else { continue }
                            for c in 0..<g.channels {
                                let a = x[(iy * g.width + ix) * g.channels + c] < 0, b = w[((o * g.kernelH + ky) * g.kernelW + kx) * g.channels + c] < 0
                                s += a == b ? 1 : -1
                            }
                        }
                    }
                    let live = (0..<(g.taps * g.channels)).contains { w[o * g.taps * g.channels + $0] != 0 }
                    out[(oy * g.outW + ox) * g.cout + o] = Int32((live ? s << shift : 0) + Int(bias[o]))
                }
            }
        }
        return out
    }
}
