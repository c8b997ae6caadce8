import Foundation
import MixedPrecision
import Network
import Quantization
import Tensors

/// Searches by reinforcement learning: AutoQ's two DDPG agents.
extension Builtins {
    /// A width range from a List [low, high].
    static func widthRange(_ v: Value, _ args: Arguments, what: String, within: ClosedRange<Int>) throws -> ClosedRange<Int> {
        guard case .list(let xs) = v, xs.count == 2, case .number(let a) = xs[0], case .number(let b) = xs[1],
              let lo = Convert.whole(a, in: within), let hi = Convert.whole(b, in: within), lo <= hi else {
            throw args.fail("\(what): expected [low, high] whole widths within \(within.lowerBound)…\(within.upperBound), found \(v.shown)")
        }
        return lo...hi
    }

    static let agents: [Builtin] = [
        Builtin("autoq_search", category: "search",
                [.required("model", .model), .required("data", .dataset), .optional("energy", .number), .optional("latency", .number),
                 .optional("bitops", .number), .optional("size", .number), .optional("average_bits", .number),
                 .optional("episodes", .integer, .number(100)), .optional("bits", .list, .list([2, 8].map { .number(Double($0)) })),
                 .optional("activation_bits", .list), .optional("ends", .integer, .number(8)),
                 .optional("mode", .string, .string("resource")), .optional("cost_weight", .number, .number(0.1)),
                 .optional("random", .bool, .bool(false)), .optional("warmup", .integer, .number(20)), .optional("updates", .integer, .number(32)),
                 .optional("calibration", .dataset), .optional("seed", .integer, .number(0)),
                 .optional("checkpoint", .string), .optional("sensitivity", .dataset)],
                returns: "Policy",
                summary: "AutoQ (METHODS.md §7, reconstructed): kernel-wise weight widths (one per output channel, within bits: [low, high]) and, with activation_bits: [low, high], per-layer activation widths (calibrated on `calibration`), searched by two DDPG agents (HAQ's defaults: 400-300 actor and critic, lr 1e-4/1e-3, τ 0.01, batch 64, `warmup` random episodes, noise σ 0.5 × 0.99 per episode). Each episode the high-level agent sets each layer's weight-bit goal (and activation width), the low-level agent each kernel's width from the layer, the goal and the kernel's weight statistics; the policy is evaluated on `data` (a validation split). mode \"resource\": the widest kernels are lowered one step at a time (the least preferred first) until the one budget given holds (energy: µJ on BitFusion, bitops:, size: bytes, average_bits:, latency: ms from the measured table, a kernel-wise layer at its widest kernel's width; activations counted at each layer's weight bits unless searched), reward 0.1·(accuracy − float accuracy); mode \"accuracy\": nothing lowered, reward (accuracy − float) − cost_weight·cost/cost at 8 bits. ends: the first and last layer's width. random: true gives random search with as many episodes (the baseline). One progress line per episode (reward, accuracy, cost, best so far); Ctrl-C ends the search with the best policy. checkpoint: a .npz path the search's whole state (both agents with their replay buffers, every evaluated policy, the history, the best) is written to atomically after every episode; when it exists, the same call continues from it and ends as an unbroken search would (a checkpoint of another search — model, split, budget or options — is refused). sensitivity: images (e.g. 256 training images) on which each kernel's Gauss–Newton sensitivity at every width is measured (as kernel_search's); the resource mode then lowers, instead of the widest kernels, the kernel whose next step down adds the least sensitivity per unit of cost saved (the least preferred first among equals; no kernel ends wider than its agent chose) — our addition to AutoQ. The Policy's fields add accuracy (validation), reward, the budget's cost, evaluations and history (per episode: episode, reward, accuracy, cost, best_accuracy).",
                examples: [BuiltinExample("m = load(\"../shared/reference/fmnist_mlp.npz\", into: zoo(\"mlp\")); p = autoq_search(m, fashion_mnist(split: \"train\", limit: 64), average_bits: 4, episodes: 3, warmup: 2, ends: nil); [p.average_bits <= 4, len(p.history)]", "[true, 3]")]) { args, interp in
            let m = try args.model("model")
            var o = AutoQ.Options()
            o.episodes = try args.int("episodes"); o.seed = UInt64(truncatingIfNeeded: try args.int("seed"))
            o.weightBits = try widthRange(args["bits"], args, what: "bits", within: 1...8)
            if case .null = args["activation_bits"] {} else { o.activationBits = try widthRange(args["activation_bits"], args, what: "activation_bits", within: 1...16) }
            o.ends = try args.optionalInt("ends"); o.random = try args.bool("random"); o.updates = try args.int("updates")
            o.agent.warmup = try args.int("warmup"); o.checkpoint = try args.optionalString("checkpoint")
            switch try args.string("mode") {
            case "resource": o.mode = .resourceConstrained
            case "accuracy": o.mode = .accuracyGuaranteed(costWeight: try args.number("cost_weight"))
            case let other: throw args.fail("mode: expected \"resource\" or \"accuracy\", found \"\(other)\"")
            }
            var calibration: Tensor? = nil
            if case .dataset(let d) = args["calibration"] { calibration = d.images }
            let budget = try oneBudget(args)
            do {
                let (cost, limit) = try budget.costModel(for: m, widths: Array(o.weightBits), activationBits: nil)
                var table: KernelWiseTable? = nil
                if case .dataset(let d) = args["sensitivity"] { table = try KernelWiseTable.measure(model: m, data: d, bits: Array(o.weightBits)) }
                let r = try AutoQ(options: o).run(m, validation: try args.dataset("data"), cost: cost, budget: limit, calibration: calibration, sensitivity: table) {
                    interp.progress($0.line, done: true)
                }
                let history: [Value] = r.history.map { e in
                    .record(Record([("episode", .number(Double(e.index + 1))), ("reward", .number(e.reward)), ("accuracy", .number(e.accuracy)),
                                    ("cost", .number(e.cost)), ("best_accuracy", .number(e.bestAccuracy))]))
                }
                let origin = Record([("accuracy", .number(r.accuracy)), ("reward", .number(r.reward)), (cost.name, .number(r.cost)),
                                     ("evaluations", .number(Double(r.evaluations))), ("history", .list(history)), ("interrupted", .bool(r.interrupted))])
                return .object(PolicyObject(r.policy, model: m, origin: origin))
            } catch let e as MixedPrecisionError { throw args.fail(e, method: "autoq") }
        },
    ]
}
