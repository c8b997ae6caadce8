import Foundation
import Tensors

/// Mean softmax cross-entropy over a batch of logits [N, C], computed stably (log-sum-exp).
public enum CrossEntropy {
    /// The loss and its gradient with respect to the logits.
    public static func lossAndGradient(logits: Tensor, labels: [Int]) throws -> (loss: Double, gradient: Tensor) {
        guard logits.rank == 2, logits.shape[0] == labels.count else {
            throw NetworkError("cross-entropy: expected logits [\(labels.count), C], found \(logits.shape)")
        }
        let (n, c) = (logits.shape[0], logits.shape[1])
        guard labels.allSatisfy({ $0 >= 0 && $0 < c }) else { throw NetworkError("cross-entropy: labels must lie in 0..<\(c)") }
        var grad = [Float](repeating: 0, count: n * c)
        var total = 0.0
        logits.withUnsafeScalars { z in
            for i in 0..<n {
                var m = -Float.infinity
                for k in 0..<c { m = max(m, z[i * c + k]) }
                var s = 0.0
                for k in 0..<c { s += exp(Double(z[i * c + k] - m)) }
                let logSum = Double(m) + log(s)
                total += logSum - Double(z[i * c + labels[i]])
                for k in 0..<c {
                    let p = exp(Double(z[i * c + k]) - logSum)
                    grad[i * c + k] = Float((p - (k == labels[i] ? 1 : 0)) / Double(n))
                }
            }
        }
        return (total / Double(n), Tensor(checkedShape: [n, c], scalars: grad))
    }
}
