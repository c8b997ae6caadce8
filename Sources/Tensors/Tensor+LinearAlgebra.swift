import Kernels
import Runtime

extension Tensor {
    /// Matrix product through `SGEMM`. Shapes [m, k] @ [k, n] → [m, n]; a rank-1 left operand
    /// is a row vector and a rank-1 right operand a column vector (the result drops that axis).
    public func matmul(_ other: Tensor, threads: Int = Parallel.defaultThreads) throws -> Tensor {
        guard (1...2).contains(rank), (1...2).contains(other.rank) else {
            throw TensorError.shapeMismatch(operation: "matmul", expected: "rank-1 or rank-2 operands",
                                            found: "\(shape) and \(other.shape)")
        }
        let (m, k) = rank == 2 ? (shape[0], shape[1]) : (1, shape[0])
        let (k2, n) = other.rank == 2 ? (other.shape[0], other.shape[1]) : (other.shape[0], 1)
        guard k == k2 else {
            throw TensorError.shapeMismatch(operation: "matmul", expected: "inner dimensions to agree",
                                            found: "\(shape) @ \(other.shape)")
        }
        let count = try Tensor.elementCount(of: [m, n])
        var out = [Float](repeating: 0, count: count)
        SGEMM.multiply(m: m, n: n, k: k, a: scalars, lda: Swift.max(k, 1), b: other.scalars, ldb: Swift.max(n, 1),
                       c: &out, ldc: Swift.max(n, 1), threads: threads)
        var s: [Int] = []
        if rank == 2 { s.append(m) }
        if other.rank == 2 { s.append(n) }
        return Tensor(uncheckedShape: s, scalars: out)
    }

    /// The transpose of a rank-2 tensor.
    public func transposed() throws -> Tensor {
        guard rank == 2 else {
            throw TensorError.shapeMismatch(operation: "transpose", expected: "a rank-2 tensor", found: "\(shape)")
        }
        let (r, c) = (shape[0], shape[1])
        var out = [Float](repeating: 0, count: count)
        for i in 0..<r { for j in 0..<c { out[j * r + i] = scalars[i * c + j] } }
        return Tensor(uncheckedShape: [c, r], scalars: out)
    }
}
