import Foundation
import MixedPrecision
import Network
import Quantization
import Tensors

extension Builtins {
    /// The quantizer `quantize`'s scheme/rounding/clip/group arguments ask for, or nil when they
    /// are all at their defaults (the reference quantizer then runs, 1 bit meaning binary).
    /// `scheme` overrides the argument of that name (a caller whose scheme varies by layer).
    static func configuredQuantizer(_ args: Arguments, bits: Int, granularity: Granularity, scheme override: String? = nil) throws -> Quantizer? {
        let schemeName = try override ?? args.string("scheme"), roundingName = try args.string("rounding")
        let group = try args.optionalInt("group")
        let isDefaultClip: Bool = { if case .string("max") = args["clip"] { return true }; return false }()
        if schemeName == "symmetric" && roundingName == "nearest_even" && isDefaultClip && group == nil { return nil }
        let scheme: Quantizer.Scheme = try override.flatMap(Quantizer.Scheme.init(rawValue:)) ?? args.choice("scheme")
        let rounding: Quantizer.Rounding
        switch roundingName {
        case "nearest_even": rounding = .nearestEven
        case "nearest_away": rounding = .nearestAway
        case "adaround": throw args.fail("rounding \"adaround\" learns from calibration data, for a model and its policy: quantize(m, p, calibration: data, rounding: \"adaround\")")
        default: rounding = .stochastic(seed: UInt64(truncatingIfNeeded: try args.int("seed")))
        }
        let clipping: Quantizer.Clipping
        switch args["clip"] {
        case .string("max"): clipping = .max
        case .string("mse"): clipping = .mse
        case .number(let p): clipping = .percentile(p)
        case let v: throw args.fail("clip must be \"max\", \"mse\" or a percentile (a Number in (50, 100]); got \(v.shown)")
        }
        let slicing: Quantizer.Slicing = group.map { .group($0) } ?? (granularity == .perChannel ? .channel : .tensor)
        return Quantizer(bits: bits, scheme: scheme, slicing: slicing, rounding: rounding, clipping: clipping)
    }

    static let quantizers: [Builtin] = [
        Builtin("qat", category: "quantizers",
                [.required("model", .model), .optional("bits", .any, .number(4)), .optional("activation_bits", .integer),
                 .optional("calibration", .dataset)],
                returns: "Model",
                summary: "A copy of the model for quantization-aware training with LSQ: every conv/linear weight through a learned quantizer (one step per output channel, signed narrow range), and with activation_bits every layer's input through one (steps started on `calibration`). train() learns the steps with the weights; evaluate() runs the quantized simulation. The CNN at 2-bit weights: 21.6% after rounding, 91.3% after one epoch (train(q, data.train, epochs: 1, lr: 0.01)). qat(m, p) with a Policy in place of bits fine-tunes a mixed policy: each layer at its width (float layers stay float), activations where the policy has them (symmetric layer-wise widths of 2…8 bits, uniform activations).",
                examples: [BuiltinExample("len(qat(zoo(\"cnn\"), bits: 2).layers)", "5"),
                           BuiltinExample("m = zoo(\"mlp\"); q = qat(m, policy(m, bits: [8, 2, \"float\"], activation_bits: {fc2: 4}), calibration: fashion_mnist(split: \"train\", limit: 16)); len(keys(q.parameters)) - len(keys(m.parameters))", "3")]) { args, _ in
            var calibration: Tensor? = nil
            if case .dataset(let d) = args["calibration"] { calibration = d.images }
            do {
                if case .object(let o as PolicyObject) = args["bits"] {
                    return .model(try args.model("model").learnedQuantization(policy: o.policy, calibration: calibration))
                }
                return .model(try args.model("model").learnedQuantization(weightBits: try args.int("bits"), activationBits: try args.optionalInt("activation_bits"),
                                                                          calibration: calibration))
            } catch let e as QuantizationError { throw args.fail(e.message) }
        },
        Builtin("packed", category: "quantizers",
                [.required("x", .tensorLike), .optional("bits", .any, .number(4)), .optional("scheme", .choice(Quantizer.Scheme.self), .string("symmetric")),
                 .optional("granularity", .choice(Granularity.self), .string("channel")), .optional("group", .integer)],
                returns: "PackedTensor",
                summary: "Quantizes a tensor and stores its codes packed at `bits` per code with a scale (and zero point) per slice: exact bytes (.bytes), dequantize(p), save(p, \"w.mpqt\") and load(\"w.mpqt\"). Schemes as quantize: symmetric, symmetric_full, asymmetric, binary (1 bit), ternary (2 bits). bits: a List of one width per output channel packs kernel-wise (each channel at its width, 1 bit binary; bytes ⌈Σ params_c·bits_c/8⌉ + 4 per scale).",
                examples: [BuiltinExample("packed(ones([64, 64]), bits: 4).bytes", "2304"),
                           BuiltinExample("packed(ones([4, 16]), bits: [2, 4, 8, 1]).bytes", "46"),
                           BuiltinExample("dequantize(packed([0.5, -1, 0.25], bits: 3, granularity: \"tensor\"))", "Tensor[3] [0.6667, -1, 0.3333]")]) { args, _ in
            let t = try args.tensor("x")
            let g = try args.string("granularity")
            let scheme: Quantizer.Scheme = try args.choice("scheme")
            let slicing: Quantizer.Slicing = try args.optionalInt("group").map { .group($0) } ?? (g == "tensor" || t.rank <= 1 ? .tensor : .channel)
            do {
                if case .list(let xs) = args["bits"] {
                    let widths = try xs.map { v -> Int in
                        guard case .number(let x) = v, let b = Convert.whole(x, in: 1...8) else { throw args.fail("bits: per-channel widths must be whole numbers in 1…8, found \(v.shown)") }
                        return b
                    }
                    return .object(PackedTensorObject(try PackedTensor(t, weight: Policy.Weight(Quantizer(bits: 8, scheme: scheme)).perChannel(widths))))
                }
                return .object(PackedTensorObject(try PackedTensor(t.rank == 0 ? try t.reshaped([1]) : t,
                                                                   quantizer: Quantizer(bits: try args.int("bits"), scheme: scheme, slicing: slicing))))
            } catch let e as QuantizationError { throw args.fail(e.message) }
        },
        Builtin("dequantize", category: "quantizers", [.required("packed", .any)], returns: "Tensor",
                summary: "The float values a packed tensor's codes stand for: (q − z)·s per slice.",
                examples: [BuiltinExample("dequantize(packed([1, -1, 0.5], bits: 2, granularity: \"tensor\"))", "Tensor[3] [1, -1, 0]")]) { args, _ in
            guard case .object(let o) = args["packed"], let p = o as? PackedTensorObject else {
                throw args.fail("expected a PackedTensor (from packed() or load(\"….mpqt\")), got \(args["packed"].typeName)")
            }
            return .tensor(p.packed.dequantize())
        },
        Builtin("bnn", category: "quantizers",
                [.required("model", .model), .required("data", .dataset), .optional("validation", .dataset),
                 .optional("weight_epochs", .integer, .number(2)), .optional("epochs", .integer, .number(4)),
                 .optional("lr", .number, .number(0.001)), .optional("batch", .integer, .number(128)), .optional("ends", .integer, .number(8)),
                 .optional("architecture", .string), .optional("seed", .integer, .number(0)),
                 .optional("distill", .number, .number(0)), .optional("temperature", .number, .number(1))],
                returns: "Record",
                summary: "Trains the binary variant of a zoo cnn or resnet20 (METHODS.md §8), starting from `model`'s weights: XNOR-Net layers (weights α_c·sign(W) per output channel, α_c = mean|W_c|; sign activations with the clipped straight-through gradient) between a real first and last layer, Bi-Real real-valued shortcuts around each binary convolution of ResNet-20 (its 1×1 projections real). Two stages with Adam and cosine decay from lr: `weight_epochs` with binary weights and real activations (hardtanh), then `epochs` with both binary. The real layers take `ends` bits (32: float) in the result. distill: a weight in 0…1 for knowledge distillation from `model` itself (the loss (1 − distill)·cross-entropy + distill·T²·KL(softmax(teacher/T) ‖ softmax(student/T)), T = temperature) in both stages; 0 trains on the labels alone. architecture: \"cnn\" or \"resnet20\" (default: the model's name). validation: reported each epoch (default: 10% of data, seeded). One progress line per epoch; Ctrl-C ends training with what was learned. Returns {model (the binary network, real layers float), quantized (real layers at ends bits), policy, history (stage, epoch, loss, train, validation), validation, seconds, interrupted}.",
                examples: [BuiltinExample("m = load(\"../shared/reference/fmnist_cnn.npz\", into: zoo(\"cnn\")); r = bnn(m, fashion_mnist(split: \"train\", limit: 256), weight_epochs: 1, epochs: 1); [len(r.history), r.policy.bits, r.policy.activation_bits]", "[2, [8, 1, 1, 1, 8], [8, 1, 1, 1, 8]]")]) { args, interp in
            let m = try args.model("model")
            var t = BinaryTraining()
            t.weightStageEpochs = try args.int("weight_epochs"); t.binaryStageEpochs = try args.int("epochs")
            t.learningRate = Float(try args.number("lr")); t.batchSize = try args.int("batch"); t.seed = UInt64(truncatingIfNeeded: try args.int("seed"))
            (t.distillationWeight, t.temperature) = (try args.number("distill"), try args.number("temperature"))
            guard (0...1).contains(t.distillationWeight), t.temperature > 0, t.temperature.isFinite else {
                throw args.fail("distill must be a weight in 0…1 and temperature positive, found \(t.distillationWeight) and \(t.temperature)")
            }
            let ends = try args.int("ends")
            guard (2...8).contains(ends) || ends == 32 else { throw args.fail("ends must be 2…8 or 32 (float), found \(ends)") }
            t.ends = ends == 32 ? nil : ends
            let architecture = try args.optionalString("architecture") ?? m.name
            let (train, validation) = try args.trainingSplits(seed: t.seed)
            let r: BinaryTraining.Result
            do { r = try t.run(m, architecture: architecture, train: train, validation: validation) { interp.progress($0, done: true) } }
            catch let e as QuantizationError { throw args.fail(e, method: "bnn") }
            let history: [Value] = r.history.map { e in
                .record(Record([("stage", .number(Double(e.stage))), ("epoch", .number(Double(e.epoch))), ("loss", .number(e.loss)),
                                ("train", .number(e.trainAccuracy)), ("validation", .number(e.validationAccuracy))]))
            }
            return .record(Record([("model", .model(r.model)), ("quantized", .model(r.quantized)),
                                   ("policy", .object(PolicyObject(r.policy, model: r.model, origin: Record([("method", .string("bnn"))])))),
                                   ("history", .list(history)), ("validation", .number(r.validationAccuracy)),
                                   ("seconds", .number(r.seconds)), ("interrupted", .bool(r.interrupted))]))
        },
        Builtin("binarize", category: "quantizers", [.required("x", .tensorLike), .optional("granularity", .choice(Granularity.self), .string("channel"))],
                returns: "Tensor",
                summary: "XNOR-Net's binary weights: sign(x)·mean|x| per output channel (or per tensor), sign(0) = +1.",
                examples: [BuiltinExample("binarize([[1, -3], [0, 2]])", "Tensor[2, 2] [[2, -2], [1, 1]]")]) { args, _ in
            let t = try args.tensor("x")
            let granularity: Granularity = try args.choice("granularity")
            return .tensor(try WeightQuantizer.quantize(t.rank == 0 ? try t.reshaped([1]) : t, bits: 1,
                                                        granularity: t.rank <= 1 ? .perTensor : granularity).reshaped(t.shape))
        },
        Builtin("hwgq", category: "quantizers", [.required("x", .tensorLike), .optional("bits", .integer, .number(2))], returns: "Tensor",
                summary: "HWGQ, EdMIPS' activation quantizer for unit-variance inputs: clamp to [0, Δ_b·(2^b − 1)], round to steps Δ_b (1: 0.799, 2: 0.538, 3: 0.3217, 4: 0.185).",
                examples: [BuiltinExample("hwgq([-1, 0.3, 0.6, 5], bits: 2)", "Tensor[4] [0, 0.538, 0.538, 1.614]")]) { args, _ in
            do { return .tensor(try Quantizer.hwgq(try args.tensor("x"), bits: try args.int("bits"))) }
            catch let e as QuantizationError { throw args.fail(e.message) }
        },
        Builtin("dyadic", category: "quantizers", [.required("scale", .number), .optional("y", .integer)], returns: "Record or Number",
                summary: "HAWQ-V3's dyadic requantization: a scale s as b/2^c (frexp(s) = (m, e), b = round(m·2^31), c = 31 − e). With y: (y·b + 2^(c−1)) >> c, y·s rounded half up in integers.",
                examples: [BuiltinExample("dyadic(0.0123)", "{multiplier: 1690499128, shift: 37, value: 0.012300000002142042}"),
                           BuiltinExample("dyadic(0.0123, y: 12345)", "152")]) { args, _ in
            let d: Dyadic
            do { d = try Dyadic(try args.number("scale")) } catch let e as QuantizationError { throw args.fail(e.message) }
            if let y = try args.optionalInt("y") {
                guard abs(y) < 1 << 40 else { throw args.fail("y must lie within ±2^40, got \(y)") }
                return .number(Double(d.apply(Int64(y))))
            }
            return .record(Record([("multiplier", .number(Double(d.multiplier))), ("shift", .number(Double(d.shift))), ("value", .number(d.value))]))
        },
        Builtin("quantize", category: "quantizers",
                [.required("x", .any), .optional("bits", .any, .number(8)), .optional("granularity", .choice(Granularity.self), .string("channel")),
                 .optional("activation_bits", .integer), .optional("calibration", .any),
                 .optional("scheme", .choice(Quantizer.Scheme.self), .string("symmetric")), .optional("rounding", .choice(["nearest_even", "nearest_away", "stochastic", "adaround"]), .string("nearest_even")),
                 .optional("clip", .any, .string("max")), .optional("group", .integer), .optional("seed", .integer, .number(0)),
                 .optional("bias_correction", .bool, .bool(false)), .optional("iterations", .integer, .number(1000)),
                 .optional("sequential", .bool, .bool(false))],
                returns: "Tensor or Model",
                summary: "quantize(model, policy) simulates a mixed-precision policy (activation bits need calibration); with bias_correction: true, each layer's output shift from its weight error, Σ ΔW·E[input patch] measured on `calibration`, is taken out of its bias or the batch norm after it (Nagel et al.'s empirical bias correction, as Sony MCT applies it); with rounding: \"adaround\", each weight of the policy's grid learns whether to round up or down so that each layer's output on `calibration` is reconstructed (AdaRound, layer by layer in network order, `iterations` Adam steps per layer; with bias_correction, the shifts are taken out as it goes). Otherwise the reference weight quantizer (symmetric, narrow range, max-abs scale, round half to even; 1 bit = sign·mean|W|), simulated in float. On a tensor: its quantized values (granularity \"channel\" = one scale per slice of dimension 0, or \"tensor\"). On a model: every conv/linear weight quantized; with activation_bits, every layer's input too, calibrated by min/max on `calibration` (a Dataset or Tensor) — all inputs at once on the weight-quantized model, or with sequential: true (policies) layer by layer with the quantizers before in place, as HWGQ's σ-scaled steps at low widths need. Other quantizers (weights): scheme \"symmetric\" (narrow), \"symmetric_full\", \"asymmetric\" (zero point), \"binary\" (1 bit), \"ternary\" (2 bits, TWN's 0.7·mean|W| threshold), \"gaussian\" (EdMIPS, 1…4 bits), \"pow2\" (HMQ: threshold T_max/2^j, T_max the least power of two ≥ max|W|, step T/2^(b−1); clip \"mse\" picks the best j); group: N scales per N consecutive weights of a channel; rounding \"nearest_even\", \"nearest_away\", \"stochastic\" (seeded) or \"adaround\" (learned, models with a policy only); clip \"max\", \"mse\" (the clipping range of least squared error) or a percentile of |x| such as 99.9.",
                examples: [BuiltinExample("quantize([0.5, -1, 0.25], bits: 3, granularity: \"tensor\")", "Tensor[3] [0.6667, -1, 0.3333]"),
                           BuiltinExample("evaluate(quantize(load(\"../shared/reference/fmnist_mlp.onnx\"), bits: 4), fashion_mnist(split: \"test\", limit: 200)) > 0.8", "true"),
                           BuiltinExample("quantize([0, 0.5, 1, 3], bits: 2, scheme: \"asymmetric\", granularity: \"tensor\")", "Tensor[4] [0, 0, 1, 3]"),
                           BuiltinExample("quantize([0.1, -0.9, 0.05, 1.1], bits: 2, scheme: \"ternary\", granularity: \"tensor\")", "Tensor[4] [0, -1, 0, 1]"),
                           BuiltinExample("quantize([1, 2, 3, 40], bits: 4, clip: 70, granularity: \"tensor\")", "Tensor[4] [0.8571, 2.143, 3, 3]"),
                           BuiltinExample("quantize([0.3, -0.2, 0.05, 0.6], bits: 3, scheme: \"pow2\", granularity: \"tensor\")", "Tensor[4] [0.25, -0.25, 0, 0.5]"),
                           BuiltinExample("m = load(\"../shared/reference/fmnist_mlp.onnx\"); p = policy(m, bits: 2); c = fashion_mnist(split: \"train\", limit: 256); x = fashion_mnist(split: \"test\", limit: 500); evaluate(quantize(m, p, calibration: c, rounding: \"adaround\", iterations: 200), x) > evaluate(quantize(m, p), x)", "true")]) { args, interp in
            if case .object(let o) = args["bits"], let p = o as? PolicyObject {
                guard case .model(let m) = args["x"] else { throw args.fail("a policy applies to a model, got \(args["x"].typeName)") }
                var calibration: Tensor? = nil
                if case .dataset(let d) = args["calibration"] { calibration = d.images }
                let adaround = try args.string("rounding") == "adaround"
                if try args.bool("bias_correction") || adaround {
                    guard let calibration else { throw args.fail("\(adaround ? "rounding: \"adaround\"" : "bias_correction") needs calibration data (calibration: a Dataset)") }
                    do {
                        return .model(try m.quantized(policy: p.policy, calibration: calibration, biasCorrection: try args.bool("bias_correction"),
                                                      rounding: adaround ? AdaRound(iterations: try args.int("iterations")) : nil,
                                                      progress: args.progress(interp, "adaround")))
                    } catch let e as QuantizationError { throw args.fail(e.message) }
                }
                return .model(try m.quantized(policy: p.policy, calibration: calibration, sequential: try args.bool("sequential")))
            }
            guard case .number = args["bits"] else { throw args.fail("expected a Number of bits or a Policy for argument 2, got \(args["bits"].typeName)") }
            let bits = try args.int("bits")
            let granularity: Granularity = try args.choice("granularity")
            if let q = try configuredQuantizer(args, bits: bits, granularity: granularity) {
                switch args["x"] {
                case .model(let m):
                    if case .null = args["activation_bits"] {} else {
                        throw args.fail("activation_bits goes with the reference weight quantizer; with scheme/rounding/clip/group, quantize weights only")
                    }
                    do { return .model(try m.quantized(weights: q)) } catch let e as QuantizationError { throw args.fail(e.message) }
                case let v:
                    let t = try Convert.tensor(v, what: "argument 1 of 'quantize'", at: args.location)
                    var config = q
                    if t.rank <= 1, case .channel = q.slicing { config.slicing = .tensor }
                    do { return Convert.value(try config.quantize(t.rank == 0 ? try t.reshaped([1]) : t).dequantized.reshaped(t.shape)) }
                    catch let e as QuantizationError { throw args.fail(e.message) }
                }
            }
            switch args["x"] {
            case .model(let m):
                var calibration: Tensor? = nil
                switch args["calibration"] {
                case .null: break
                case .dataset(let d): calibration = d.images
                case let v: calibration = try Convert.tensor(v, what: "'calibration' of 'quantize'", at: args.location)
                }
                return .model(try m.quantized(weightBits: bits, granularity: granularity,
                                              activationBits: try args.optionalInt("activation_bits"), calibration: calibration))
            case let v:
                if case .null = args["activation_bits"] {} else { throw args.fail("activation_bits applies to models, not tensors") }
                let t = try Convert.tensor(v, what: "argument 1 of 'quantize'", at: args.location)
                let shaped = t.rank == 0 ? try t.reshaped([1]) : t
                return Convert.value(try WeightQuantizer.quantize(shaped, bits: bits, granularity: t.rank <= 1 ? .perTensor : granularity).reshaped(t.shape))
            }
        },
        Builtin("integer_model", category: "quantizers",
                [.required("model", .model), .optional("policy", .any), .optional("calibration", .dataset), .optional("bias_correction", .bool, .bool(false)),
                 .optional("rounding", .choice(["nearest", "adaround"]), .string("nearest")), .optional("iterations", .integer, .number(1000))],
                returns: "IntegerModel",
                summary: "HAWQ-V3's integer-only engine: batch norm folded, per-channel weight codes at the policy's bits (stored packed, multiplied as int8 in convolutions; layers with one output pixel — linear layers — run as a matrix–vector product reading their weights packed at 8, 4 or 2 bits, the narrowest that holds the codes), activation codes per tensor calibrated by min/max on `calibration`, Int32 accumulation and bias, dyadic requantization fused into the convolution kernel (AVX-512 VNNI, reading NHWC codes in place), residual branches rescaled to the add's scale (an add whose output is quantized at once is clamped to codes in the layer's epilogue), integer pooling; depthwise convolutions (MobileNetV2) on byte codes, 16 channels per lane, and ReLU6 as the epilogue's clamp at round(6/scale). Binary layers (1-bit weights reading 1-bit activations) run XNOR-popcount on 64-channel words of packed signs, read in place (taps in the padding skipped, as zeros count nothing; dots scaled by 2^8 so the bias, and a sign taken after it, keep fine steps); 1-bit weights reading wider codes run as ±1 in the int8 kernel. A binary network from bnn() runs whole: integer_model(r.model, r.policy, calibration: ...) takes its XNOR weights α·sign(W) at 1 bit and each sign node as a step that packs the signs of the codes or Int32 sums it reads (Bi-Real's signs read residual sums, carried at 1/256 of their 8-bit step). bias_correction: true first takes each layer's weight-error shift out of its bias or batch norm, and rounding: \"adaround\" learns each weight's rounding (both as quantize's). The policy needs activation bits (policy(m, bits: 8, activation_bits: 8)). A model from qat() carries its policy: integer_model(q) leaves the policy out, and its learned steps become the engine's scales (each weight keeps the codes training saw, at step·|γ/σ| once batch norm is folded; each layer input its learned step; where one value feeds layers with different steps, the widest reader's, first in graph order among equals; calibration only for values no step covers). A model that ends in a Softmax or LogSoftmax (an exported classifier) runs it in Float32 on the engine's logits. One image on several threads shares each layer among them. evaluate() and predict() run it. Its twins are float graphs: .simulation fake-quantizes real values at the engine's points with exact scales (what training sees; predictions agree, logits stray by a step where Float32 sums or the dyadic's 31-bit mantissa cross a rounding boundary); .dyadic_simulation is HAWQ-V3's, integer codes carried in floats and requantized by the engine's dyadic multipliers, and gives the engine's logits exactly (made when first asked for, and refused where a layer's integer sums can pass 2^24, which Float32 cannot hold).",
                examples: [BuiltinExample("m = load(\"../shared/reference/fmnist_cnn.npz\", into: zoo(\"cnn\")); q = integer_model(m, policy(m, bits: 8, activation_bits: 8), calibration: fashion_mnist(split: \"train\", limit: 64)); evaluate(q, fashion_mnist(split: \"test\", limit: 200)) > 0.85", "true"),
                           BuiltinExample("m = load(\"../shared/reference/fmnist_cnn.npz\", into: zoo(\"cnn\")); q = integer_model(m, policy(m, bits: 4, activation_bits: 8), calibration: fashion_mnist(split: \"train\", limit: 64)); x = fashion_mnist(split: \"test\", limit: 100); max(abs(predict(q, x) - predict(q.dyadic_simulation, x)))", "0"),
                           BuiltinExample("r = bnn(load(\"../shared/reference/fmnist_cnn.npz\", into: zoo(\"cnn\")), fashion_mnist(split: \"train\", limit: 256), validation: fashion_mnist(split: \"train\", limit: 64), weight_epochs: 0, epochs: 1); q = integer_model(r.model, r.policy, calibration: fashion_mnist(split: \"train\", limit: 64)); x = fashion_mnist(split: \"test\", limit: 100); max(abs(predict(q, x) - predict(q.dyadic_simulation, x)))", "0"),
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
    ]
}
