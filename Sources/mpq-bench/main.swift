import Kernels
import COpenBLAS
import Foundation
let n = Int(CommandLine.arguments.dropFirst().first ?? "1024")!
let a = UnsafeMutablePointer<Float>.allocate(capacity: n*n); let b = UnsafeMutablePointer<Float>.allocate(capacity: n*n); let c = UnsafeMutablePointer<Float>.allocate(capacity: n*n)
for i in 0..<n*n { a[i] = Float(i % 7) - 3; b[i] = Float(i % 5) - 2 }
for t in [1, 2] {
  for _ in 0..<2 { SGEMM.multiply(m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n, c: c, ldc: n, threads: t) }
  var best = 1e9
  for _ in 0..<5 { let t0 = Date(); SGEMM.multiply(m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n, c: c, ldc: n, threads: t); best = min(best, Date().timeIntervalSince(t0)) }
  openblas_set_num_threads(Int32(t))
  var bb = 1e9
  for _ in 0..<5 { let t0 = Date(); cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1, a, Int32(n), b, Int32(n), 0, c, Int32(n)); bb = min(bb, Date().timeIntervalSince(t0)) }
  let f = 2.0 * Double(n*n*n)
  print("t\(t) ours \(f/best/1e9) blas \(f/bb/1e9)")
}
