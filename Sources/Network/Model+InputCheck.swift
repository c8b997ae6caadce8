import Tensors

/// The check that an input holds no NaN or infinite value, at inference through the graph, left
/// to the first linear layer when it can make it: a NaN or infinite element of a row of A makes
/// every sum of that row NaN or infinite, and the GEMM's in-place kernel looks at each sum as it
/// stores it (`SGEMM.multiply(packed:)` returns what it saw). A fully connected net then reads
/// its input once, not twice: on an MLP at batch 256 the separate pass was 3% of the batch.
///
/// Until the check is made only views of the input (flatten, reshape) may run; any other node
/// reading anything first has the input checked by a pass over it, as does a linear layer whose
/// sums were not all finite (an overflow is one: the pass decides) or that took another path.
struct InputCheck {
    let input: Tensor
    let model: String
    /// Whether the check is still owed.
    private(set) var pending: Bool
    /// Values that are the input under another shape (all of its elements).
    private var views: Set<String>

    init(_ input: Tensor, name: String, model: String, pending: Bool) {
        self.input = input; self.model = model; self.pending = pending; views = [name]
    }

    /// Before `node` runs: checks the input unless the node is a view of it or a linear layer
    /// reading all of it (which reports through `linear`).
    mutating func before(_ node: Node, _ ins: [Tensor?]) throws {
        guard pending, let first = node.inputs.first else { return }
        let rest = node.inputs.dropFirst()
        if views.contains(first), !rest.contains(where: views.contains), let a = ins.first ?? nil, a.count == input.count {
            switch node.op {
            case .flatten, .reshape:
                views.formUnion(node.outputs)
                return
            case .gemm:
                return
            default: break
            }
        }
        try check()
    }

    /// A linear layer that `before` let through ran: `finite` is what its kernel saw.
    mutating func linear(finite: Bool) throws {
        guard pending else { return }
        if finite { pending = false } else { try check() }
    }

    /// Checks now if still owed: before a linear layer's general path, and at the end.
    mutating func check() throws {
        guard pending else { return }
        pending = false
        if input.hasNonFinite { throw NetworkError("model '\(model)': the input holds NaN or infinite values") }
    }
}
