import CKernels

/// The smallest and largest of a buffer of floats in one pass, both NaN when the buffer is empty
/// or holds a NaN. With AVX2 the kernel of CKernels/extremes_avx2.c runs; `reference` is the plain
/// loop it is tested against.
public enum Extremes {
    public static func of(_ x: UnsafeBufferPointer<Float>) -> (min: Float, max: Float) {
        guard let base = x.baseAddress, !x.isEmpty else { return (.nan, .nan) }
        guard IGEMM.hasAVX2 else { return reference(x) }
        var lo: Float = 0, hi: Float = 0
        let nan = mpq_extremes_f32_avx2(base, Int64(x.count), &lo, &hi)
        return nan != 0 ? (.nan, .nan) : (lo, hi)
    }

    public static func reference(_ x: UnsafeBufferPointer<Float>) -> (min: Float, max: Float) {
        guard !x.isEmpty else { return (.nan, .nan) }
        var lo = Float.infinity, hi = -Float.infinity
        for v in x {
            if v.isNaN { return (.nan, .nan) }
            lo = Swift.min(lo, v); hi = Swift.max(hi, v)
        }
        return (lo, hi)
    }
}
