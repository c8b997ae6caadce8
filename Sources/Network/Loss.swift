import Foundation
import Tensors

/// Mean softmax cross-entropy over a batch of logits [N, C], computed stably (log-sum-exp),
/// with the pieces second-order methods need.
public struct CrossEntropy: Sendable {
    /// softmax of the logits, [N, C].
    public let probabilities: Tensor
    public let labels: [Int]
    public let loss: Double
    /// ∂loss/∂logits = (p − onehot)/N.
    public let gradient: Tensor

    public init(logits: Tensor, labels: [Int]) throws {
        (loss, gradient) = try Self.lossAndGradient(logits: logits, labels: labels)
        probabilities = try PointwiseOp.softmax(logits, axis: 1)
        self.labels = labels
    }

    /// softmax over the last axis of logits [N, C].
    public static func softmax(_ logits: Tensor) throws -> Tensor { try PointwiseOp.softmax(logits, axis: -1) }

    /// The loss Hessian (w.r.t. the logits) applied to a logit tangent ż:
    /// row n gets (diag(pₙ) − pₙpₙᵀ)·żₙ / N.
    public func hessianProduct(_ z: Tensor) -> Tensor {
        let (n, c) = (probabilities.shape[0], probabilities.shape[1])
        var out = [Float](repeating: 0, count: n * c)
        let inv = 1 / Float(n)
        for i in 0..<n {
            var dot: Float = 0
            for k in 0..<c { dot += probabilities.scalars[i * c + k] * z.scalars[i * c + k] }
            for k in 0..<c { out[i * c + k] = probabilities.scalars[i * c + k] * (z.scalars[i * c + k] - dot) * inv }
        }
        return Tensor(checkedShape: [n, c], scalars: out)
    }

    /// żᵀ·H·ż summed over the batch: (1/N)·Σₙ [Σₖ pₖżₖ² − (Σₖ pₖżₖ)²], in Double.
    public func quadraticForm(_ z: Tensor) -> Double {
        let (n, c) = (probabilities.shape[0], probabilities.shape[1])
        var total = 0.0
        for i in 0..<n {
            var m1 = 0.0, m2 = 0.0
            for k in 0..<c {
                let p = Double(probabilities.scalars[i * c + k]), zk = Double(z.scalars[i * c + k])
                m1 += p * zk; m2 += p * zk * zk
            }
            total += m2 - m1 * m1
        }
        return total / Double(n)
    }

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

/// Knowledge distillation (Hinton et al., 2015): the student's logits pulled toward a teacher's
/// softened distribution, L = T²·(1/N)·Σ_i KL(softmax(t_i/T) ‖ softmax(s_i/T)), whose gradient
/// with respect to the student's logits is T·(softmax(s/T) − softmax(t/T))/N (the T² keeps its
/// scale beside cross-entropy's as T changes).
public enum Distillation {
    public static func lossAndGradient(student: Tensor, teacher: Tensor, temperature: Double) throws -> (loss: Double, gradient: Tensor) {
        guard student.rank == 2, student.shape == teacher.shape else {
            throw NetworkError("distillation: the student's logits \(student.shape) and the teacher's \(teacher.shape) differ")
        }
        guard temperature > 0, temperature.isFinite else { throw NetworkError("distillation: the temperature must be positive, found \(temperature)") }
        let (n, c) = (student.shape[0], student.shape[1])
        var grad = [Float](repeating: 0, count: n * c)
        var total = 0.0
        /// log softmax(z/T) of row i.
        func logSoftmax(_ z: UnsafeBufferPointer<Float>, _ i: Int) -> [Double] {
            let row = (0..<c).map { Double(z[i * c + $0]) / temperature }
            let m = row.max() ?? 0
            let logSum = m + log(row.reduce(0) { $0 + exp($1 - m) })
            return row.map { $0 - logSum }
        }
        student.withUnsafeScalars { s in
            teacher.withUnsafeScalars { t in
                for i in 0..<n {
                    let (ls, lt) = (logSoftmax(s, i), logSoftmax(t, i))
                    for k in 0..<c {
                        let (ps, pt) = (exp(ls[k]), exp(lt[k]))
                        total += pt * (lt[k] - ls[k])
                        grad[i * c + k] = Float(temperature * (ps - pt) / Double(n))
                    }
                }
            }
        }
        return (temperature * temperature * total / Double(n), Tensor(checkedShape: [n, c], scalars: grad))
    }
}
