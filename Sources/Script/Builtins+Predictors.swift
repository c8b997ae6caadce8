import Foundation
import MixedPrecision
import Network
import Quantization

/// A trained APQ accuracy predictor at the prompt.
public final class PredictorObject: ScriptObject, @unchecked Sendable {
    public let predictor: AccuracyMLP
    public let trainedOn: Int
    init(_ p: AccuracyMLP, trainedOn: Int) { predictor = p; self.trainedOn = trainedOn }
    public var typeName: String { "Predictor" }
    public var fieldNames: [String] { ["layers", "choices", "samples", "model"] }
    public func field(_ name: String) -> Value? {
        switch name {
        case "layers": return .number(Double(predictor.layers))
        case "choices": return .list(predictor.choices.map { .number(Double($0)) })
        case "samples": return .number(Double(trainedOn))
        case "model": return .model(predictor.network)
        default: return nil
        }
    }
    public var summary: String { "Predictor(MLP over \(predictor.layers) layers × \(predictor.choices.count) widths, \(trainedOn) samples)" }
    public var text: String { summary }
}

/// The APQ builtins: measured samples, the MLP predictor, its predictions and their agreement.
extension Builtins {
    /// Widths per layer from a List of Lists of numbers, of sample Records ({bits, …}) or of Policies.
    static func policyBits(_ v: Value, _ args: Arguments, what: String) throws -> [[Int]] {
        guard case .list(let items) = v else { throw args.fail("\(what): expected a List of policies (Lists of widths, samples or Policies), got \(v.typeName)") }
        return try items.map { item in
            var bits = item
            if case .record(let r) = item, let b = r["bits"] { bits = b }
            if case .object(let o as PolicyObject) = item {
                return try o.policy.entries.map { e in
                    guard let b = e.weight?.uniformBits else { throw args.fail("\(what): a policy's layer '\(e.layer.name)' has no single width") }
                    return b
                }
            }
            guard case .list(let xs) = bits else { throw args.fail("\(what): expected a List of widths per policy, found \(item.shown)") }
            return try xs.map { x in
                guard case .number(let n) = x, let b = Convert.whole(n, in: 1...8) else { throw args.fail("\(what): widths must be whole numbers in 1…8, found \(x.shown)") }
                return b
            }
        }
    }

    static func numbers(_ v: Value, _ args: Arguments, what: String) throws -> [Double] {
        guard case .list(let items) = v else { throw args.fail("\(what): expected a List of numbers, got \(v.typeName)") }
        return try items.map { item in
            if case .number(let x) = item { return x }
            if case .record(let r) = item, case .number(let x)? = r["accuracy"] { return x }
            throw args.fail("\(what): expected numbers (or samples with an accuracy), found \(item.shown)")
        }
    }

    static let predictors: [Builtin] = [
        Builtin("samples", category: "search",
                [.required("model", .model), .required("data", .dataset), .optional("count", .integer, .number(100)),
                 .optional("bits", .list, .list([2, 3, 4, 5, 6, 8].map { .number(Double($0)) })), .optional("seed", .integer, .number(0)),
                 .optional("policies", .list), .optional("cache", .string)],
                returns: "List",
                summary: "Measured policies for APQ's predictor (METHODS.md §4): `count` random weight-only policies (each layer's width drawn uniformly from `bits`, seeded) — or the given `policies` (Lists of widths) — quantized with the reference per-channel quantizer and evaluated on `data` (a validation split carved from the training set, never the test set). cache: a .json file keyed by the model's content and the split; policies already in it are not measured again, new ones are added after each evaluation (atomically), so an interrupted run resumes. Ctrl-C stops between policies and returns those measured. Returns a List of {bits, accuracy}.",
                examples: [BuiltinExample("s = samples(zoo(\"mlp\"), fashion_mnist(split: \"train\", limit: 64), count: 3, seed: 1); [len(s), len(s[0].bits)]", "[3, 3]")]) { args, interp in
            let m = try args.model("model"), data = try args.dataset("data")
            let policies: [[Int]]
            if case .list = args["policies"] { policies = try policyBits(args["policies"], args, what: "policies") }
            else { policies = try PolicySamples.random(m, count: try args.int("count"), bits: try args.bitsList("bits"), seed: UInt64(truncatingIfNeeded: try args.int("seed"))) }
            do {
                let r = try PolicySamples(cache: try args.optionalString("cache")).measure(m, validation: data, policies: policies, progress: args.progress(interp, "samples"))
                return .list(r.samples.map { s in .record(Record([("bits", .list(s.bits.map { .number(Double($0)) })), ("accuracy", .number(s.accuracy))])) })
            } catch let e as MixedPrecisionError { throw args.fail(e, method: "samples") }
        },
        Builtin("predictor", category: "search",
                [.required("samples", .list), .optional("bits", .list), .optional("epochs", .integer, .number(300)),
                 .optional("hidden", .integer, .number(400)), .optional("lr", .number, .number(0.001)), .optional("batch", .integer, .number(64)),
                 .optional("seed", .integer, .number(0))],
                returns: "Predictor",
                summary: "APQ's accuracy predictor (METHODS.md §4): an MLP input → hidden → hidden → hidden → 1 with ReLU over the one-hot encoding of each layer's width, trained on measured samples ({bits, accuracy}, from samples()) with Adam (cosine decay from lr) on the mean squared error of the standardised accuracy. bits: the candidate widths (default: those the samples use). predict(p, policies) applies it; agreement(predicted, measured) scores it on held-out samples. Not yet: the transfer recipe and pruning.",
                examples: [BuiltinExample("p = predictor([{bits: [2, 4], accuracy: 0.5}, {bits: [4, 4], accuracy: 0.8}, {bits: [4, 2], accuracy: 0.6}], epochs: 50, hidden: 8); predict(p, [[4, 4]])[0] > predict(p, [[2, 4]])[0]", "true")]) { args, _ in
            let bits = try policyBits(args["samples"], args, what: "samples"), accuracies = try numbers(args["samples"], args, what: "samples")
            let samples = zip(bits, accuracies).map { PolicySamples.Sample(bits: $0, accuracy: $1) }
            let choices: [Int] = try { if case .list = args["bits"] { return try args.bitsList("bits") }; return Array(Set(bits.flatMap { $0 })).sorted() }()
            var o = AccuracyMLP.Options()
            o.epochs = try args.int("epochs"); o.hidden = try args.int("hidden"); o.learningRate = Float(try args.number("lr"))
            o.batchSize = try args.int("batch"); o.seed = UInt64(truncatingIfNeeded: try args.int("seed"))
            do { return .object(PredictorObject(try AccuracyMLP.train(samples, choices: choices, options: o), trainedOn: samples.count)) }
            catch let e as MixedPrecisionError { throw args.fail(e, method: "predictor") }
        },
        Builtin("agreement", category: "search", [.required("predicted", .list), .required("measured", .list)], returns: "Record",
                summary: "How well predictions rank and match measurements: Kendall's τ (τ-b), Spearman's ρ and the mean absolute error. measured may be samples ({bits, accuracy}). Returns {tau, rho, mae, count}.",
                examples: [BuiltinExample("agreement([0.1, 0.2, 0.3], [0.15, 0.25, 0.2]).tau", "0.3333333333333333")]) { args, _ in
            let (p, m) = (try numbers(args["predicted"], args, what: "predicted"), try numbers(args["measured"], args, what: "measured"))
            guard p.count == m.count, p.count >= 2 else { throw args.fail("expected two Lists of the same length ≥ 2, found \(p.count) and \(m.count)") }
            let a = AccuracyMLP.agreement(predicted: p, measured: m)
            return .record(Record([("tau", .number(a.tau)), ("rho", .number(a.rho)), ("mae", .number(a.mae)), ("count", .number(Double(p.count)))]))
        },
    ]
}
