import Foundation
import Tensors

/// Parameter update rules. Weight decay is L2 added to the gradient (PyTorch's SGD and Adam).
public enum Optimizer: Sendable, Equatable {
    case sgd(momentum: Float = 0.9, nesterov: Bool = false, weightDecay: Float = 0)
    case adam(beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0)

    var weightDecay: Float {
        switch self { case .sgd(_, _, let wd), .adam(_, _, _, let wd): wd }
    }
}

/// Learning rate as a function of the step (0-based) out of `total`.
public enum Schedule: Sendable, Equatable {
    case constant(Float)
    /// Cosine annealing from `peak` to 0.
    case cosine(peak: Float)
    /// One-cycle (PyTorch's OneCycleLR, cosine): warm up from peak/25 to `peak` over the first
    /// `warmup` fraction of steps, then anneal to peak/(25·10⁴).
    case oneCycle(peak: Float, warmup: Float = 0.3)

    public func rate(step: Int, total: Int) -> Float {
        let t = Float(step) / Float(max(total, 1))
        switch self {
        case .constant(let lr): return lr
        case .cosine(let peak): return peak * 0.5 * (1 + cos(.pi * min(t, 1)))
        case .oneCycle(let peak, let warmup):
            let start = peak / 25, end = start / 1e4
            func anneal(_ a: Float, _ b: Float, _ f: Float) -> Float { b + (a - b) * 0.5 * (1 + cos(.pi * f)) }
            if t < warmup { return anneal(start, peak, t / warmup) }
            return anneal(peak, end, min(1, (t - warmup) / max(1 - warmup, 1e-6)))
        }
    }
}

/// Optimiser state (momentum buffers, Adam moments) and the update step.
public struct OptimizerState {
    public let optimizer: Optimizer
    var first: [String: [Float]] = [:]
    var second: [String: [Float]] = [:]
    var steps = 0

    public init(_ optimizer: Optimizer) { self.optimizer = optimizer }

    /// The moments and the step count as named tensors (`prefix/first/<parameter>`,
    /// `prefix/second/<parameter>`, `prefix/steps`), for a checkpoint.
    public func tensors(prefix: String) -> [(name: String, tensor: Tensor)] {
        first.keys.sorted().map { ("\(prefix)/first/\($0)", Tensor(checkedShape: [first[$0]!.count], scalars: first[$0]!)) }
            + second.keys.sorted().map { ("\(prefix)/second/\($0)", Tensor(checkedShape: [second[$0]!.count], scalars: second[$0]!)) }
            + [("\(prefix)/steps", Tensor([Float(steps)]))]
    }

    /// The state `tensors(prefix:)` wrote; moments of parameters `model` lacks or of another size are refused.
    public init(_ optimizer: Optimizer, tensors: [String: Tensor], prefix: String, model: Model) throws {
        self.optimizer = optimizer
        for (name, t) in tensors where name.hasPrefix(prefix + "/") {
            let rest = name.dropFirst(prefix.count + 1)
            if rest == "steps" { steps = Int(t.scalars.first ?? 0); continue }
            let (kind, parameter) = rest.hasPrefix("first/") ? ("first", String(rest.dropFirst(6))) : ("second", String(rest.dropFirst(7)))
            guard let p = model.parameters[parameter], p.count == t.count else {
                throw NetworkError("checkpoint: optimizer moment '\(parameter)' does not match the model's parameters")
            }
            if kind == "first" { first[parameter] = t.scalars } else { second[parameter] = t.scalars }
        }
    }

    /// Applies one update with learning rate `lr` to every parameter (or those in `only`).
    /// Non-finite gradients are an error, not an update.
    public mutating func step(_ model: Model, gradients: [String: Tensor], lr: Float, only: Set<String>? = nil) throws {
        steps += 1
        for name in model.parameterOrder where only?.contains(name) ?? true {
            guard let g = gradients[name], model.parameters[name] != nil else { continue }
            guard !g.hasNonFinite else { throw NetworkError("training diverged: the gradient of '\(name)' is not finite (lower the learning rate)") }
            // The parameter and its moments are taken out of their dictionaries while they are
            // updated, so each is the only reference to its storage and is written in place (a copy
            // left behind made every step copy them: 64 MB a 4096² layer, a quarter of an MLP epoch).
            var p = model.parameters.removeValue(forKey: name)!
            let wd = optimizer.weightDecay
            var m = first.removeValue(forKey: name) ?? [Float](repeating: 0, count: p.count)
            switch optimizer {
            case let .sgd(momentum, nesterov, _):
                p.withUnsafeMutableScalars { w in
                    g.withUnsafeScalars { gp in
                        m.withUnsafeMutableBufferPointer { mp in
                            for i in 0..<w.count {
                                let d = gp[i] + wd * w[i]
                                mp[i] = momentum * mp[i] + d
                                w[i] -= lr * (nesterov ? d + momentum * mp[i] : mp[i])
                            }
                        }
                    }
                }
            case let .adam(b1, b2, eps, _):
                var v = second.removeValue(forKey: name) ?? [Float](repeating: 0, count: p.count)
                let c1 = 1 - pow(b1, Float(steps)), c2 = 1 - pow(b2, Float(steps))
                p.withUnsafeMutableScalars { w in
                    g.withUnsafeScalars { gp in
                        m.withUnsafeMutableBufferPointer { mp in
                            v.withUnsafeMutableBufferPointer { vp in
                                for i in 0..<w.count {
                                    let d = gp[i] + wd * w[i]
                                    mp[i] = b1 * mp[i] + (1 - b1) * d
                                    vp[i] = b2 * vp[i] + (1 - b2) * d * d
                                    w[i] -= lr * (mp[i] / c1) / ((vp[i] / c2).squareRoot() + eps)
                                }
                            }
                        }
                    }
                }
                second[name] = v
            }
            first[name] = m
            model.parameters[name] = p
        }
    }
}
