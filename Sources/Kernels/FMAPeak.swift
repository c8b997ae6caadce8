import CKernels
import Foundation
import Runtime

/// The machine's f32 multiply-add peak, measured rather than taken from a data sheet: every
/// thread runs chains of independent FMAs (512 bits wide where the CPU has AVX-512, else 256)
/// and nothing else, so the figure is what this CPU sustains at its current clock. Benchmarks
/// state their kernels' speed as a fraction of it.
public enum FMAPeak {
    /// Whether the measurement uses 512-bit FMAs.
    public static var wide: Bool { mpq_cpu_has_avx512f() == 1 }

    /// GFLOP/s over `threads` threads, the best of `repeats` runs of `iterations` rounds each.
    public static func measure(threads: Int, iterations: Int = 20_000_000, repeats: Int = 3) -> Double {
        let t = max(1, threads)
        var best = 0.0
        for _ in 0..<max(1, repeats) {
            var flops = [Int64](repeating: 0, count: t)
            var sinks = [Float](repeating: 0, count: t)
            let start = Date()
            flops.withUnsafeMutableBufferPointer { f in
                sinks.withUnsafeMutableBufferPointer { s in
                    Parallel.run(workers: t) { w in f[w] = mpq_fma_peak(Int64(iterations), wide ? 1 : 0, s.baseAddress! + w) }
                }
            }
            let seconds = Date().timeIntervalSince(start)
            best = max(best, Double(flops.reduce(0, +)) / seconds / 1e9)
        }
        return best
    }
}
