import Foundation
import Tensors

extension Model {
    /// A copy whose batch norms' running mean and variance are measured anew on `images`: the
    /// network runs once over them in training mode — every batch norm normalising with these
    /// images' own statistics, so each one after it sees what it will see — and each keeps the
    /// mean and unbiased variance of its input over images and pixels. A pruned network needs
    /// this before it is judged without fine-tuning (once-for-all recalibrates every sub-network
    /// so): the layer reading a pruned one lost inputs, and its batch norm's statistics no
    /// longer describe its output. Images without labels; at least two.
    public func recalibratingBatchNorm(on images: Tensor) throws -> Model {
        guard images.shape.first ?? 0 >= 2 else { throw NetworkError("batch norm recalibration: expected at least 2 images, found \(images.shape.first ?? 0)") }
        let m = copy()
        var statistics: [(mean: String, variance: String, values: (Tensor, Tensor))] = []
        var failure: NetworkError? = nil
        _ = try m.run(images, training: true, observer: { index, inputs in
            guard case .batchNorm = m.nodes[index].op, let x = inputs[0], x.rank >= 2 else { return }
            let n = x.shape[0], c = x.shape[1], pixels = x.count / max(1, n * c)
            guard n * pixels >= 2 else { failure = NetworkError("batch norm recalibration: node '\(m.nodes[index].name)' sees one value per channel"); return }
            var mean = [Float](repeating: 0, count: c), variance = mean
            x.withUnsafeScalars { v in
                for ch in 0..<c {
                    var s = 0.0, s2 = 0.0
                    for i in 0..<n {
                        let base = (i * c + ch) * pixels
                        for p in 0..<pixels { let a = Double(v[base + p]); s += a; s2 += a * a }
                    }
                    let count = Double(n * pixels), mu = s / count
                    mean[ch] = Float(mu)
                    variance[ch] = Float(max(0, (s2 - count * mu * mu) / (count - 1)))
                }
            }
            let node = m.nodes[index]
            statistics.append((node.inputs[3], node.inputs[4], (Tensor(checkedShape: [c], scalars: mean), Tensor(checkedShape: [c], scalars: variance))))
        })
        if let failure { throw failure }
        for s in statistics {
            if m.buffers[s.mean] != nil { m.buffers[s.mean] = s.values.0 }
            if m.buffers[s.variance] != nil { m.buffers[s.variance] = s.values.1 }
        }
        return m
    }
}
