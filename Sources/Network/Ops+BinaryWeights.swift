import Foundation
import Tensors

/// XNOR-Net's weight binarization for training (Rastegari et al., 2016; ../shared/METHODS.md §8):
/// Ŵ = α_c·sign(W) per output channel c (dimension 0), α_c = mean|W_c|, sign(0) = +1.
/// Backward, the derivative of α_c·sign(W) with sign's clipped straight-through estimator
/// (∂sign(w)/∂w = 1 where |w| ≤ 1): ∂L/∂W_i = α_c·g_i·[|W_i| ≤ 1] + sign(W_i)/n·Σ_j g_j·sign(W_j),
/// n the channel's weights. A channel of zeros has α = 0 and binarizes to 0 (a defined result);
/// non-finite weights are an error naming the channel.
enum BinaryWeightsOp {
    static func forward(_ w: Tensor, node: String) throws -> Tensor {
        guard w.rank >= 1, w.shape[0] > 0 else { throw NetworkError("node '\(node)' (BinaryWeights): expected a weight with output channels, found shape \(w.shape)") }
        let channels = w.shape[0], n = w.count / channels
        var out = [Float](repeating: 0, count: w.count)
        try w.withUnsafeScalars { v in
            for c in 0..<channels {
                let range = (c * n)..<((c + 1) * n)
                var sum: Float = 0
                for i in range { sum += abs(v[i]) }
                guard sum.isFinite else { throw NetworkError("node '\(node)' (BinaryWeights): output channel \(c) holds non-finite weights") }
                let alpha = n > 0 ? sum / Float(n) : 0
                for i in range { out[i] = v[i] >= 0 ? alpha : -alpha }
            }
        }
        return Tensor(checkedShape: w.shape, scalars: out)
    }

    static func backward(_ w: Tensor, _ dy: Tensor) -> Tensor {
        let channels = max(w.shape.first ?? 1, 1), n = w.count / channels
        var dw = [Float](repeating: 0, count: w.count)
        w.withUnsafeScalars { v in
            dy.withUnsafeScalars { g in
                for c in 0..<channels {
                    let range = (c * n)..<((c + 1) * n)
                    var sum: Float = 0, signed: Float = 0
                    for i in range { sum += abs(v[i]); signed += v[i] >= 0 ? g[i] : -g[i] }
                    let alpha = n > 0 ? sum / Float(n) : 0, mean = n > 0 ? signed / Float(n) : 0
                    for i in range {
                        dw[i] = (abs(v[i]) <= 1 ? alpha * g[i] : 0) + (v[i] >= 0 ? mean : -mean)
                    }
                }
            }
        }
        return Tensor(checkedShape: w.shape, scalars: dw)
    }
}
