import CKernels

/// The integer engine's entry step: floats (an image's plane) to activation codes at a scale,
/// x / scale in Double rounded half away from zero, clamped to lo…hi, each code's low byte
/// stored `stride` bytes after the last (a channels-last slot's channel). `CKernels/input_codes.c`
/// runs it; `reference` is the plain loop it is tested against.
public enum InputCodes {
    /// Codes of src[0..<count] to dst[i·stride]. The values must be finite.
    public static func plane(_ src: UnsafePointer<Float>, count: Int, scale: Double, lo: Int32, hi: Int32,
                             into dst: UnsafeMutablePointer<UInt8>, stride: Int) {
        mpq_input_codes(src, Int64(count), scale, lo, hi, dst, Int64(stride))
    }

    /// The plain loop.
    public static func reference(_ src: UnsafePointer<Float>, count: Int, scale: Double, lo: Int32, hi: Int32,
                                 into dst: UnsafeMutablePointer<UInt8>, stride: Int) {
        for i in 0..<count {
            let q = (Double(src[i]) / scale).rounded(.toNearestOrAwayFromZero)
            dst[i * stride] = UInt8(truncatingIfNeeded: Int32(min(max(q, Double(lo)), Double(hi))))
        }
    }
}
