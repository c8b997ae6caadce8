import Foundation
import MixedPrecision
import Network
import Quantization
import Tensors

/// A trained accuracy predictor at the prompt: APQ's MLP (predictor()) or the divergence
/// predictor (divergence_predictor()).
public final class PredictorObject: ScriptObject, @unchecked Sendable {
    public let predictor: any PolicyPredictor
    /// Measured samples it was trained on (0: loaded from a file).
    public let trainedOn: Int
    init(_ p: any PolicyPredictor, trainedOn: Int) { predictor = p; self.trainedOn = trainedOn }
    public var typeName: String { "Predictor" }
    public var fieldNames: [String] { ["kind", "target", "layers", "choices", "samples", "model"] }
    public func field(_ name: String) -> Value? {
        switch name {
        case "kind": return .string(predictor is DivergencePredictor ? "divergence" : "mlp")
        case "target": return .string(predictor.target.rawValue)
        case "layers": return .number(Double(predictor.layers))
        case "choices": return .list(predictor.choices.map { .number(Double($0)) })
        case "samples": return .number(Double(trainedOn))
        case "model":
            if let p = predictor as? AccuracyMLP { return .model(p.network) }
            if let p = predictor as? DivergencePredictor { return .model(p.divergence.model) }
            return nil
        default: return nil
        }
    }
    public var summary: String {
        let from = trainedOn > 0 ? "\(trainedOn) samples" : "loaded from a file"
        if let p = predictor as? DivergencePredictor {
            return "Predictor(divergence on \(p.divergence.calibration.shape[0]) calibration images over \(p.layers) layers, curve fitted on \(from))"
        }
        let pruned = (predictor as? AccuracyMLP).map { $0.prunedLayers > 0 ? "\($0.prunedLayers) pruned layers × \($0.keepChoices.count) keep ratios + " : "" } ?? ""
        let target = predictor.target == .accuracy ? "" : ", predicting the output divergence"
        return "Predictor(MLP over \(pruned)\(predictor.layers) layers × \(predictor.choices.count) widths, \(from)\(target))"
    }
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

    /// Points of APQ's joint space from a List of policies: widths as policyBits reads them, keep
    /// ratios from a sample Record's `keep` (none otherwise).
    static func policyPoints(_ v: Value, _ args: Arguments, what: String) throws -> [Evolution.Point] {
        let bits = try policyBits(v, args, what: what)
        guard case .list(let items) = v else { return [] }
        return try zip(bits, items).map { b, item in
            guard case .record(let r) = item, let k = r["keep"] else { return Evolution.Point(bits: b) }
            if case .null = k { return Evolution.Point(bits: b) }
            guard case .list(let xs) = k else { throw args.fail("\(what): keep must be a List of ratios, found \(k.shown)") }
            return Evolution.Point(bits: b, keep: try xs.map { x in
                guard case .number(let r) = x, r.isFinite, r > 0, r <= 1 else { throw args.fail("\(what): keep ratios must lie in (0, 1], found \(x.shown)") }
                return r
            })
        }
    }

    /// A sample or candidate as a Record: {bits, keep (when pruned), …rest}.
    static func pointRecord(_ p: Evolution.Point, _ rest: [(String, Value)]) -> Value {
        var fields: [(String, Value)] = [("bits", .list(p.bits.map { .number(Double($0)) }))]
        if !p.keep.isEmpty { fields.append(("keep", .list(p.keep.map { .number($0) }))) }
        return .record(Record(fields + rest))
    }

    /// The layers `prune:` names (default: every prunable layer) when `keep:` ratios are given.
    static func prunedLayers(_ args: Arguments, model: Model) throws -> (names: [String], ratios: [Double])? {
        guard case .list(let xs) = args["keep"] else { return nil }
        let ratios = try xs.map { x in
            guard case .number(let r) = x, r.isFinite, r > 0, r <= 1 else { throw args.fail("keep: expected ratios in (0, 1], found \(x.shown)") }
            return r
        }
        guard !ratios.isEmpty else { throw args.fail("keep: expected at least one keep ratio") }
        var names = model.prunableLayers
        if case .list(let ns) = args["prune"] {
            names = try ns.map { n in
                guard case .string(let name) = n else { throw args.fail("prune: expected layer names, found \(n.shown)") }
                return name
            }
        }
        guard !names.isEmpty else { throw args.fail("keep: model '\(model.name)' has no layer that can be pruned alone") }
        return (names, Array(Set(ratios)).sorted())
    }

    static let pruningParameters: [BuiltinParameter] = [.optional("keep", .list), .optional("prune", .list)]

    /// Measured samples from a List of sample Records ({bits, keep?, accuracy, divergence?}).
    static func measuredSamples(_ v: Value, _ args: Arguments, what: String) throws -> [PolicySamples.Sample] {
        let points = try policyPoints(v, args, what: what), accuracies = try numbers(v, args, what: what)
        guard case .list(let items) = v else { return [] }
        return try zip(zip(points, accuracies), items).map { pa, item in
            var divergence: Double? = nil
            if case .record(let r) = item, let d = r["divergence"] {
                if case .null = d {} else {
                    guard case .number(let x) = d, x.isFinite, x >= 0 else { throw args.fail("\(what): a divergence must be a finite number ≥ 0, found \(d.shown)") }
                    divergence = x
                }
            }
            return PolicySamples.Sample(bits: pa.0.bits, keep: pa.0.keep.isEmpty ? nil : pa.0.keep, accuracy: pa.1, divergence: divergence)
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

    /// The budgeted space of evolve() and random_policies(): exactly one budget over `choices`,
    /// the ends pinned when asked.
    static func evolutionSpace(_ args: Arguments, _ interp: Interpreter, model: Model, choices: [Int]) throws -> (Evolution.Space, CostModel) {
        let budget = try oneBudget(args)
        let activations = try args.optionalInt("activation_bits")
        if let a = activations, !(1...32).contains(a) { throw args.fail("activation_bits must be 1…32, found \(a)") }
        let ends = try args.optionalInt("ends")
        let (cost, limit) = try budget.costModel(for: model, widths: choices, activationBits: activations, progress: args.progress(interp, "latency table"))
        if let pruning = try prunedLayers(args, model: model) {
            return (try Evolution.Space(model: model, choices: choices, cost: cost, budget: limit, ends: ends, prune: pruning.names, ratios: pruning.ratios), cost)
        }
        return (try Evolution.Space(model: model, choices: choices, cost: cost, budget: limit, ends: ends), cost)
    }

    static let budgetParameters: [BuiltinParameter] = [
        .optional("energy", .number), .optional("latency", .number), .optional("bitops", .number), .optional("size", .number),
        .optional("average_bits", .number), .optional("activation_bits", .integer), .optional("ends", .integer)]

    static let predictors: [Builtin] = [
        Builtin("samples", category: "search",
                [.required("model", .model), .required("data", .dataset), .optional("count", .integer, .number(100)),
                 .optional("bits", .list, .list([2, 3, 4, 5, 6, 8].map { .number(Double($0)) })), .optional("seed", .integer, .number(0)),
                 .optional("policies", .list), .optional("cache", .string), .optional("calibration", .dataset), .optional("merge", .list),
                 .optional("engine", .bool, .bool(false)), .optional("divergence", .bool, .bool(false))] + pruningParameters,
                returns: "List",
                summary: "Measured policies for APQ's predictor (METHODS.md §4): `count` random weight-only policies (each layer's width drawn uniformly from `bits`, seeded) — or the given `policies` (Lists of widths) — quantized with the reference per-channel quantizer and evaluated on `data` (a validation split carved from the training set, never the test set); with calibration (a Dataset of other training images), each policy is bias-corrected on them first (see quantize's bias_correction), which makes low widths far less erratic and the samples far easier to predict; with engine: true as well, each policy runs in the integer engine with 8-bit activations calibrated on them (as it deploys; 110 against 74 policies per minute for the float simulation on ResNet-20 with 5,000 images, scripts/bench on an Intel Xeon). cache: a .json file keyed by the model's content and the split; policies already in it are not measured again, new ones are added after each evaluation (atomically), so an interrupted run resumes; an entry that is not a valid sample is skipped with a warning, a cache of another model, split or calibration refused. merge: other cache files of the same key (shards measured elsewhere, as scripts/ray-samples.py does) added to `cache` first. Ctrl-C stops between policies and returns those measured. keep: APQ's joint space — a List of keep ratios; each policy also draws one per pruned layer (`prune`: layer names, default every layer of m.prunable) and the model is pruned to them (output channels of largest L1 norm, as prune()) before it is quantized, without fine-tuning; with calibration its batch norms are first recalibrated on those images (the readers of pruned layers lost inputs). divergence: true adds each policy's output divergence on `data` — mean KL(softmax(float) ‖ softmax(quantized)), from the same forward pass — which sees every image's output shift where accuracy moves only with the few predictions that flip, so it tells near-equal policies apart with less noise (cached entries measured without it are measured again). Returns a List of {bits, accuracy} ({bits, keep, accuracy} with keep; divergence added when asked).",
                examples: [BuiltinExample("s = samples(zoo(\"mlp\"), fashion_mnist(split: \"train\", limit: 64), count: 3, seed: 1); [len(s), len(s[0].bits)]", "[3, 3]"),
                           BuiltinExample("m = load(\"../shared/reference/fmnist_mlp.npz\", into: zoo(\"mlp\")); s = samples(m, fashion_mnist(split: \"train\", limit: 200), policies: [[8, 8, 8], [2, 2, 2]], divergence: true); [s[0].divergence < s[1].divergence, s[0].divergence >= 0]", "[true, true]")]) { args, interp in
            let m = try args.model("model"), data = try args.dataset("data")
            let pruning = try prunedLayers(args, model: m)
            let points: [Evolution.Point]
            if case .list = args["policies"] { points = try policyPoints(args["policies"], args, what: "policies") }
            else {
                points = try PolicySamples.random(m, count: try args.int("count"), bits: try args.bitsList("bits"), seed: UInt64(truncatingIfNeeded: try args.int("seed")),
                                                  keep: pruning.map { ($0.names.count, $0.ratios) })
            }
            do {
                var calibration: Tensor? = nil
                if case .dataset(let d) = args["calibration"] { calibration = d.images }
                let sampler = PolicySamples(cache: try args.optionalString("cache"), calibration: calibration, engine: try args.bool("engine"), prune: pruning?.names ?? [])
                if case .list(let files) = args["merge"] {
                    let paths = try files.map { f in
                        guard case .string(let p) = f else { throw args.fail("merge: expected a List of cache file paths, found \(f.shown)") }
                        return p
                    }
                    _ = try sampler.merge(paths, key: PolicySamples.key(model: m, validation: data, calibration: calibration, engine: sampler.engine, prune: sampler.prune), layers: m.layers.count, warn: interp.warn)
                }
                let reference = try args.bool("divergence") ? try OutputReference(model: m, images: data.images, what: "samples") : nil
                let r = try sampler.measure(m, validation: data, points: points, reference: reference, progress: args.progress(interp, "samples"), warn: interp.warn)
                return .list(r.samples.map { s in pointRecord(s.point, [("accuracy", .number(s.accuracy))] + (s.divergence.map { [("divergence", .number($0))] } ?? [])) })
            } catch let e as MixedPrecisionError { throw args.fail(e, method: "samples") }
        },
        Builtin("predictor", category: "search",
                [.required("samples", .list), .optional("bits", .list), .optional("epochs", .integer, .number(300)),
                 .optional("hidden", .integer, .number(400)), .optional("lr", .number, .number(0.001)), .optional("batch", .integer, .number(64)),
                 .optional("seed", .integer, .number(0)), .optional("pretrain", .any), .optional("proxies", .integer, .number(5000)),
                 .optional("pretrain_epochs", .integer, .number(30)), .optional("target", .choice(["accuracy", "divergence"]), .string("accuracy"))],
                returns: "Predictor",
                summary: "APQ's accuracy predictor (METHODS.md §4): an MLP input → hidden → hidden → hidden → 1 with ReLU over the one-hot encoding of each layer's width, trained on measured samples ({bits, accuracy}, from samples()) with Adam (cosine decay from lr) on the mean squared error of the standardised accuracy. bits: the candidate widths (default: those the samples use). predict(p, policies) applies it; agreement(predicted, measured) scores it on held-out samples. pretrain: for APQ's transfer recipe, a Sensitivity table (from sensitivity() over the same widths) or a slower Predictor (divergence_predictor(): one forward pass of its calibration images per proxy) — the network first learns `proxies` random policies scored by it (−log Σ Ω, or the predictor's accuracy; pretrain_epochs epochs), then every weight is fine-tuned on the measured samples, which then need to be far fewer. save(p, \"p.npz\") writes it, load(\"p.npz\") reads it back. target: \"divergence\" (our addition) teaches it −log of each sample's output divergence instead of its accuracy (samples(..., divergence: true) measures them): the divergence sees every image's output shift where accuracy moves only with the predictions that flip, so the MLP learns a less noisy figure (on ResNet-20, 400 samples: τ 0.85–0.87 against 100 held-out samples' divergence, scripts/apq-divergence-predictor.mpq); predict() then gives divergences, evolve() seeks the least, and its rounds refine on measured divergences. Samples with keep ratios (samples(..., keep:)) train APQ's joint encoding: one one-hot vector over the keep ratios per pruned layer (the architecture part), then the bits part; evolve(..., keep:) then searches both.",
                examples: [BuiltinExample("p = predictor([{bits: [2, 4], accuracy: 0.5}, {bits: [4, 4], accuracy: 0.8}, {bits: [4, 2], accuracy: 0.6}], epochs: 50, hidden: 8); predict(p, [[4, 4]])[0] > predict(p, [[2, 4]])[0]", "true"),
                           BuiltinExample("p = predictor([{bits: [2], accuracy: 0.5}, {bits: [4], accuracy: 0.8}], epochs: 2, hidden: 4); save(p, \"/tmp/mpq-doc-predictor.npz\"); load(\"/tmp/mpq-doc-predictor.npz\").choices", "[2, 4]"),
                           BuiltinExample("p = predictor([{bits: [2, 8], accuracy: 0.7, divergence: 0.2}, {bits: [8, 8], accuracy: 0.8, divergence: 0.01}, {bits: [8, 2], accuracy: 0.6, divergence: 0.1}], target: \"divergence\", epochs: 50, hidden: 8); [p.target, predict(p, [[8, 8]])[0] < predict(p, [[2, 8]])[0]]", "[\"divergence\", true]")]) { args, interp in
            let samples = try measuredSamples(args["samples"], args, what: "samples")
            let choices: [Int] = try { if case .list = args["bits"] { return try args.bitsList("bits") }; return Array(Set(samples.flatMap(\.bits))).sorted() }()
            var o = AccuracyMLP.Options()
            o.target = PredictionTarget(rawValue: try args.string("target"))!
            o.epochs = try args.int("epochs"); o.hidden = try args.int("hidden"); o.learningRate = Float(try args.number("lr"))
            o.batchSize = try args.int("batch"); o.seed = UInt64(truncatingIfNeeded: try args.int("seed"))
            var transfer: AccuracyMLP.Transfer? = nil
            if case .null = args["pretrain"] {} else {
                if case .object(let o as PredictorObject) = args["pretrain"] { transfer = AccuracyMLP.Transfer(predictor: o.predictor) } else {
                    transfer = AccuracyMLP.Transfer(table: try args.object("pretrain", SensitivityObject.self, what: "a Sensitivity table (from sensitivity()) or a Predictor").table)
                }
                transfer!.count = try args.int("proxies"); transfer!.epochs = try args.int("pretrain_epochs"); transfer!.seed = o.seed
            }
            do { return .object(PredictorObject(try AccuracyMLP.train(samples, choices: choices, options: o, transfer: transfer, progress: args.progress(interp, "proxies")), trainedOn: samples.count)) }
            catch let e as MixedPrecisionError { throw args.fail(e, method: "predictor") }
        },
        Builtin("divergence_predictor", category: "search",
                [.required("model", .model), .required("samples", .list), .required("calibration", .dataset), .optional("bits", .list)],
                returns: "Predictor",
                summary: "An accuracy predictor that measures instead of learning: each policy's whole-model output divergence — mean KL(softmax(float) ‖ softmax(quantized)) on the calibration images (no labels used), every layer at its width at once and bias-corrected on the same images, as samples(..., calibration:) measures — mapped to accuracy by a curve fitted on the measured samples ({bits, accuracy}): logit(accuracy) quadratic in log KL, held monotone. It sees how low widths in several layers compound, which APQ's MLP must learn from samples, so a few dozen samples fix it; each prediction costs one forward pass of the calibration images (about 57 ms on ResNet-20 with 259 images). predict(p, policies) and agreement() as for predictor(); evolve() takes it too, at that cost per candidate. bits: the widths evolve() searches (default: those the samples use). Not saved to a file.",
                examples: [BuiltinExample("m = load(\"../shared/reference/fmnist_mlp.npz\", into: zoo(\"mlp\")); parts = split(fashion_mnist(split: \"train\", limit: 556), 0.54, seed: 1); s = samples(m, parts.validation, count: 8, bits: [1, 2, 8], seed: 1, calibration: parts.train); p = divergence_predictor(m, s, parts.train); [p.kind, predict(p, [[8, 8, 8]])[0] > predict(p, [[1, 1, 1]])[0]]", "[\"divergence\", true]")]) { args, interp in
            let m = try args.model("model")
            let bits = try policyBits(args["samples"], args, what: "samples"), accuracies = try numbers(args["samples"], args, what: "samples")
            let samples = zip(bits, accuracies).map { PolicySamples.Sample(bits: $0, accuracy: $1) }
            let choices: [Int]? = try { if case .list = args["bits"] { return try args.bitsList("bits") }; return nil }()
            do {
                let divergence = try PolicyDivergence(model: m, calibration: try args.dataset("calibration").images)
                let p = try DivergencePredictor(divergence: divergence, samples: samples, choices: choices, progress: args.progress(interp, "divergences"))
                return .object(PredictorObject(p, trainedOn: samples.count))
            } catch let e as MixedPrecisionError { throw args.fail(e, method: "divergence predictor") }
        },
        Builtin("random_policies", category: "search",
                [.required("model", .model), .optional("count", .integer, .number(200)),
                 .optional("bits", .list, .list([2, 3, 4, 5, 6, 8].map { .number(Double($0)) })), .optional("seed", .integer, .number(0))]
                    + budgetParameters + pruningParameters,
                returns: "List",
                summary: "Random search's candidates: `count` policies, each layer's width drawn uniformly from `bits` (seeded), kept only when within the one budget given (energy: µJ per image on BitFusion, latency: ms per image from the measured table, bitops:, size: bytes, average_bits:; activations for bitops and energy at activation_bits, else each layer's weight bits); ends: pins the first and last layer; layers reading one input take one width. A budget nothing meets is an error naming the cheapest cost; draws go on until `count` fit, up to 1000 a policy and at least 10 million in all (Ctrl-C stops them), and running out is an error saying how many fit. Returns a List of Lists of widths, for samples(m, data, policies: ...); with keep (ratios) and prune (layer names, default m.prunable), the joint space: a List of {bits, keep}, costs counting the kept channels.",
                examples: [BuiltinExample("m = zoo(\"mlp\"); len(filter(random_policies(m, count: 5, average_bits: 4, seed: 2), fn(b) { policy(m, bits: b).average_bits <= 4 }))", "5")]) { args, interp in
            let m = try args.model("model")
            do {
                let (space, _) = try evolutionSpace(args, interp, model: m, choices: try args.bitsList("bits"))
                let points = try space.randomPoints(count: try args.int("count"), seed: UInt64(truncatingIfNeeded: try args.int("seed")))
                if space.pruning != nil { return .list(points.map { pointRecord($0, []) }) }
                return .list(points.map { .list($0.bits.map { .number(Double($0)) }) })
            } catch let e as MixedPrecisionError { throw args.fail(e, method: "evolve") }
        },
        Builtin("evolve", category: "search",
                [.required("model", .model), .required("predictor", .any), .required("data", .dataset)] + budgetParameters
                    + [.optional("population", .integer, .number(100)), .optional("parents", .integer, .number(25)),
                       .optional("iterations", .integer, .number(500)), .optional("mutation", .number, .number(0.1)),
                       .optional("top", .integer, .number(5)), .optional("rounds", .integer, .number(1)), .optional("seed", .integer, .number(0)),
                       .optional("calibration", .dataset), .optional("cache", .string), .optional("engine", .bool, .bool(false)),
                       .optional("select", .choice(["accuracy", "divergence"]), .string("accuracy"))] + pruningParameters,
                returns: "Policy",
                summary: "APQ's evolutionary search (METHODS.md §4) over weight widths per layer (the predictor's widths) under one budget (energy:, latency:, bitops:, size: or average_bits:, as random_policies; ends pins the first and last layer, APQ uses 8): a population ranked by the Predictor, the `parents` best kept each generation and the rest refilled half by mutation (each layer redrawn with probability `mutation`), half by uniform crossover; candidates over the budget are rejected. One progress line per generation (best predicted, best measured, budget use): each generation's best predicted policy is measured on `data` (a validation split) when new, and at the end the `top` best predicted are; the best measured is returned — or, with select: \"divergence\" (our addition), the measured policy of least output divergence on `data` (see samples' divergence: less noisy than accuracy, so less prone to return the luckiest of many near-equal measurements). rounds (our addition to APQ): after each round of `iterations` generations its `top` finalists are measured, the predictor (one from predictor(samples)) is fine-tuned on its samples and every policy measured so far, and the next round goes on from the population — the search drifts to where the predictor is optimistic, and the measurements correct it there. A predictor(..., target: \"divergence\") ranks by predicted output divergence (least first), its rounds refine it on the measured divergences, and its `predicted` figures are divergences. Measurements go through samples() (calibration: bias correction, engine: the integer engine at 8-bit activations, cache: its file), so they are reused. Ctrl-C ends the search early. The Policy's fields add predicted, accuracy (validation), divergence (validation; with select: \"divergence\" or a divergence predictor), the budget's cost, predictions, measurements, history (per generation), measured ({bits, predicted, accuracy, cost; divergence when measured}, best first by the figure select names) and interrupted. keep (ratios) and prune (layer names, default m.prunable): APQ's joint space, width × bits, for a predictor trained on samples with the same keep and prune; candidates are pruned before they are measured (batch norms recalibrated on the calibration images when given; no fine-tuning), costs count the kept channels, and the Policy is for the pruned model, given as its field `pruned` beside keep ({layer: ratio}).",
                examples: [BuiltinExample("m = zoo(\"mlp\"); d = fashion_mnist(split: \"train\", limit: 64); p = predictor(samples(m, d, count: 6, seed: 1), epochs: 10, hidden: 8); e = evolve(m, p, d, average_bits: 5, population: 6, parents: 2, iterations: 2, top: 2); [e.average_bits <= 5, len(e.history)]", "[true, 3]"),
                           BuiltinExample("m = zoo(\"mlp\"); d = fashion_mnist(split: \"train\", limit: 64); p = predictor(samples(m, d, count: 6, seed: 1), epochs: 10, hidden: 8); e = evolve(m, p, d, average_bits: 5, population: 6, parents: 2, iterations: 2, top: 2, rounds: 2); [len(e.history), e.measurements >= 2]", "[5, true]"),
                           BuiltinExample("m = zoo(\"mlp\"); d = fashion_mnist(split: \"train\", limit: 64); p = predictor(samples(m, d, count: 6, seed: 1), epochs: 10, hidden: 8); e = evolve(m, p, d, average_bits: 5, population: 6, parents: 2, iterations: 2, top: 2, select: \"divergence\"); [e.divergence >= 0, e.divergence <= e.measured[len(e.measured) - 1].divergence]", "[true, true]"),
                           BuiltinExample("m = zoo(\"mlp\"); d = fashion_mnist(split: \"train\", limit: 64); p = predictor(samples(m, d, count: 6, seed: 1, divergence: true), target: \"divergence\", epochs: 10, hidden: 8); e = evolve(m, p, d, average_bits: 5, population: 6, parents: 2, iterations: 2, top: 2, rounds: 2); [e.predicted > 0, e.divergence >= 0]", "[true, true]")]) { args, interp in
            let m = try args.model("model"), data = try args.dataset("data")
            let predictor = try args.object("predictor", PredictorObject.self, what: "a Predictor (from predictor())").predictor
            guard predictor.layers == m.layers.count else { throw args.fail("the predictor covers \(predictor.layers) layers, the model has \(m.layers.count)") }
            let pruning = try prunedLayers(args, model: m)
            let predictorPrunes = (predictor as? AccuracyMLP)?.prunedLayers ?? 0
            guard predictorPrunes == (pruning?.names.count ?? 0) else {
                throw args.fail("the predictor was trained on \(predictorPrunes) pruned layers, the search prunes \(pruning?.names.count ?? 0) (give keep: and prune: as its samples had them)")
            }
            var calibration: Tensor? = nil
            if case .dataset(let d) = args["calibration"] { calibration = d.images }
            var o = Evolution.Options()
            o.population = try args.int("population"); o.parents = try args.int("parents"); o.iterations = try args.int("iterations")
            o.mutation = try args.number("mutation"); o.topK = try args.int("top"); o.rounds = try args.int("rounds"); o.seed = UInt64(truncatingIfNeeded: try args.int("seed"))
            do {
                let (space, cost) = try evolutionSpace(args, interp, model: m, choices: predictor.choices)
                let samples = PolicySamples(cache: try args.optionalString("cache"), calibration: calibration, engine: try args.bool("engine"), prune: pruning?.names ?? [])
                let select = PredictionTarget(rawValue: try args.string("select"))!
                let reference = select == .divergence || predictor.target == .divergence ? try OutputReference(model: m, images: data.images, what: "evolve") : nil
                let (r, measured) = try Evolution(options: o).run(space, predictor: predictor, measure: {
                    try samples.measure(m, validation: data, points: $0, reference: reference, warn: interp.warn).samples
                }, select: select, progress: { interp.progress($0.line, done: true) })
                func divergence(_ c: Evolution.Candidate) -> [(String, Value)] {
                    (measured[Evolution.Point(bits: c.bits, keep: c.keep)]?.divergence).map { [("divergence", .number($0))] } ?? []
                }
                func predicted(_ c: Evolution.Candidate) -> Value { .number(predictor.target.figure(score: c.predicted)) }
                func number(_ x: Double?) -> Value { x.map { .number($0) } ?? .null }
                let history: [Value] = r.history.map { g in .record(Record([("generation", .number(Double(g.iteration))), ("best_predicted", .number(g.bestPredicted)),
                                                                            ("best_measured", number(g.bestMeasured)), ("budget_use", .number(g.budgetUse))])) }
                let measuredList: [Value] = r.measured.map { c in pointRecord(Evolution.Point(bits: c.bits, keep: c.keep), [("predicted", predicted(c)),
                                                                             ("accuracy", number(c.measured))] + divergence(c) + [("cost", .number(c.cost))]) }
                var origin = Record([("predicted", predicted(r.best)), ("accuracy", number(r.best.measured))] + divergence(r.best)
                                    + [(cost.name, .number(r.best.cost)),
                                     ("predictions", .number(Double(r.predictions))), ("measurements", .number(Double(r.measured.count))),
                                     ("history", .list(history)), ("measured", .list(measuredList)), ("interrupted", .bool(r.interrupted))])
                guard let pruning else { return .object(PolicyObject(try Policy(model: m, weightBits: r.best.bits), model: m, origin: origin)) }
                let pruned = try samples.pruned(m, keep: r.best.keep)
                origin["keep"] = .record(Record(zip(pruning.names, r.best.keep).map { ($0, .number($1)) }))
                origin["pruned"] = .model(pruned)
                return .object(PolicyObject(try Policy(model: pruned, weightBits: r.best.bits), model: pruned, origin: origin))
            } catch let e as MixedPrecisionError { throw args.fail(e, method: "evolve") }
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
