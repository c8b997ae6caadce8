import Foundation
import MixedPrecision
import Network
import Quantization
import Tensors

/// The sensitivity builtins: Hessian traces and eigenvalues, sensitivity tables, distillation.
extension Builtins {
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

    static let sensitivity: [Builtin] = [
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
    ]
}
