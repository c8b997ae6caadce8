import Kernels
import Tensors

/// Inference through a linear layer whose weight is a parameter: the weight is packed for the
/// GEMM once (`SGEMM.PackedB`) and kept until the model changes, so a batch pays neither the
/// packing nor, on several threads, a barrier per K slice. (Training and traced runs keep the
/// plain product: there the weights change every step.)
extension Model {
    /// α·A·op(B) + β·C (C a vector of the layer's width, or absent), through a ReLU when `relu`,
    /// for a Gemm node at inference when B is a rank-2 parameter and A a rank-2 value not
    /// transposed; nil otherwise (the caller takes the general path). `finite`: the GEMM saw every
    /// value finite before the ReLU, so A holds no NaN or infinity (`SGEMM.multiply(packed:)`).
    func packedLinear(_ node: Node, _ at: GemmAttributes, _ a: Tensor, bias c: Tensor?, relu: Bool) throws -> (output: Tensor, finite: Bool)? {
        guard !at.transA, a.rank == 2, node.inputs.count >= 2, let packed = packedWeight(node.inputs[1], transposed: at.transB),
              a.shape[1] == packed.k else { return nil }
        let m = a.shape[0], n = packed.n
        var bias: [Float]? = nil
        if let c, at.beta != 0 {
            guard c.rank == 1, c.count == n else { return nil }
            bias = at.beta == 1 ? c.scalars : c.scalars.map { $0 * at.beta }
        }
        var finite = false
        let out = [Float](unsafeUninitializedCapacity: m * n) { cp, count in
            a.withUnsafeScalars { ap in
                guard let ab = ap.baseAddress, let cb = cp.baseAddress else { return }
                if let bias {
                    finite = bias.withUnsafeBufferPointer { SGEMM.multiply(m: m, alpha: at.alpha, a: ab, lda: packed.k, packed: packed, c: cb, ldc: n, bias: $0.baseAddress, relu: relu) }
                } else {
                    finite = SGEMM.multiply(m: m, alpha: at.alpha, a: ab, lda: packed.k, packed: packed, c: cb, ldc: n, relu: relu)
                }
            }
            count = m * n
        }
        return (Tensor(checkedShape: [m, n], scalars: out), finite)
    }

    /// The parameter `name` (rank 2, used as op(B)) packed for the GEMM, or nil when it is not a
    /// rank-2 parameter. Packed on first use in this generation of the model.
    func packedWeight(_ name: String, transposed: Bool) -> SGEMM.PackedB? {
        guard let w = parameters[name], w.rank == 2, w.count > 0 else { return nil }
        let key = transposed ? name + "ᵀ" : name
        packedLock.lock(); defer { packedLock.unlock() }
        if packedCache.generation != generation { packedCache = (generation, [:]) }
        if let p = packedCache.weights[key] { return p }
        let (k, n) = transposed ? (w.shape[1], w.shape[0]) : (w.shape[0], w.shape[1])
        let p = w.withUnsafeScalars { SGEMM.PackedB(k: k, n: n, b: $0.baseAddress!, ldb: w.shape[1], transB: transposed) }
        packedCache.weights[key] = p
        return p
    }
}
