import Foundation
import Network
import Quantization
import Runtime
import Tensors

/// What the differentiable searches (EdMIPS, HMQ) share once the bits are chosen: fine-tuning
/// the search model with its logits fixed (the method's own quantizers at the chosen widths),
/// and carrying the trained weights back into the original graph.
enum SearchTraining {
    /// Fine-tunes `search` for `epochs` (SGD Nesterov, one-cycle at `learningRate`, seeded),
    /// `frozen` left alone; one progress line per epoch with the validation accuracy. Returns
    /// whether Ctrl-C ended it (the interrupt is then cleared: what was learned is kept).
    static func fineTune(_ search: Model, frozen: Set<String>, epochs: Int, batchSize: Int, learningRate: Float, seed: UInt64,
                         train: Dataset, validation: Dataset, method: String, checkpoint: String?, progress: (String) -> Void) throws -> Bool {
        guard epochs > 0 else { return false }
        var tune = TrainingOptions()
        tune.epochs = epochs; tune.batchSize = batchSize; tune.seed = seed
        tune.checkpoint = checkpoint.map(fineTuneCheckpoint)
        tune.schedule = .oneCycle(peak: learningRate)
        tune.frozen = frozen
        var epochStart = Date()
        let r = try search.train(on: train, options: tune) { p in
            guard p.endOfEpoch else { return }
            let v = (try? search.accuracy(on: validation)) ?? .nan
            let s = Date().timeIntervalSince(epochStart)
            progress("\(method) fine-tune " + String(format: "%d/%d  loss %.4f  train %.4f  validation %.4f  %.0f s, about %.0f s left",
                            p.epoch, p.epochs, p.loss, p.accuracy, v, s, Double(p.epochs - p.epoch) * s))
            epochStart = Date()
        }
        if r.interrupted { Interrupt.clear() }
        return r.interrupted
    }

    /// The fine-tuning's checkpoint beside the search's: `x.npz` → `x-finetune.npz`.
    static func fineTuneCheckpoint(_ path: String) -> String {
        (path.hasSuffix(".npz") ? String(path.dropLast(4)) : path) + "-finetune.npz"
    }

    /// `model` with the search model's weights and buffers of the same names (batch norm as trained).
    static func weights(of search: Model, into model: Model) -> Model {
        let tuned = model.copy()
        for name in model.parameterOrder { tuned.parameters[name] = search.parameters[name] }
        for name in model.buffers.keys { tuned.buffers[name] = search.buffers[name] }
        return tuned
    }

    /// The searched layers: every conv/linear layer but the first and last.
    static func innerLayers(_ model: Model, method: String) throws -> [Layer] {
        let inner = model.layers.enumerated().filter { $0.offset > 0 && $0.offset < model.layers.count - 1 }.map(\.element)
        guard !inner.isEmpty else { throw MixedPrecisionError("\(method): model '\(model.name)' has no layer between its first and last to search") }
        return inner
    }

    /// Checks a policy handed to a search's fine-tuning: each searched layer by `fits` (nil, or
    /// what it must be), every other layer (an end) at `ends` bits for weights and input, or float.
    static func check(_ policy: Policy, searched: Set<String>, ends: Int?, method: String, fits: (Policy.Entry) -> String?) throws {
        for e in policy.entries {
            if searched.contains(e.layer.name) {
                if let need = fits(e) { throw MixedPrecisionError("\(method): layer '\(e.layer.name)' must have \(need)") }
            } else if e.weight?.uniformBits != ends || e.activation?.bits != ends {
                throw MixedPrecisionError("\(method): layer '\(e.layer.name)' is an end; with ends \(ends.map(String.init) ?? "float") it must be \(ends.map { "at \($0) bits (weights and input)" } ?? "float")")
            }
        }
    }

    /// Checks the splits and returns the calibration images (the first 256 of `train`).
    static func calibration(_ train: Dataset, _ validation: Dataset, method: String) throws -> Tensor {
        guard train.count > 0, validation.count > 0 else {
            throw MixedPrecisionError("\(method): the training and validation splits must hold examples (\(train.count) and \(validation.count))")
        }
        return try train.images.slice(0..<min(train.count, 256))
    }
}
