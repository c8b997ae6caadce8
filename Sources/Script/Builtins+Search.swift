import Foundation
import MixedPrecision
import Network
import Quantization
import Tensors

/// The search builtins: policies by hand, bit allocation (layer- and kernel-wise), frontiers, predicted accuracy.
extension Builtins {
    /// The budgets a search builtin was given, by argument name (size:, average_bits:, bitops:,
    /// latency:, energy:).
    static func budgets(_ args: Arguments) throws -> [Search.Budget] {
        let kinds: [(String, (Double) -> Search.Budget)] = [("size", Search.Budget.size), ("average_bits", Search.Budget.averageBits),
                                                            ("bitops", Search.Budget.bitOps), ("latency", Search.Budget.latency),
                                                            ("energy", Search.Budget.energy)]
        return try kinds.compactMap { name, make in try args.optionalNumber(name).map(make) }
    }

    /// The one budget a searcher that costs by a single model (evolve, random_policies,
    /// autoq_search) was given.
    static func oneBudget(_ args: Arguments) throws -> Search.Budget {
        let given = try budgets(args)
        guard given.count == 1 else { throw args.fail("give one budget: energy:, latency:, bitops:, size: or average_bits: (found \(given.count))") }
        return given[0]
    }

    /// The policy `policy(...)`'s arguments describe (see its summary).
    static func handPolicy(_ args: Arguments) throws -> Policy {
        let m = try args.model("model")
        let names = m.layers.map(\.name)
        /// One value per layer from a scalar, a List in layer order or a Record by name.
        func perLayer(_ name: String, default d: Value) throws -> [Value] {
            switch args[name] {
            case .list(let xs) where name != "scheme" && name != "activation_scheme":
                guard xs.count == names.count else {
                    throw args.fail("\(name): expected \(names.count) \(name.hasSuffix("bits") ? "widths" : "values") (one per layer: \(names.joined(separator: ", "))), found \(xs.count)")
                }
                return xs
            case .record(let r):
                for k in r.keys where m.layer(named: k) == nil {
                    throw args.fail("\(name): no layer '\(k)' in model '\(m.name)'; layers are \(names.joined(separator: ", "))")
                }
                return names.map { r[$0] ?? d }
            case let v: return Array(repeating: v, count: names.count)
            }
        }
        let template = try configuredQuantizer(args, bits: 8, granularity: try args.choice("granularity"), scheme: "symmetric")
            ?? Quantizer(bits: 8, slicing: try args.granularity() == .perChannel ? .channel : .tensor)
        let weights = try perLayer("bits", default: .number(8)), schemes = try perLayer("scheme", default: .string("symmetric"))
        let acts = try perLayer("activation_bits", default: .null), actSchemes = try perLayer("activation_scheme", default: .string("uniform"))
        let sign: Policy.Activation.Sign = try args.choice("activation_sign")
        func width(_ v: Value, _ what: String) throws -> Int {
            guard case .number(let x) = v, let b = Convert.whole(x) else { throw args.fail("\(what) must be whole numbers, found \(v.shown)") }
            return b
        }
        func choice<T: RawRepresentable & CaseIterable>(_ v: Value, _ type: T.Type, _ what: String) throws -> T where T.RawValue == String {
            guard case .string(let text) = v, let c = T(rawValue: text) else {
                throw args.fail("\(what) must be one of \(T.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")), found \(v.shown)")
            }
            return c
        }
        let entries = try m.layers.indices.map { l -> Policy.Entry in
            let layer = m.layers[l]
            var weight: Policy.Weight?
            switch weights[l] {
            case .string("float"): weight = nil
            case .null: throw args.fail("bits: layer '\(layer.name)' has no width (nil); say \"float\" (or 32) to keep it in float")
            case .list(let xs):
                var w = Policy.Weight(template).perChannel(try xs.map { try width($0, "bits of '\(layer.name)'") })
                w.quantizer.scheme = try choice(schemes[l], Quantizer.Scheme.self, "scheme")
                weight = w
            case let v:
                let b = try width(v, "bits")
                if b == 32 { weight = nil; break }
                var q = template
                q.scheme = try choice(schemes[l], Quantizer.Scheme.self, "scheme")
                weight = Policy.Weight(q).at(bits: b)
                if case .string("symmetric") = schemes[l] {} else { weight!.quantizer.scheme = q.scheme }
            }
            let activation: Policy.Activation? = try {
                if case .null = acts[l] { return nil }
                return Policy.Activation(bits: try width(acts[l], "activation_bits"),
                                         scheme: try { if case .string("uniform") = actSchemes[l] { return nil }; return try choice(actSchemes[l], Policy.Activation.Scheme.self, "activation_scheme") }(),
                                         sign: sign)
            }()
            return Policy.Entry(layer: layer, weight: weight, activation: activation)
        }
        do { return try Policy(model: m, entries: entries) } catch let e as QuantizationError { throw args.fail(e.message.replacingOccurrences(of: "policy: ", with: "")) }
    }

    static let search: [Builtin] = [
        Builtin("policy", category: "search",
                [.required("model", .model), .optional("bits", .any, .number(8)), .optional("activation_bits", .any),
                 .optional("granularity", .choice(Granularity.self), .string("channel")),
                 .optional("scheme", .any, .string("symmetric")), .optional("rounding", .choice(["nearest_even", "nearest_away", "stochastic"]), .string("nearest_even")),
                 .optional("clip", .any, .string("max")), .optional("group", .integer), .optional("seed", .integer, .number(0)),
                 .optional("activation_scheme", .any, .string("uniform")), .optional("activation_sign", .choice(Policy.Activation.Sign.self), .string("auto")),
                 .optional("binary", .bool, .bool(false))],
                returns: "Policy",
                summary: "A policy by hand (binary: true: a binary network's own, as bnn() gives it — its XNOR layers W1A1, the others at `bits`, default 8, with 8-bit inputs). `bits`: one width for every layer, a List (one per layer, in model order) or a Record (layer name → bits; layers not named take 8); a width is 1…8 (1: binary), 32 or \"float\" (the layer keeps float weights), or a List of one width per output channel (kernel-wise). activation_bits likewise (nil: float; 1: binary, sign(x)·mean|x| as XNOR-Net). The weight quantizer: scheme (as quantize's: symmetric, symmetric_full, asymmetric, binary, ternary, gaussian, pow2; a String, or a Record layer → scheme), granularity, group, clip, rounding, seed. The activation quantizer: activation_scheme \"uniform\" (min/max calibrated), \"pow2\" (scale rounded up to a power of two), \"hwgq\" (HWGQ, 1…4 bits, step Δ_b·√(2·E[x²])) or \"binary\" — a String or a Record layer → scheme — and activation_sign \"auto\" (unsigned when the value never goes below 0), \"signed\" or \"unsigned\". Fields: layers, bits, activation_bits, schemes, activation_schemes, params, macs, average_bits, size, bitops, rows.",
                examples: [BuiltinExample("policy(zoo(\"mlp\"), bits: [8, 4, 8]).average_bits", "7.441657579062159"),
                           BuiltinExample("policy(zoo(\"mlp\"), bits: {fc1: 2}).bits", "[2, 8, 8]"),
                           BuiltinExample("policy(zoo(\"mlp\"), bits: [8, 4, \"float\"], scheme: {fc2: \"pow2\"}).schemes", "[\"symmetric\", \"pow2\", \"float\"]"),
                           BuiltinExample("policy(zoo(\"mlp\"), bits: {fc3: [2, 2, 2, 2, 2, 4, 4, 4, 8, 8]}).size", "234080"),
                           BuiltinExample("policy(zoo(\"mlp\"), activation_bits: 4, activation_scheme: \"hwgq\").activation_schemes", "[\"hwgq\", \"hwgq\", \"hwgq\"]"),
                           BuiltinExample("policy(zoo(\"cnn\", binary: true), binary: true).bits", "[8, 1, 1, 1, 8]")]) { args, _ in
            let m = try args.model("model")
            if try args.bool("binary") {
                // A binary network's own policy (as bnn() returns it).
                guard m.nodes.contains(where: { $0.op == .binaryWeights }) else {
                    throw args.fail("binary: true is the policy of a binary network (bnn(), zoo(name, binary: true)); '\(m.name)' has no binary layers")
                }
                var recipe = BinaryTraining()
                recipe.ends = try args.int("bits")
                return .object(PolicyObject(try recipe.policy(m), model: m))
            }
            return .object(PolicyObject(try handPolicy(args), model: m))
        },
        Builtin("search", category: "search",
                [.required("sensitivity", .any), .optional("solver", .choice(Search.Solver.self), .string("ilp")), .optional("size", .number),
                 .optional("bitops", .number), .optional("average_bits", .number), .optional("latency", .number),
                 .optional("energy", .number), .optional("activation_bits", .integer), .optional("pin", .record),
                 .optional("ends", .integer), .optional("ties", .bool, .bool(true))],
                returns: "Policy",
                summary: "The bit allocation minimising the table's summed sensitivity under the budgets given: size (weight bytes), bitops (Σ MACs·b_w·b_a), average_bits (parameter-weighted; a size budget), latency (ms per image from the measured table, see latency()), energy (µJ per image on a 16×32 BitFusion array; see cost()). bitops and energy count activations at activation_bits (default: at each layer's weight bits). pin: {layer: bits}; ends: pins the first and last layer (HAWQ and APQ use 8). Layers reading the same input (a block's conv and its 1×1 shortcut) take equal bits unless ties: false. solver: \"ilp\" (exact: branch and bound with Lagrangian bounds), \"greedy\" (multiple-choice knapsack on convex hulls; its gap to the optimum is reported), \"brute\" (enumeration, small problems). The policy's fields add solver, objective, gap and each budget's cost.",
                examples: [BuiltinExample("search(sensitivity(\(mlp), \(mnist), bits: [2, 4, 8]), average_bits: 4).average_bits <= 4", "true")]) { args, interp in
            let s = try args.object("sensitivity", SensitivityObject.self, what: "a Sensitivity table (from sensitivity())")
            var search = Search(budgets: try budgets(args), solver: try args.choice("solver"))
            search.ends = try args.optionalInt("ends")
            search.tieSharedInputs = try args.bool("ties")
            search.activationBits = try args.optionalInt("activation_bits")
            if let a = search.activationBits, !(1...32).contains(a) { throw args.fail("activation_bits must be 1…32, found \(a)") }
            if case .record(let r) = args["pin"] {
                for k in r.keys {
                    guard case .number(let b) = r[k]!, let w = Convert.whole(b, in: 1...8) else {
                        throw args.fail("pin: bits must be whole numbers in 1…8, found \(r[k]!.shown) for '\(k)'")
                    }
                    search.pins[k] = w
                }
            }
            let result: Search.Result
            do { result = try search.run(s.table, model: s.model, progress: args.progress(interp, "latency table")) }
            catch let e as MixedPrecisionError { throw args.fail(e.message.hasPrefix("search: ") ? String(e.message.dropFirst(8)) : e.message) }
            var origin: [(String, Value)] = [("solver", .string(search.solver.rawValue))]
            if let gap = result.gap { origin.append(("gap", .number(gap))) }
            origin.append(("objective", .number(result.solution.objective)))
            for (b, budget) in result.problem.budgets.enumerated() { origin.append((budget.name, .number(result.solution.costs[b]))) }
            return .object(PolicyObject(result.policy, model: s.model, origin: Record(origin)))
        },
        Builtin("kernel_search", category: "search",
                [.required("model", .model), .required("data", .dataset), .optional("average_bits", .number), .optional("size", .number),
                 .optional("bits", .list, .list([2, 3, 4, 5, 6, 8].map { .number(Double($0)) })),
                 .optional("objective", .choice(KernelWiseTable.Objective.self), .string("gauss_newton")),
                 .optional("ends", .integer, .number(8)), .optional("like", .any)],
                returns: "Policy",
                summary: "Kernel-wise HAWQ (AutoQ's granularity): every output channel of every conv/linear layer gets its own weight width, the exact solver minimising the summed channel sensitivities under a size budget (average_bits: parameter-weighted mean, or size: bytes), first and last layer pinned at `ends` bits (nil: free). objective: \"gauss_newton\" (ΔW_cᵀ·G_cc·ΔW_c, the channel's exact Gauss–Newton block measured on `data`: C backward passes and one convolution of the weight error per width and class), \"trace\" (HAWQ-V3's Tr(H_c)/P_c·‖ΔW_c‖²) or \"diagonal\" (Σ H_ii·ΔW_i²), from exact Hessian diagonals; piecewise-linear networks (ReLU, pooling, batch norm). On ResNet-20 at 3 bits: 93.35% (gauss_newton, 256 images) against 93.08% for layer-wise HAWQ-V3. like: a Policy whose weight quantizers (at each width) and activation quantizers to keep.",
                examples: [BuiltinExample("m = load(\"../shared/reference/fmnist_cnn.npz\", into: zoo(\"cnn\")); p = kernel_search(m, fashion_mnist(split: \"train\", limit: 32), average_bits: 3); p.average_bits <= 3", "true")]) { args, interp in
            let m = try args.model("model")
            let bits = try args.bitsList("bits")
            let budget: Search.Budget
            switch (try args.optionalNumber("average_bits"), try args.optionalNumber("size")) {
            case (let a?, nil): budget = .averageBits(a)
            case (nil, let s?): budget = .size(s)
            default: throw args.fail("give one budget: average_bits: (mean weight bits) or size: (bytes)")
            }
            let limit: Double
            do { limit = try budget.bytes(for: m)! } catch let e as MixedPrecisionError { throw args.fail(e.message) }
            var template: Policy? = nil
            if case .object = args["like"] { template = try args.object("like", PolicyObject.self, what: "a Policy whose quantizers to use").policy }
            let ends = try args.optionalInt("ends")
            let pins = ends.map { e in [m.layers.first!.name: e, m.layers.last!.name: e] } ?? [:]
            do {
                let table = try KernelWiseTable.measure(model: m, data: try args.dataset("data"), bits: bits, objective: try args.choice("objective"),
                                                        template: template, progress: args.progress(interp, "kernel-wise sensitivity"))
                let (policy, solution) = try table.search(model: m, size: limit, pinned: pins, template: template)
                return .object(PolicyObject(policy, model: m, origin: Record([("solver", .string("ilp")), ("objective", .number(solution.objective)),
                                                                                ("size", .number(solution.costs[0]))])))
            } catch let e as MixedPrecisionError { throw args.fail(e.message) }
        },
        Builtin("edmips", category: "search",
                [.required("model", .model), .required("data", .dataset), .optional("validation", .dataset), .optional("lambda", .number, .number(0.01)),
                 .optional("bits", .list, .list([1, 2, 3, 4].map { .number(Double($0)) })),
                 .optional("activation_bits", .list, .list([1, 2, 3, 4].map { .number(Double($0)) })),
                 .optional("epochs", .integer, .number(3)), .optional("fine_tune", .integer, .number(2)), .optional("ends", .integer),
                 .optional("batch", .integer, .number(128)), .optional("lr", .number, .number(0.01)), .optional("alpha_lr", .number, .number(0.01)),
                 .optional("bitops", .number), .optional("tolerance", .number, .number(0.02)), .optional("seed", .integer, .number(0)), .optional("policy", .any),
                 .optional("checkpoint", .string)],
                returns: "Record",
                summary: "EdMIPS (METHODS.md §6): learns each layer's weight and activation bits by gradient descent. Every layer but the first and last reads its weight through softmax(α_w)-mixed Gaussian quantizers at `bits` and its input through softmax(α_a)-mixed HWGQ at `activation_bits` (1…4; σ of each input measured on the data); the loss adds lambda·Σ MACs·E[b_w]·E[b_a]/(2·Σ MACs) (uniform W2A2 = 2); weights (SGD Nesterov, one-cycle at lr) and α (Adam at alpha_lr) step on the same batch for `epochs` on `data`; then each α's argmax is the policy — with `bitops` (a target for the policy's Σ MACs·b_w·b_a, float layers at 32), its widths then move one step at a time along softmax(α) until the BitOps are within `tolerance` of the target (our addition: the paper steers by lambda alone) —, and the network is fine-tuned for `fine_tune` epochs with those quantizers fixed. validation: the split reported each epoch and at the end (default: 10% of data, seeded). ends: nil keeps the first and last layer float (EdMIPS), 8 quantizes them with the reference quantizers. One progress line per epoch (loss, accuracies, mean E[b], expected BitOps, time left); Ctrl-C ends the search (or the fine-tuning) and returns what was learned, with interrupted: true (a second Ctrl-C stops the rest). checkpoint: a .npz path the search's whole state is written to after every epoch (the fine-tuning's beside it, -finetune.npz); when it exists, the same call continues from it and ends as an unbroken run would (epochs before the resume are missing from history). policy: a Policy of Gaussian per-tensor weights and HWGQ inputs (ends as `ends`) is fine-tuned with the same recipe instead of searched — the equal-budget baseline (uniform W2A2, say). The result's quantized model calibrates HWGQ's σ layer by layer (quantize(..., sequential: true)). Returns {policy, quantized (the fine-tuned model under the policy), model (its float weights), history (per epoch: epoch, loss, train, validation, weight_bits and activation_bits — the means of E[b] over the searched layers —, bitops — expected, searched layers —, layer_weight_bits, layer_activation_bits), searched (the layers' names), validation (the policy's simulation), search_model_validation (the fine-tuned search model, α one-hot: what training saw), bitops (the policy's, float layers at 32), argmax_bitops (before a move to the target), seconds, interrupted}.",
                examples: [BuiltinExample("m = load(\"../shared/reference/fmnist_mlp.npz\", into: zoo(\"mlp\")); r = edmips(m, fashion_mnist(split: \"train\", limit: 256), epochs: 1, fine_tune: 0); len(r.history)", "1")]) { args, interp in
            let m = try args.model("model")
            var e = EdMIPS()
            e.lambda = try args.number("lambda"); e.weightBits = try args.bitsList("bits"); e.activationBits = try args.bitsList("activation_bits")
            e.searchEpochs = try args.int("epochs"); e.fineTuneEpochs = try args.int("fine_tune"); e.ends = try args.optionalInt("ends")
            e.batchSize = try args.int("batch"); e.learningRate = Float(try args.number("lr")); e.alphaRate = Float(try args.number("alpha_lr"))
            e.seed = UInt64(truncatingIfNeeded: try args.int("seed"))
            e.bitOps = try args.optionalNumber("bitops"); e.tolerance = try args.number("tolerance"); e.checkpoint = try args.optionalString("checkpoint")
            guard e.searchEpochs >= 1, e.fineTuneEpochs >= 0, e.batchSize >= 1, e.learningRate > 0, e.alphaRate > 0, e.tolerance >= 0, e.tolerance < 1 else {
                throw args.fail("epochs ≥ 1, fine_tune ≥ 0, batch ≥ 1, positive lr and alpha_lr and tolerance in [0, 1) expected")
            }
            let (train, validation) = try args.trainingSplits(seed: e.seed)
            let r: EdMIPS.Result
            do {
                if case .object = args["policy"] {
                    let p = try args.object("policy", PolicyObject.self, what: "a Policy of Gaussian weights and HWGQ inputs to fine-tune").policy
                    r = try e.fineTune(m, policy: p, train: train, validation: validation) { interp.progress($0, done: true) }
                } else {
                    r = try e.run(m, train: train, validation: validation) { interp.progress($0, done: true) }
                }
            } catch let e as MixedPrecisionError { throw args.fail(e, method: "edmips") }
            let history: [Value] = r.history.map { h in
                .record(Record([("epoch", .number(Double(h.epoch))), ("loss", .number(h.loss)), ("train", .number(h.trainAccuracy)),
                                ("validation", .number(h.validationAccuracy)),
                                ("weight_bits", .number(h.expected.reduce(0) { $0 + $1.weight } / Double(max(1, h.expected.count)))),
                                ("activation_bits", .number(h.expected.reduce(0) { $0 + $1.activation } / Double(max(1, h.expected.count)))),
                                ("bitops", .number(h.expectedBitOps)),
                                ("layer_weight_bits", .list(h.expected.map { .number($0.weight) })),
                                ("layer_activation_bits", .list(h.expected.map { .number($0.activation) }))]))
            }
            let bitops = try CostModel.bitOps(activationBits: nil).cost(r.policy)
            return .record(Record([("policy", .object(PolicyObject(r.policy, model: m, origin: Record([("method", .string("edmips"))])))),
                                   ("searched", .list(r.searched.map { .string($0.layer) })),
                                   ("quantized", .model(r.quantized)), ("model", .model(r.model)), ("history", .list(history)),
                                   ("validation", .number(r.validationAccuracy)), ("search_model_validation", .number(r.searchModelValidationAccuracy)),
                                   ("bitops", .number(bitops)), ("argmax_bitops", try r.argmaxPolicy.map { .number(try CostModel.bitOps(activationBits: nil).cost($0)) } ?? .null),
                                   ("seconds", .number(r.seconds)), ("interrupted", .bool(r.interrupted))]))
        },
        Builtin("hmq", category: "search",
                [.required("model", .model), .required("data", .dataset), .optional("validation", .dataset), .optional("compression", .number),
                 .optional("average_bits", .number), .optional("bits", .list, .list([2, 3, 4, 5, 6, 7, 8].map { .number(Double($0)) })),
                 .optional("epochs", .integer, .number(3)), .optional("fine_tune", .integer, .number(2)), .optional("ends", .integer, .number(8)),
                 .optional("activation_bits", .integer, .number(8)), .optional("gamma", .number, .number(32)),
                 .optional("batch", .integer, .number(128)), .optional("lr", .number, .number(0.01)), .optional("logit_lr", .number, .number(0.05)),
                 .optional("tolerance", .number, .number(0.02)), .optional("seed", .integer, .number(0)), .optional("policy", .any),
                 .optional("checkpoint", .string)],
                returns: "Record",
                summary: "HMQ (METHODS.md §5): learns each layer's weight width and power-of-two threshold by a Gumbel-softmax over (bits × 8 thresholds T_max/2^j), the forward quantizer at the expected step and threshold, with the loss CE + gamma·relu((R_t − R̂)/R_t)² pulling the weight compression R̂ (against float32; 32/average bits, every layer counted) up to the target: `compression` (8 = 4 bits on average) or `average_bits` (one of them, default 8×). R_t ramps from 1 over the first half of the search; the temperature falls from 1 to ½ over each 5 epochs and restarts. Every layer but the first and last is searched over `bits` (2…8); the ends take `ends` bits (32: float). Weights (SGD Nesterov, one-cycle at lr) and the logits (Adam at logit_lr) step on the same batch for `epochs`; then each layer takes the argmax width of the marginal with the pow2 quantizer (per tensor, the least-error threshold) — HMQ's inference rule —, widths move along the marginals (most probable move first) until the compression is within `tolerance` of the target (0: the argmax alone; short searches leave broad marginals whose argmax misses the target), and the network is fine-tuned for `fine_tune` epochs with that choice fixed. Inputs of the searched layers stay float in the search and take activation_bits in the policy (32: float). validation: reported each epoch and at the end (default: 10% of data, seeded). One progress line per epoch (loss, accuracies, E[b], compression and target, temperature, time left); Ctrl-C returns what was learned (interrupted: true). checkpoint: a .npz path the search's whole state is written to after every epoch (the fine-tuning's beside it, -finetune.npz); when it exists, the same call continues from it and ends as an unbroken run would (epochs before the resume are missing from history). policy: a policy of that form (pow2 per-tensor mse weights, see policy(..., scheme: \"pow2\", clip: \"mse\", granularity: \"tensor\")) is fine-tuned with the same recipe instead — the equal-budget baseline. Returns {policy, quantized, model (fine-tuned float weights), history (per epoch: epoch, loss, train, validation, average_bits (expected), compression (expected), target, temperature, layer_bits), searched, validation, compression and average_bits (the policy's), argmax_bits and argmax_compression (the argmax before the move), seconds, interrupted}.",
                examples: [BuiltinExample("m = load(\"../shared/reference/fmnist_mlp.npz\", into: zoo(\"mlp\")); r = hmq(m, fashion_mnist(split: \"train\", limit: 256), epochs: 1, fine_tune: 0); [len(r.history), r.searched]", "[1, [\"fc2\"]]")]) { args, interp in
            let m = try args.model("model")
            var h = HMQ()
            switch (try args.optionalNumber("compression"), try args.optionalNumber("average_bits")) {
            case (let c?, nil): h.compression = c
            case (nil, let b?):
                guard b > 0, b.isFinite else { throw args.fail("average_bits must be a positive number, found \(Value.format(b))") }
                h.compression = 32 / b
            case (nil, nil): break
            default: throw args.fail("give compression or average_bits, not both")
            }
            h.bits = try args.bitsList("bits"); h.searchEpochs = try args.int("epochs"); h.fineTuneEpochs = try args.int("fine_tune")
            let ends = try args.int("ends"), acts = try args.int("activation_bits")
            h.ends = ends == 32 ? nil : ends; h.activationBits = acts == 32 ? nil : acts
            h.gamma = try args.number("gamma"); h.batchSize = try args.int("batch")
            h.learningRate = Float(try args.number("lr")); h.logitRate = Float(try args.number("logit_lr"))
            h.seed = UInt64(truncatingIfNeeded: try args.int("seed")); h.tolerance = try args.number("tolerance"); h.checkpoint = try args.optionalString("checkpoint")
            guard h.searchEpochs >= 1, h.fineTuneEpochs >= 0, h.batchSize >= 1, h.learningRate > 0, h.logitRate > 0, h.tolerance >= 0, h.tolerance < 1 else {
                throw args.fail("epochs ≥ 1, fine_tune ≥ 0, batch ≥ 1, positive lr and logit_lr and tolerance in [0, 1) expected")
            }
            for (name, b) in [("ends", ends), ("activation_bits", acts)] where !(2...8).contains(b) && b != 32 {
                throw args.fail("\(name) must be 2…8 or 32 (float), found \(b)")
            }
            let (train, validation) = try args.trainingSplits(seed: h.seed)
            let r: HMQ.Result
            do {
                if case .object = args["policy"] {
                    let p = try args.object("policy", PolicyObject.self, what: "a Policy of pow2 per-tensor weights to fine-tune").policy
                    r = try h.fineTune(m, policy: p, train: train, validation: validation) { interp.progress($0, done: true) }
                } else {
                    r = try h.run(m, train: train, validation: validation) { interp.progress($0, done: true) }
                }
            } catch let e as MixedPrecisionError { throw args.fail(e, method: "hmq") }
            let history: [Value] = r.history.map { e in
                .record(Record([("epoch", .number(Double(e.epoch))), ("loss", .number(e.loss)), ("train", .number(e.trainAccuracy)),
                                ("validation", .number(e.validationAccuracy)), ("average_bits", .number(32 / e.expectedCompression)),
                                ("compression", .number(e.expectedCompression)), ("target", .number(e.target)), ("temperature", .number(Double(e.temperature))),
                                ("layer_bits", .list(e.expectedBits.map { .number($0) }))]))
            }
            return .record(Record([("policy", .object(PolicyObject(r.policy, model: m, origin: Record([("method", .string("hmq"))])))),
                                   ("searched", .list(r.searched.map { .string($0.layer) })),
                                   ("quantized", .model(r.quantized)), ("model", .model(r.model)), ("history", .list(history)),
                                   ("validation", .number(r.validationAccuracy)), ("compression", .number(r.compression)),
                                   ("average_bits", .number(r.policy.averageBits)),
                                   ("argmax_bits", r.argmaxPolicy.map { p in .list(p.entries.map { .number(Double($0.weight?.uniformBits ?? 32)) }) } ?? .null),
                                   ("argmax_compression", r.argmaxPolicy.map { .number(32 / $0.averageBits) } ?? .null),
                                   ("seconds", .number(r.seconds)), ("interrupted", .bool(r.interrupted))]))
        },
        Builtin("pareto", category: "search",
                [.required("sensitivity", .any), .optional("cost", .choice(["size", "bitops", "energy"]), .string("size")), .optional("ties", .bool, .bool(true))],
                returns: "Frontier",
                summary: "Every allocation no other beats in both cost and summed sensitivity, found at once by dynamic programming (ZeroQ's frontier). cost: \"size\" (bytes), \"bitops\" or \"energy\" (µJ on BitFusion, see cost()). plot(f) draws it; f.policies lists a policy per point.",
                examples: [BuiltinExample("pareto(sensitivity(\(mlp), \(mnist), bits: [2, 8])).count", "5")]) { args, _ in
            let s = try args.object("sensitivity", SensitivityObject.self, what: "a Sensitivity table (from sensitivity())")
            let kind = try args.string("cost")
            let cost: CostModel
            switch kind {
            case "size": cost = .size
            case "bitops": cost = .bitOps(activationBits: nil)
            case "energy": cost = .bitFusionEnergy(activationBits: nil, rows: 16, columns: 32, constants: .horowitz45nm)
            default: throw args.fail("cost must be one of the declared choices, got \"\(kind)\"")
            }
            let problem = try BitAllocation(model: s.model, table: s.table, budgets: [(cost, .infinity)], tieSharedInputs: try args.bool("ties"))
            do { return .object(FrontierObject(try problem.paretoFrontier(), cost: cost, sensitivity: s)) }
            catch let f as MixedPrecisionError { throw args.fail(f.description) }
        },
        Builtin("predict_accuracy", category: "search",
                [.required("sensitivity", .any), .required("policy", .any), .required("known", .list), .optional("ceiling", .number, .number(1)),
                 .optional("floor", .number)],
                returns: "Number",
                summary: "A policy's predicted accuracy from its summed sensitivity Σ Ω under the table, calibrated on `known`: a list of {policy, accuracy} that were measured (a report's uniform baselines). Accuracy falls along a logistic curve in log Σ Ω from `ceiling` (pass the FP32 accuracy) to `floor` (default chance: 1/classes of the model's last layer); its midpoint and width are fitted to the known points by least squares. It knows only what the metric knows: measure before you trust it.",
                examples: [BuiltinExample("m = zoo(\"mlp\"); s = sensitivity(m, \(mnist), metric: \"mse\", bits: [2, 4, 8]); known = [{policy: policy(m, bits: 8), accuracy: 0.9}, {policy: policy(m, bits: 2), accuracy: 0.5}]; p = predict_accuracy(s, policy(m, bits: 4), known); p > 0.5 and p < 0.9", "true")]) { args, _ in
            let s = try args.object("sensitivity", SensitivityObject.self, what: "a Sensitivity table (from sensitivity())")
            let p = try args.object("policy", PolicyObject.self, what: "a Policy").policy
            guard case .list(let items) = args["known"] else { throw args.fail("'known' must be a List of {policy, accuracy}") }
            func objective(_ policy: Policy, _ what: String) throws -> Double {
                guard policy.layerNames == s.table.layers else { throw args.fail("\(what) is for other layers than the sensitivity table's") }
                guard let bits = policy.layerWiseBits else { throw args.fail("\(what) has float or per-channel layers, which a layer-wise table does not describe") }
                guard let o = s.table.objective(bits: bits) else {
                    throw args.fail("\(what) uses a width the table lacks (table: \(s.table.bits.map(String.init).joined(separator: ", ")))")
                }
                return o
            }
            var objectives: [Double] = [], accuracies: [Double] = []
            for (i, item) in items.enumerated() {
                guard case .record(let r) = item, case .object(let o)? = r["policy"], let known = o as? PolicyObject,
                      case .number(let a)? = r["accuracy"] else {
                    throw args.fail("known[\(i)] must be {policy: Policy, accuracy: Number}, got \(item.typeName)")
                }
                objectives.append(try objective(known.policy, "known[\(i)].policy")); accuracies.append(a)
            }
            do {
                let classes = s.model.layers.last?.weightShape.first ?? 1
                let floor = try args.optionalNumber("floor") ?? 1 / Double(max(classes, 1))
                let predictor = try AccuracyPredictor(objectives: objectives, accuracies: accuracies, floor: floor, ceiling: try args.number("ceiling"))
                return .number(predictor.predict(try objective(p, "the policy")))
            } catch let e as MixedPrecisionError { throw args.fail(e.description) }
        },
    ]
}
