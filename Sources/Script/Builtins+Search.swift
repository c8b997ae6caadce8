import Foundation
import MixedPrecision
import Network
import Quantization
import Tensors

extension Arguments {
    func object<T: ScriptObject>(_ name: String, _ type: T.Type, what: String) throws -> T {
        guard case .object(let o) = self[name], let t = o as? T else {
            throw fail("expected \(what) for '\(name)', got \(self[name].typeName)")
        }
        return t
    }

    func bitsList(_ name: String) throws -> [Int] {
        guard case .list(let xs) = self[name], !xs.isEmpty else { throw fail("'\(name)' must be a non-empty List of bit widths") }
        return try xs.map { v in
            guard case .number(let x) = v, let b = Convert.whole(x, in: 1...8) else {
                throw fail("'\(name)' must hold bit widths in 1…8, found \(v.shown)")
            }
            return b
        }
    }

    func granularity(_ name: String = "granularity") throws -> Granularity {
        try choice(name)
    }

    /// A stderr progress line for long work: "label 3/22 · 4 s, about 25 s left" (the time left
    /// from the mean pace so far). With `after`, nothing shows until that many seconds have
    /// passed (work that is usually quick, such as evaluate, stays silent when it is).
    func progress(_ interp: Interpreter, _ label: String, after: TimeInterval = 0) -> (Int, Int) -> Void {
        let start = Date()
        return { done, total in
            let spent = Date().timeIntervalSince(start)
            if spent < after { return }
            var line = "\(label) \(done)/\(total)"
            if spent >= 1 {
                line += " · \(Int(spent.rounded())) s"
                if done > 0 && done < total { line += ", about \(Int((spent / Double(done) * Double(total - done)).rounded())) s left" }
            }
            interp.progress(line, done: done == total)
        }
    }
}

extension Builtins {
    static let mnist = "fashion_mnist(split: \"train\", limit: 64)"
    static let mlp = "load(\"../shared/reference/fmnist_mlp.onnx\")"

    /// The traces and the method that computed them (`auto` resolved).
    static func traces(_ model: Model, _ data: Dataset, method: String, layers: [Layer], samples: Int, seed: UInt64,
                       _ args: Arguments, _ interp: Interpreter) throws -> (traces: [String: Double], method: String) {
        guard let m = HessianAnalysis.TraceMethod(rawValue: method)?.resolved(model: model, layers: layers) else {
            throw args.fail("method must be one of the declared choices, got \"\(method)\"")
        }
        return (try HessianAnalysis.traces(model: model, data: data, method: m, layers: layers, samples: samples, seed: seed,
                                           progress: args.progress(interp, "hessian (\(m.rawValue))")).mapValues(\.mean), m.rawValue)
    }

    static func layers(_ model: Model, _ v: Value, _ args: Arguments) throws -> [Layer] {
        guard case .list(let names) = v else { return model.layers }
        return try names.map { n in
            guard case .string(let s) = n, let l = model.layer(named: s) else {
                throw args.fail("no layer \(n.shown) in model '\(model.name)'; layers are \(model.layers.map(\.name).joined(separator: ", "))")
            }
            return l
        }
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

    /// The policy whose quantizers `sensitivity` measures under: `like`, or one quantizer for
    /// every layer from scheme/clip/rounding/group/granularity; nil for the reference.
    static func sensitivityTemplate(_ args: Arguments, _ m: Model, granularity: Granularity) throws -> Policy? {
        if case .object = args["like"] {
            let p = try args.object("like", PolicyObject.self, what: "a Policy whose quantizers to use").policy
            do { try p.check(against: m) } catch let e as QuantizationError { throw args.fail("like: \(e.message)") }
            return p
        }
        guard let q = try configuredQuantizer(args, bits: 8, granularity: granularity) else {
            return granularity == .perChannel ? nil : try Policy.uniform(m, bits: 8, granularity: granularity)
        }
        return try Policy(model: m, entries: m.layers.map { Policy.Entry(layer: $0, weight: Policy.Weight(q)) })
    }

    static let search: [Builtin] = [
        Builtin("distill", category: "sensitivity",
                [.required("model", .model), .optional("count", .integer, .number(32)), .optional("iterations", .integer, .number(500)),
                 .optional("lr", .number, .number(0.5)), .optional("std", .number, .number(1)), .optional("seed", .integer, .number(0))],
                returns: "Dataset",
                summary: "ZeroQ's distilled data: `count` images from N(0, std²) optimised with Adam (lr, iterations) so that every batch norm's input has the batch mean and standard deviation the norm remembers (plus the image batch pulled to mean 0, std 1). Labels are the model's own predictions. Needs the unfolded model (batch norms present). Shows progress.",
                examples: [BuiltinExample("distill(load(\"../shared/reference/fmnist_cnn.npz\", into: zoo(\"cnn\")), count: 4, iterations: 5).count", "4")]) { args, interp in
            let m = try args.model("model")
            var o = Distillation.Options()
            o.count = try args.int("count"); o.iterations = try args.int("iterations")
            o.learningRate = Float(try args.number("lr")); o.initialStd = Float(try args.number("std"))
            o.seed = UInt64(truncatingIfNeeded: try args.int("seed"))
            guard o.learningRate > 0, o.learningRate.isFinite, o.initialStd > 0, o.initialStd.isFinite else {
                throw args.fail("lr and std must be positive numbers")
            }
            let r = try Distillation.distill(m, options: o) { step, loss in
                if step % 10 == 0 || step == o.iterations {
                    interp.progress("distill \(step)/\(o.iterations) loss \(String(format: "%.4g", loss))", done: step == o.iterations)
                }
            }
            let labels = try m.run(r.images).output.argmax(axis: 1).scalars.map { Int($0) }
            return .dataset(try Dataset(name: "distilled from \(m.name)", images: r.images, labels: labels, classes: 10))
        },
        Builtin("hessian_trace", category: "sensitivity",
                [.required("model", .model), .required("data", .dataset), .optional("method", .choice(HessianAnalysis.TraceMethod.self), .string("auto")),
                 .optional("layers", .list), .optional("samples", .integer, .number(100)), .optional("seed", .integer, .number(0))],
                returns: "Record",
                summary: "Trace of each layer's diagonal Hessian block of the mean cross-entropy on `data` (evaluation mode), by layer name. \"auto\" (default): \"exact\" where it is cheap (piecewise-linear networks, or at most 4096 weights in all the layers asked for), else \"hutchinson\". \"exact\": for piecewise-linear networks (ReLU, max-pool, conv/linear, eval batch norm) the block equals the Gauss–Newton block and its diagonal comes from per-example gradients; otherwise one Hessian-vector product per weight (small layers). \"hutchinson\": mean of vᵀHv over Rademacher v drawn per layer, stopping at `samples` or when the mean moves by < 1e-3. Data past 512 images is analysed in chunks of 512 whose blocks combine as the mean loss's (H = Σ n_c/N·H_c), so memory stays that of one chunk.",
                examples: [BuiltinExample("hessian_trace(\(mlp), \(mnist), layers: [\"fc3\"]).fc3 > 0", "true")]) { args, interp in
            let m = try args.model("model")
            let layers = try layers(m, args["layers"], args)
            let t = try traces(m, try args.dataset("data"), method: try args.string("method"), layers: layers,
                               samples: try args.int("samples"), seed: UInt64(truncatingIfNeeded: try args.int("seed")), args, interp).traces
            return .record(Record(layers.map { ($0.name, .number(t[$0.name]!)) }))
        },
        Builtin("top_eigenvalue", category: "sensitivity",
                [.required("model", .model), .required("data", .dataset), .optional("layers", .list),
                 .optional("iterations", .integer, .number(30)), .optional("seed", .integer, .number(0))],
                returns: "Record",
                summary: "Largest eigenvalue of each layer's diagonal Hessian block, by power iteration from a seeded normal vector.",
                examples: [BuiltinExample("top_eigenvalue(\(mlp), \(mnist), layers: [\"fc3\"], iterations: 10).fc3 > 0", "true")]) { args, _ in
            let m = try args.model("model")
            let analysis = try HessianAnalysis(model: m, data: try args.dataset("data"))
            let layers = try layers(m, args["layers"], args)
            let iters = try args.int("iterations"), seed = UInt64(truncatingIfNeeded: try args.int("seed"))
            guard (1...10_000).contains(iters) else { throw args.fail("iterations must be in 1…10000, got \(iters)") }
            return .record(Record(try layers.map { ($0.name, .number(try analysis.topEigenvalue($0, iterations: iters, seed: seed))) }))
        },
        Builtin("sensitivity", category: "sensitivity",
                [.required("model", .model), .required("data", .dataset), .optional("metric", .choice(["hessian", "hawq", "fisher", "kl", "mpqnnco", "mse", "accuracy"]), .string("hessian")),
                 .optional("bits", .list, .list([2, 3, 4, 8].map { .number(Double($0)) })), .optional("granularity", .choice(Granularity.self), .string("channel")),
                 .optional("method", .choice(HessianAnalysis.TraceMethod.self), .string("auto")), .optional("samples", .integer, .number(100)), .optional("seed", .integer, .number(0)),
                 .optional("scheme", .choice(Quantizer.Scheme.self), .string("symmetric")), .optional("rounding", .choice(["nearest_even", "nearest_away", "stochastic"]), .string("nearest_even")),
                 .optional("clip", .any, .string("max")), .optional("group", .integer), .optional("like", .any)],
                returns: "Sensitivity",
                summary: "A layer × bits table of how much quantizing one layer's weights hurts (larger is worse). metric: \"hessian\" (HAWQ-V3: Tr(H)/P·‖Q_b(W)−W‖², traces by `method` as in hessian_trace), \"fisher\" (Σ F·ΔW², empirical Fisher diagonal), \"kl\" (ZeroQ: mean KL(fp‖q) with only that layer quantized), \"mpqnnco\" (½·E[Σp·Δo² − (Σp·Δo)²] of the logit change), \"mse\" (mean squared logit change), \"accuracy\" (accuracy lost on `data`). The weights go through the quantizer scheme/granularity/group/clip/rounding describe (as quantize's; default the reference), or, with like: a Policy, through each layer's quantizer of that policy at each candidate width — a search on the table then returns that policy with the widths it chose (its activation quantizers kept; binary layers stay at 1 bit, ternary at 2). Fields: metric, layers, bits, values, params, rows.",
                examples: [BuiltinExample("sensitivity(\(mlp), \(mnist), bits: [2, 4]).layers", "[\"fc1\", \"fc2\", \"fc3\"]"),
                           BuiltinExample("sensitivity(\(mlp), \(mnist), metric: \"kl\", bits: [2, 8]).values[0][0] > 0", "true")]) { args, interp in
            let m = try args.model("model"), data = try args.dataset("data")
            let bits = try args.bitsList("bits"), g = try args.granularity()
            let metric = try args.string("metric")
            let table: SensitivityTable
            let template = try sensitivityTemplate(args, m, granularity: g)
            var detail = "\(data.count) examples of \(data.name), " + (template == nil ? "\(g.rawValue)-wise weights" : "the \({ if case .null = args["like"] { return "given" }; return "policy's" }()) quantizers")
            switch metric {
            case "hessian", "hawq":
                let t = try traces(m, data, method: try args.string("method"), layers: m.layers, samples: try args.int("samples"),
                                   seed: UInt64(truncatingIfNeeded: try args.int("seed")), args, interp)
                table = try SensitivityTable.hawq(model: m, traces: t.traces, bits: bits, template: template)
                detail += ", \(t.method) Hessian traces"
            case "fisher":
                table = try SensitivityTable.fisher(model: m, images: data.images, labels: data.labels, bits: bits, template: template)
            case "kl", "mpqnnco", "mse", "accuracy":
                table = try SensitivityTable.measured(SensitivityTable.Metric(rawValue: metric)!, model: m, images: data.images,
                                                      labels: data.labels, bits: bits, template: template,
                                                      progress: args.progress(interp, "sensitivity (\(metric))"))
            default:
                throw args.fail("metric must be one of the declared choices, got \"\(metric)\"")
            }
            return .object(SensitivityObject(table, model: m, detail: detail))
        },
        Builtin("policy", category: "search",
                [.required("model", .model), .optional("bits", .any, .number(8)), .optional("activation_bits", .any),
                 .optional("granularity", .choice(Granularity.self), .string("channel")),
                 .optional("scheme", .any, .string("symmetric")), .optional("rounding", .choice(["nearest_even", "nearest_away", "stochastic"]), .string("nearest_even")),
                 .optional("clip", .any, .string("max")), .optional("group", .integer), .optional("seed", .integer, .number(0)),
                 .optional("activation_scheme", .any, .string("uniform")), .optional("activation_sign", .choice(Policy.Activation.Sign.self), .string("auto"))],
                returns: "Policy",
                summary: "A policy by hand. `bits`: one width for every layer, a List (one per layer, in model order) or a Record (layer name → bits; layers not named take 8); a width is 1…8 (1: binary), 32 or \"float\" (the layer keeps float weights), or a List of one width per output channel (kernel-wise). activation_bits likewise (nil: float; 1: binary, sign(x)·mean|x| as XNOR-Net). The weight quantizer: scheme (as quantize's: symmetric, symmetric_full, asymmetric, binary, ternary, gaussian, pow2; a String, or a Record layer → scheme), granularity, group, clip, rounding, seed. The activation quantizer: activation_scheme \"uniform\" (min/max calibrated), \"pow2\" (scale rounded up to a power of two), \"hwgq\" (HWGQ, 1…4 bits, step Δ_b·√(2·E[x²])) or \"binary\" — a String or a Record layer → scheme — and activation_sign \"auto\" (unsigned when the value never goes below 0), \"signed\" or \"unsigned\". Fields: layers, bits, activation_bits, schemes, activation_schemes, params, macs, average_bits, size, bitops, rows.",
                examples: [BuiltinExample("policy(zoo(\"mlp\"), bits: [8, 4, 8]).average_bits", "7.441657579062159"),
                           BuiltinExample("policy(zoo(\"mlp\"), bits: {fc1: 2}).bits", "[2, 8, 8]"),
                           BuiltinExample("policy(zoo(\"mlp\"), bits: [8, 4, \"float\"], scheme: {fc2: \"pow2\"}).schemes", "[\"symmetric\", \"pow2\", \"float\"]"),
                           BuiltinExample("policy(zoo(\"mlp\"), bits: {fc3: [2, 2, 2, 2, 2, 4, 4, 4, 8, 8]}).size", "234080"),
                           BuiltinExample("policy(zoo(\"mlp\"), activation_bits: 4, activation_scheme: \"hwgq\").activation_schemes", "[\"hwgq\", \"hwgq\", \"hwgq\"]")]) { args, _ in
            .object(PolicyObject(try handPolicy(args), model: try args.model("model")))
        },
        Builtin("search", category: "search",
                [.required("sensitivity", .any), .optional("solver", .choice(Search.Solver.self), .string("ilp")), .optional("size", .number),
                 .optional("bitops", .number), .optional("average_bits", .number), .optional("latency", .number),
                 .optional("energy", .number), .optional("pin", .record),
                 .optional("ends", .integer), .optional("ties", .bool, .bool(true))],
                returns: "Policy",
                summary: "The bit allocation minimising the table's summed sensitivity under the budgets given: size (weight bytes), bitops (Σ MACs·b·b, activations at the weight bits), average_bits (parameter-weighted; a size budget), latency (ms per image from the measured table, see latency()), energy (µJ per image on a 16×32 BitFusion array, activations at the weight bits; see cost()). pin: {layer: bits}; ends: pins the first and last layer (HAWQ and APQ use 8). Layers reading the same input (a block's conv and its 1×1 shortcut) take equal bits unless ties: false. solver: \"ilp\" (exact: branch and bound with Lagrangian bounds), \"greedy\" (multiple-choice knapsack on convex hulls; its gap to the optimum is reported), \"brute\" (enumeration, small problems). The policy's fields add solver, objective, gap and each budget's cost.",
                examples: [BuiltinExample("search(sensitivity(\(mlp), \(mnist), bits: [2, 4, 8]), average_bits: 4).average_bits <= 4", "true")]) { args, interp in
            let s = try args.object("sensitivity", SensitivityObject.self, what: "a Sensitivity table (from sensitivity())")
            let kinds: [(String, (Double) -> Search.Budget)] = [("size", Search.Budget.size), ("average_bits", Search.Budget.averageBits),
                                                                ("bitops", Search.Budget.bitOps), ("latency", Search.Budget.latency),
                                                                ("energy", Search.Budget.energy)]
            var search = Search(budgets: try kinds.compactMap { name, make in try args.optionalNumber(name).map(make) },
                                solver: try args.choice("solver"))
            search.ends = try args.optionalInt("ends")
            search.tieSharedInputs = try args.bool("ties")
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
            catch let e as NetworkError { throw args.fail(e.message.hasPrefix("search: ") ? String(e.message.dropFirst(8)) : e.message) }
            catch let f as BitAllocation.Failure { throw args.fail(f.description) }
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
            let limit: Double
            switch (try args.optionalNumber("average_bits"), try args.optionalNumber("size")) {
            case (let a?, nil): limit = try CostModel.size.uniformCost(m, bits: 1) * a
            case (nil, let s?): limit = s
            default: throw args.fail("give one budget: average_bits: (mean weight bits) or size: (bytes)")
            }
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
            } catch let e as NetworkError { throw args.fail(e.message) }
            catch let f as BitAllocation.Failure { throw args.fail(f.description) }
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
            catch let f as BitAllocation.Failure { throw args.fail(f.description) }
        },
        Builtin("latency", category: "costs",
                [.required("model", .model), .optional("policy", .any), .optional("bits", .list, .list([2, 3, 4, 5, 6, 8].map { .number(Double($0)) }))],
                returns: "Number or List",
                summary: "Measured latency on this machine: each conv/linear layer as integer_model runs it (W·A8: its VNNI kernel with requantization in the epilogue), one image on one core, cached in ~/.cache/mpq (MPQ_CACHE) per CPU and model. With a policy: its total in ms per image; without: rows {layer, widths…} in ms for table(). The engine multiplies every width from 2 to 8 bits as int8 (this CPU has nothing narrower), so each layer costs the same at every width: on this machine fewer bits save bytes and energy, not time. Pooling and the image's quantization are not included.",
                examples: [BuiltinExample("latency(zoo(\"mlp\"), policy(zoo(\"mlp\"), bits: 8), bits: [4, 8]) > 0", "true")]) { args, interp in
            let m = try args.model("model")
            if case .object = args["policy"] {
                let p = try args.object("policy", PolicyObject.self, what: "a Policy").policy
                try p.check(against: m)
                guard let bits = p.layerWiseBits, bits.allSatisfy({ (2...8).contains($0) }) else {
                    throw args.fail("the latency table covers layers of one 2…8-bit width; the policy has 1-bit, float or per-channel layers")
                }
                let t = try LatencyTable.cached(m, bits: Array(2...8), progress: args.progress(interp, "latency table")).table
                return .number(zip(p.layerNames, bits).reduce(0.0) { $0 + t.milliseconds[$1.0]![$1.1]! })
            }
            let bits = try args.bitsList("bits")
            guard bits.allSatisfy({ (2...8).contains($0) }) else { throw args.fail("the latency table covers 2…8-bit weights") }
            let t = try LatencyTable.cached(m, bits: Array(Set(bits).union(2...8)).sorted(), progress: args.progress(interp, "latency table")).table
            return .list(m.layers.map { l in
                .record(Record([("layer", .string(l.name))] + bits.map { ("\($0)-bit ms", .number(Double(String(format: "%.4g", t.milliseconds[l.name]![$0]!))!)) }))
            })
        },
        Builtin("integer_model", category: "quantizers",
                [.required("model", .model), .optional("policy", .any), .optional("calibration", .dataset), .optional("bias_correction", .bool, .bool(false)),
                 .optional("rounding", .choice(["nearest", "adaround"]), .string("nearest")), .optional("iterations", .integer, .number(1000))],
                returns: "IntegerModel",
                summary: "HAWQ-V3's integer-only engine: batch norm folded, per-channel weight codes at the policy's bits (stored packed, multiplied as int8), activation codes per tensor calibrated by min/max on `calibration`, Int32 accumulation and bias, dyadic requantization fused into the convolution kernel (AVX-512 VNNI, reading NHWC codes in place), residual branches rescaled to the add's scale, integer pooling. Binary layers (1-bit weights reading 1-bit activations) run XNOR-popcount on packed signs; 1-bit weights reading wider codes run as ±1 in the int8 kernel. bias_correction: true first takes each layer's weight-error shift out of its bias or batch norm, and rounding: \"adaround\" learns each weight's rounding (both as quantize's). The policy needs activation bits (policy(m, bits: 8, activation_bits: 8)). A model from qat() carries its policy: integer_model(q) leaves the policy out, and its learned steps become the engine's scales (each weight keeps the codes training saw, at step·|γ/σ| once batch norm is folded; each layer input its learned step; where one value feeds layers with different steps, the widest reader's, first in graph order among equals; calibration only for values no step covers). evaluate() and predict() run it. Its twins are float graphs: .simulation fake-quantizes real values at the engine's points with exact scales (what training sees; predictions agree, logits stray by a step where Float32 sums or the dyadic's 31-bit mantissa cross a rounding boundary); .dyadic_simulation is HAWQ-V3's, integer codes carried in floats and requantized by the engine's dyadic multipliers, and gives the engine's logits exactly.",
                examples: [BuiltinExample("m = load(\"../shared/reference/fmnist_cnn.npz\", into: zoo(\"cnn\")); q = integer_model(m, policy(m, bits: 8, activation_bits: 8), calibration: fashion_mnist(split: \"train\", limit: 64)); evaluate(q, fashion_mnist(split: \"test\", limit: 200)) > 0.85", "true"),
                           BuiltinExample("m = load(\"../shared/reference/fmnist_cnn.npz\", into: zoo(\"cnn\")); q = integer_model(m, policy(m, bits: 4, activation_bits: 8), calibration: fashion_mnist(split: \"train\", limit: 64)); x = fashion_mnist(split: \"test\", limit: 100); max(abs(predict(q, x) - predict(q.dyadic_simulation, x)))", "0"),
                           BuiltinExample("m = load(\"../shared/reference/fmnist_cnn.npz\", into: zoo(\"cnn\")); t = qat(m, bits: 4, activation_bits: 8, calibration: fashion_mnist(split: \"train\", limit: 64)); x = fashion_mnist(split: \"test\", limit: 200); abs(evaluate(integer_model(t), x) - evaluate(t, x)) <= 0.01", "true")]) { args, interp in
            let m = try args.model("model")
            var calibration: Tensor? = nil
            if case .dataset(let d) = args["calibration"] { calibration = d.images }
            do {
                if m.hasLearnedQuantization {
                    if case .object = args["policy"] { throw args.fail("model '\(m.name)' was made by qat() and carries its policy; leave the policy out") }
                    guard try !args.bool("bias_correction"), try args.string("rounding") == "nearest" else {
                        throw args.fail("a model from qat() keeps the codes it learned; bias_correction and rounding apply to a float model")
                    }
                    return .object(IntegerModelObject(try IntegerModel(learned: m, calibration: calibration)))
                }
                let p = try args.object("policy", PolicyObject.self, what: "a Policy (or a model from qat(), which carries its own)").policy
                guard let calibration else { throw args.fail("calibration: expected a Dataset to measure the activations' ranges on (fashion_mnist(split: \"train\", limit: 256))") }
                let c = try m.corrected(for: p, calibration: calibration, biasCorrection: try args.bool("bias_correction"),
                                        rounding: try args.string("rounding") == "adaround" ? AdaRound(iterations: try args.int("iterations")) : nil,
                                        progress: args.progress(interp, "adaround"))
                return .object(IntegerModelObject(try IntegerModel(model: c.model, policy: c.policy, calibration: calibration)))
            } catch let e as QuantizationError { throw args.fail(e.message) }
        },
        Builtin("bitops", category: "costs", [.required("model", .model), .optional("policy", .any)], returns: "Number",
                summary: "BitOps per image, Σ MACs·b_w·b_a: at FP32 (32·32) without a policy, else under it (float activations count 32 bits). HAWQ normalises by the FP32 figure.",
                examples: [BuiltinExample("bitops(zoo(\"mlp\"))", "240386048"),
                           BuiltinExample("bitops(zoo(\"mlp\"), policy(zoo(\"mlp\"), bits: 4, activation_bits: 4))", "3756032")]) { args, _ in
            let m = try args.model("model")
            guard case .object = args["policy"] else { return .number(Double(m.layers.reduce(0) { $0 + $1.macs }) * 1024) }
            let p = try args.object("policy", PolicyObject.self, what: "a Policy").policy
            try p.check(against: m)
            return .number(try CostModel.bitOps(activationBits: nil).cost(p))
        },
        Builtin("cost", category: "costs",
                [.required("model", .model), .required("policy", .any), .optional("kind", .choice(["size", "bitops", "bitfusion", "energy"]), .string("size")),
                 .optional("rows", .integer, .number(16)), .optional("columns", .integer, .number(32)),
                 .optional("core_pj", .number, .number(CostModel.EnergyConstants.horowitz45nm.core)),
                 .optional("sram_pj", .number, .number(CostModel.EnergyConstants.horowitz45nm.sram)),
                 .optional("dram_pj", .number, .number(CostModel.EnergyConstants.horowitz45nm.dram))],
                returns: "Number",
                summary: "A policy's cost per image: kind \"size\" (weight bytes), \"bitops\" (Σ MACs·b_w·b_a, float activations at 32), \"bitfusion\" (cycles on a rows×columns BitFusion array: speed-up ⌊8/max(a,2)⌋·⌊8/max(w,2)⌋ over 8×8, cycles = ⌈Cout/columns⌉·Hout·Wout·Kh·Kw·⌈Cin/(rows·speed-up)⌉) or \"energy\" (µJ on that array: cycles × rows·columns × core_pj, plus SRAM bits × sram_pj — each (pixel, tap, input channel) activation streamed once per tile of columns outputs at its bits, each output written once at 32 — plus DRAM bits × dram_pj — the weights once at their bits). Defaults: 45 nm (Horowitz, ISSCC 2014): core 0.3 pJ (8-bit multiply + 32-bit add), SRAM 5/32 pJ/bit, DRAM 640/32 pJ/bit. Activations take the weight bits where the policy leaves them float.",
                examples: [BuiltinExample("cost(zoo(\"mlp\"), policy(zoo(\"mlp\"), bits: 8), kind: \"bitfusion\")", "464"),
                           BuiltinExample("cost(zoo(\"mlp\"), policy(zoo(\"mlp\"), bits: 2), kind: \"bitfusion\")", "37"),
                           BuiltinExample("round(cost(zoo(\"mlp\"), policy(zoo(\"mlp\"), bits: 8), kind: \"energy\"))", "38"),
                           BuiltinExample("round(cost(zoo(\"mlp\"), policy(zoo(\"mlp\"), bits: 4), kind: \"energy\"))", "19")]) { args, _ in
            let m = try args.model("model")
            let p = try args.object("policy", PolicyObject.self, what: "a Policy").policy
            try p.check(against: m)
            let kind = try args.string("kind")
            let model: CostModel
            switch kind {
            case "size": model = .size
            case "bitops": model = .bitOps(activationBits: nil)
            default:
                let rows = try args.int("rows"), cols = try args.int("columns")
                guard rows > 0, cols > 0, rows <= 4096, cols <= 4096 else { throw args.fail("rows and columns must be in 1…4096") }
                model = kind == "energy" ? .bitFusionEnergy(activationBits: nil, rows: rows, columns: cols, constants: try energyConstants(args))
                    : .bitFusion(activationBits: nil, rows: rows, columns: cols)
            }
            do { return .number(try model.cost(p)) } catch let e as NetworkError { throw args.fail(e.message.replacingOccurrences(of: "cost: ", with: "")) }
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
            } catch let e as PredictorError { throw args.fail(e.description) }
        },
    ]
}

/// The BitFusion energy constants a call gives (pJ), checked.
private func energyConstants(_ args: Arguments) throws -> CostModel.EnergyConstants {
    let e = CostModel.EnergyConstants(core: try args.number("core_pj"), sram: try args.number("sram_pj"), dram: try args.number("dram_pj"))
    guard [e.core, e.sram, e.dram].allSatisfy({ $0.isFinite && $0 >= 0 }) else {
        throw args.fail("core_pj, sram_pj and dram_pj must be finite and ≥ 0, got \(e.core), \(e.sram), \(e.dram)")
    }
    return e
}
