import CKernels
import Runtime

/// Integer matrix–vector product for one image (batch 1): y[j] = Σ_k x[k]·W[j][k], x u8 codes,
/// W signed codes read at their own width — 8, 4 or 2 bits. At batch 1 every weight is used once,
/// so reading them bounds the time, and narrower weights buy time: 4- and 2-bit rows are half and
/// a quarter of the bytes, widened in registers (one shift and mask per plane) for `vpdpbusd`
/// (VNNI) or `vpmaddubsw` (AVX2, exact on these codes; CKernels/gemv_avx2.c).
///
/// Layout (`Weights`): each row is a run of 64-byte blocks. s8: 64 codes per block. u4 / u2:
/// codes stored offset-binary (w + 8, w + 2, so 0…15 / 0…3 multiply as u8×s8 without sign
/// extension) and packed 128 / 256 per block — byte t holds elements t and 64 + t (u4: low and
/// high nibble) or t, 64 + t, 128 + t, 192 + t (u2: bits 0–1, 2–3, 4–5, 6–7) of the block, so each
/// plane meets a contiguous 64 bytes of x. The offset comes back out as offset·Σx. x is copied
/// into a zero-padded buffer of whole blocks (padding codes multiply zeros). `reference` is the
/// plain loop the kernels are tested against; where neither VNNI nor AVX2 is there it is what runs.
public enum GEMV {
    public struct Weights: Sendable {
        public let bits: Int, n: Int, k: Int
        /// 64-byte blocks per row, and the codes one block holds.
        public let blocks: Int, perBlock: Int
        public let data: [UInt8]
        /// What storage adds to each code (0, 8 or 2).
        public let offset: Int
        /// Bytes of x the kernels read: whole blocks.
        public var paddedLength: Int { blocks * perBlock }

        /// `codes`: n rows of k signed codes, each within the width's range (8: any Int8; 4: −8…7;
        /// 2: −2…1).
        public init(codes: [Int8], n: Int, k: Int, bits: Int) {
            precondition([8, 4, 2].contains(bits) && codes.count == n * k && n > 0 && k > 0)
            self.init(n: n, k: k, bits: bits) { j, p in codes[j * k + p] }
        }

        /// The narrowest of 8, 4 and 2 bits whose range holds every code (4: −8…7, 2: −2…1).
        public static func width(of codes: [Int8]) -> Int {
            guard let lo = codes.min(), let hi = codes.max() else { return 2 }
            return lo >= -2 && hi <= 1 ? 2 : lo >= -8 && hi <= 7 ? 4 : 8
        }

        /// Row j's code p from `code(j, p)`.
        public init(n: Int, k: Int, bits: Int, code: (Int, Int) -> Int8) {
            precondition([8, 4, 2].contains(bits) && n > 0 && k > 0)
            self.bits = bits; self.n = n; self.k = k
            perBlock = 64 * 8 / bits
            blocks = (k + perBlock - 1) / perBlock
            offset = bits == 8 ? 0 : 1 << (bits - 1)
            var data = [UInt8](repeating: 0, count: n * blocks * 64)
            let planes = 8 / bits, mask = (1 << bits) - 1
            for j in 0..<n {
                for p in 0..<k {
                    let code = Int(code(j, p))
                    precondition(bits == 8 || (code + offset >= 0 && code + offset <= mask), "code \(code) outside \(bits) bits")
                    let (b, local) = (p / perBlock, p % perBlock)
                    let byte = j * blocks * 64 + b * 64 + local % 64
                    if bits == 8 { data[byte] = UInt8(bitPattern: Int8(code)); continue }
                    let plane = local / 64
                    precondition(plane < planes)
                    data[byte] |= UInt8((code + offset) & mask) << UInt8(plane * bits)
                }
            }
            self.data = data
        }
    }

    /// y (n Int32) for x (k u8 codes), rows split over `threads`.
    public static func multiply(_ w: Weights, x: UnsafePointer<UInt8>, y: UnsafeMutablePointer<Int32>, threads: Int = Parallel.defaultThreads,
                                backend: IGEMM.Backend? = nil) {
        let padded = UnsafeMutablePointer<UInt8>.allocate(capacity: w.paddedLength)
        defer { padded.deallocate() }
        padded.initialize(repeating: 0, count: w.paddedLength)
        padded.update(from: x, count: w.k)
        multiply(w, padded: padded, y: y, threads: threads, backend: backend)
    }

    /// The same on x already in a buffer of `paddedLength` bytes, zero past k (the engine's
    /// per-worker copy; only the AVX2 8-bit kernel allocates, x as Int16). `backend` picks the kernel (tests); by default
    /// the engine's: VNNI, AVX2 (gemv_avx2.c) or the plain reference.
    public static func multiply(_ w: Weights, padded: UnsafePointer<UInt8>, y: UnsafeMutablePointer<Int32>, threads: Int,
                                backend: IGEMM.Backend? = nil) {
        let kernel = (backend ?? .automatic).resolved
        guard kernel == .vnni || kernel == .avx2 else {
            w.data.withUnsafeBufferPointer { d in reference(w, data: d.baseAddress!, x: padded, y: y) }
            return
        }
        var sum = 0
        for p in 0..<w.k { sum += Int(padded[p]) }
        let correction = Int32(truncatingIfNeeded: w.offset * sum)
        let workers = max(1, min(threads, w.n / 64))
        let rows = (w.n + workers - 1) / workers
        // The AVX2 s8 kernel multiplies x as Int16 (vpmaddwd): widened once here for all rows.
        let wide = kernel == .avx2 && w.bits == 8 ? UnsafeMutablePointer<Int16>.allocate(capacity: w.paddedLength) : nil
        defer { wide?.deallocate() }
        if let wide { IGEMM.widenCodes(padded, count: w.paddedLength, flip: 0, into: wide) }
        let (blocks, ldw) = (Int64(w.blocks), Int64(w.blocks * 64))
        w.data.withUnsafeBufferPointer { d in
            let base = d.baseAddress!
            Parallel.forEach(workers, threads: workers) { t, _ in
                let (j0, j1) = (Int64(t * rows), Int64(min(w.n, (t + 1) * rows)))
                guard j0 < j1 else { return }
                switch (w.bits, kernel) {
                case (8, .vnni): base.withMemoryRebound(to: Int8.self, capacity: w.data.count) {
                    mpq_gemv_s8_vnni(j0, j1, blocks, padded, $0, ldw, y)
                }
                case (8, _): base.withMemoryRebound(to: Int8.self, capacity: w.data.count) {
                    mpq_gemv_s8_avx2(j0, j1, blocks, wide!, $0, ldw, y)
                }
                case (4, .vnni): mpq_gemv_u4_vnni(j0, j1, blocks, padded, base, ldw, y)
                case (4, _): mpq_gemv_u4_avx2(j0, j1, blocks, padded, base, ldw, y)
                case (_, .vnni): mpq_gemv_u2_vnni(j0, j1, blocks, padded, base, ldw, y)
                default: mpq_gemv_u2_avx2(j0, j1, blocks, padded, base, ldw, y)
                }
            }
        }
        if correction != 0 { for j in 0..<w.n { y[j] &-= correction } }
    }

    /// The plain product on the packed layout, decoding each code back from its block.
    public static func reference(_ w: Weights, data: UnsafePointer<UInt8>, x: UnsafePointer<UInt8>, y: UnsafeMutablePointer<Int32>) {
        let mask = (1 << w.bits) - 1
        for j in 0..<w.n {
            var s = 0
            for p in 0..<w.k {
                let (b, local) = (p / w.perBlock, p % w.perBlock)
                let byte = data[j * w.blocks * 64 + b * 64 + local % 64]
                let code = w.bits == 8 ? Int(Int8(bitPattern: byte)) : (Int(byte) >> ((local / 64) * w.bits)) & mask - w.offset
                s += Int(x[p]) * code
            }
            y[j] = Int32(truncatingIfNeeded: s)
        }
    }
}
