import Foundation
import MixedPrecision
import Network
import Quantization
import Tensors

/// The model builtins: the zoo, loading and saving, training, evaluation.
extension Builtins {
    /// `save`'s dispatch: what the value is and the extension decide the format; any other
    /// pairing is refused with the formats the value takes.
    static func saveByExtension(_ value: Value, path: String, _ args: Arguments) throws {
        let ext = (path as NSString).pathExtension.lowercased()
        func refuse(_ what: String, _ formats: String) -> ScriptError {
            args.fail("\(what) saves as \(formats); the path '\(path)' ends in \(ext.isEmpty ? "no extension" : ".\(ext)")")
        }
        switch value {
        case .object(let o as PredictorObject):
            guard let mlp = o.predictor as? AccuracyMLP else {
                throw args.fail("a divergence predictor is not saved (it holds the model and calibration images); build it again with divergence_predictor()")
            }
            guard ext == "npz" else { throw refuse("a predictor", ".npz (load(path) reads it back)") }
            try mlp.save(to: path)
        case .object(let o as PackedTensorObject):
            guard ext == "mpqt" else { throw refuse("a packed tensor", ".mpqt") }
            try o.packed.save(to: path)
        case .object(let o as PolicyObject):
            guard ext == "json" else { throw refuse("a policy", ".json") }
            try o.policy.save(to: path, modelName: o.model.name)
        case .object(let o as IntegerModelObject):
            guard ext == "onnx" else { throw refuse("an integer model", ".onnx (QDQ)") }
            do { try o.engine.saveONNX(to: path) } catch let e as NetworkError { throw args.fail(e.message) }
        case .model(let m):
            switch ext {
            case "npz": try m.save(path: path)
            case "onnx": do { try ONNXExporter.save(m, to: path) } catch let e as NetworkError { throw args.fail(e.message) }
            default: throw refuse("a model", ".npz (mpq's own) or .onnx")
            }
        case .tensor(let t):
            guard ext == "npy" else { throw refuse("a tensor", ".npy (float32; NumPy's np.load reads it)") }
            try NPY.write(t, to: path)
        case .dataset(let d):
            guard ext == "npz" else { throw refuse("a dataset", ".npz (arrays x and y; load_dataset reads it back)") }
            try NPZ.write([("x", d.images), ("y", Tensor(checkedShape: [d.count], scalars: d.labels.map(Float.init)))], to: path)
        case let v: throw args.fail("expected a Model, an IntegerModel, a packed tensor, a Policy, a Predictor, a Tensor or a Dataset to save, got \(v.typeName)")
        }
    }

    static let models: [Builtin] = [
        Builtin("zoo", category: "models", [.required("name", .choice(Zoo.names)), .optional("seed", .integer, .number(0)),
                                            .optional("input", .shape, .list([1, 28, 28].map { .number(Double($0)) })), .optional("classes", .integer, .number(10)),
                                            .optional("binary", .bool, .bool(false)), .optional("hidden", .list)],
                returns: "Model",
                summary: "A fresh model of a zoo architecture (\(Zoo.names.joined(separator: ", "))), weights drawn from the seed, for inputs of shape `input` ([channels, height, width]; the references' [1, 28, 28]) and `classes` outputs. binary: true gives the binary variant bnn() trains (\(Zoo.binaryNames.joined(separator: ", ")): XNOR-Net weights and sign activations, Bi-Real shortcuts for resnet20), under the float model's parameter names, to load a saved binary network into. hidden: the mlp's hidden widths (default [256, 128]; fc1, fc2, … then the output layer).",
                examples: [BuiltinExample("len(zoo(\"resnet20\").layers)", "22"),
                           BuiltinExample("m = load(\"../shared/reference/fmnist_cnn.npz\", into: zoo(\"cnn\", binary: true)); len(m.layers)", "5"),
                           BuiltinExample("zoo(\"cnn\", input: [3, 32, 32], classes: 100).layers[3].shape", "[128, 1024]"),
                           BuiltinExample("zoo(\"mlp\", hidden: [4096, 4096]).layers[1].shape", "[4096, 4096]")]) { args, _ in
            guard case .list(let dims) = args["input"], let input = try? dims.map({ v -> Int in
                guard case .number(let x) = v, let d = Convert.whole(x) else { throw args.fail("input must be whole numbers") }
                return d
            }) else { throw args.fail("input must be a List [channels, height, width]") }
            let (name, seed, classes) = (try args.string("name"), UInt64(truncatingIfNeeded: try args.int("seed")), try args.int("classes"))
            var hidden: [Int]? = nil
            if case .list(let widths) = args["hidden"] {
                hidden = try widths.map { v -> Int in
                    guard case .number(let x) = v, let d = Convert.whole(x) else { throw args.fail("hidden must be whole numbers, found \(v.typeName)") }
                    return d
                }
            }
            if try args.bool("binary") {
                guard hidden == nil else { throw args.fail("hidden widths are for the float mlp, not a binary model") }
                return .model(try Zoo.binary(name, seed: seed, input: input, classes: classes))
            }
            return .model(try Zoo.make(name, seed: seed, input: input, classes: classes, hidden: hidden))
        },
        Builtin("load", category: "models", [.required("path", .string), .optional("into", .model), .optional("model", .model)], returns: "Model",
                summary: "A model from an ONNX file, a model saved by mpq, or (with into:) a PyTorch state dict .npz loaded into a zoo model; a packed tensor (.mpqt); a tensor (.npy, any numeric dtype, as Float32); a saved APQ predictor (.npz, from save(predictor(...), path)); or a policy saved as JSON (.json) for `model:` (the format is in README.md; errors name the layer and field). Datasets load with load_dataset.",
                examples: [BuiltinExample("load(\"../shared/reference/fmnist_cnn.onnx\").name", "fmnist_cnn"),
                           BuiltinExample("m = zoo(\"mlp\"); save(policy(m, bits: [8, 4, 8]), \"/tmp/mpq-doc-policy.json\"); load(\"/tmp/mpq-doc-policy.json\", model: m).bits", "[8, 4, 8]")]) { args, _ in
            let path = try args.string("path")
            if case .model(let m) = args["into"] { return .model(try Model.open(path, into: m)) }
            if path.hasSuffix(".json") {
                guard case .model(let m) = args["model"] else { throw args.fail("a policy file needs the model it is for: load(\"\(path)\", model: m)") }
                return .object(PolicyObject(try Policy.load(path: path, model: m), model: m))
            }
            if path.hasSuffix(".mpqt") { return .object(PackedTensorObject(try PackedTensor.load(path))) }
            if path.lowercased().hasSuffix(".npy") { return .tensor(try NPY.read(path)) }
            if path.lowercased().hasSuffix(".npz"), let arrays = try? NPZ.read(path), AccuracyMLP.isPredictor(arrays) {
                do { let p = try AccuracyMLP.load(path); return .object(PredictorObject(p, trainedOn: 0)) }
                catch let e as MixedPrecisionError { throw args.fail(e, method: "predictor") }
            }
            return .model(try Model.open(path))
        },
        Builtin("exists", category: "models", [.required("path", .string)], returns: "Bool",
                summary: "Whether a file (or directory) exists at path: to reuse what an earlier run saved instead of computing it again.",
                examples: [BuiltinExample("exists(\"/tmp\")", "true"), BuiltinExample("exists(\"/no/such/file.npz\")", "false")]) { args, _ in
            .bool(FileManager.default.fileExists(atPath: try args.string("path")))
        },
        Builtin("save", category: "models", [.required("model", .any), .required("path", .string)], returns: "nil",
                summary: "Saves by the path's extension, atomically: a model as .npz (graph and weights; load(path) reads it back) or .onnx (opset 21; fake quantization as QDQ, see export()), an integer model (from integer_model()) as QDQ .onnx, a packed tensor (from packed()) as .mpqt, a policy as .json (load(path, model: m)), an APQ predictor as .npz, a tensor as .npy, a dataset as .npz (x and y; load_dataset(path) reads it back). Anything else is refused with the formats that value takes.",
                examples: [BuiltinExample("save(zoo(\"mlp\"), \"/tmp/mpq-doc-model.npz\"); len(load(\"/tmp/mpq-doc-model.npz\").layers)", "3"),
                           BuiltinExample("m = zoo(\"mlp\"); save(m, \"/tmp/mpq-doc-model.onnx\"); len(load(\"/tmp/mpq-doc-model.onnx\").layers)", "3"),
                           BuiltinExample("save(tensor([[1, 2], [3, 4]]), \"/tmp/mpq-doc-t.npy\"); load(\"/tmp/mpq-doc-t.npy\")", "Tensor[2, 2] [[1, 2], [3, 4]]"),
                           BuiltinExample("d = fashion_mnist(split: \"test\", limit: 10); save(d, \"/tmp/mpq-doc-d.npz\"); len(load_dataset(\"/tmp/mpq-doc-d.npz\"))", "10")]) { args, _ in
            try saveByExtension(args["model"], path: try args.string("path"), args)
            return .null
        },
        Builtin("export", category: "models", [.required("model", .any), .required("path", .string)], returns: "Record",
                summary: "Writes ONNX (opset 21) that ONNX Runtime runs, atomically, and returns {path, bytes}. An integer model (integer_model(m, p, calibration: d)) exports as QDQ: every weight as its integer codes — INT4 when they fit 4 bits, INT8 otherwise — with per-channel scales and a DequantizeLinear, each quantized activation as Clip → QuantizeLinear → DequantizeLinear at its calibrated scale, batch norm folded, biases as the engine's; so the file's size follows the policy's bits. A model exports as it is: float weights, its fake quantization (quantize(m, p, calibration:)) as QDQ, LSQ steps (qat) as Div/Round/Clip/Mul.",
                examples: [BuiltinExample("m = load(\"../shared/reference/fmnist_cnn.npz\", into: zoo(\"cnn\")); q = integer_model(m, policy(m, bits: 4, activation_bits: 8), calibration: fashion_mnist(split: \"train\", limit: 64)); export(q, \"/tmp/mpq-doc-q.onnx\").bytes < size(m) / 6", "true")]) { args, _ in
            let path = try args.string("path")
            guard path.lowercased().hasSuffix(".onnx") else { throw args.fail("export writes ONNX: expected a path ending in .onnx, got '\(path)'") }
            switch args["model"] {
            case .model, .object(is IntegerModelObject): try saveByExtension(args["model"], path: path, args)
            case let v: throw args.fail("expected a Model or an IntegerModel to export, got \(v.typeName)")
            }
            let bytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            return .record(Record([("path", .string(path)), ("bytes", .number(Double(bytes)))]))
        },
        Builtin("train", category: "models",
                [.required("model", .model), .required("data", .dataset), .optional("epochs", .integer, .number(10)),
                 .optional("lr", .number, .number(0.1)), .optional("batch", .integer, .number(128)),
                 .optional("seed", .integer, .number(0)), .optional("optimizer", .choice(["sgd", "adam"]), .string("sgd")),
                 .optional("checkpoint", .string)],
                returns: "Record",
                summary: "Trains in place with cross-entropy (SGD with Nesterov momentum and a one-cycle schedule peaking at lr, or optimizer: \"adam\" at a constant lr), showing progress; Ctrl-C stops after the current batch. checkpoint: a .npz path the run's whole state is written to (atomically) after every epoch; when it exists, the call continues from it — after Ctrl-C or a crash, the same call again ends as an unbroken run would (a checkpoint of another run is refused). Returns {epochs, loss, accuracy, seconds, interrupted}.",
                examples: [BuiltinExample("train(zoo(\"mlp\"), fashion_mnist(split: \"train\", limit: 256), epochs: 1).epochs", "1")]) { args, interp in
            let model = try args.model("model")
            var options = TrainingOptions()
            options.epochs = try args.int("epochs"); options.batchSize = try args.int("batch")
            options.seed = UInt64(truncatingIfNeeded: try args.int("seed"))
            let lr = Float(try args.number("lr"))
            if try args.string("optimizer") == "adam" { options.optimizer = .adam(); options.schedule = .constant(lr) }
            else { options.schedule = .oneCycle(peak: lr) }
            options.checkpoint = try args.optionalString("checkpoint")
            let r = try model.train(on: try args.dataset("data"), options: options, progress: { p in interp.progress(p.line, done: p.endOfEpoch) })
            return .record(Record([("epochs", .number(Double(r.epochsCompleted))), ("loss", .number(r.finalLoss)),
                                   ("accuracy", .number(r.trainAccuracy)), ("seconds", .number(r.seconds)),
                                   ("interrupted", .bool(r.interrupted))]))
        },
        Builtin("evaluate", category: "models", [.required("model", .any), .required("data", .dataset)], returns: "Number",
                summary: "Test accuracy: the fraction of examples whose largest logit is the label. The model may be an integer model (integer_model), which then runs in integers.",
                examples: [BuiltinExample("evaluate(load(\"../shared/reference/fmnist_mlp.onnx\"), fashion_mnist(split: \"test\", limit: 100)) > 0.8", "true")]) { args, interp in
            let data = try args.dataset("data"), progress = args.progress(interp, "evaluate", after: 1)
            if case .object(let o) = args["model"], let im = o as? IntegerModelObject {
                return .number(try im.engine.accuracy(on: data, progress: progress))
            }
            guard case .model(let m) = args["model"] else { throw args.fail("expected a Model or an integer model for 'model', got \(args["model"].typeName)") }
            return .number(try m.accuracy(on: data, progress: progress))
        },
        Builtin("paired", category: "models", [.required("a", .any), .required("b", .any), .required("data", .dataset)], returns: "Record",
                summary: "Two models compared on the same examples (McNemar's test): each one's accuracy, the examples only a (only b) gets right, the difference a − b with its paired standard error √(only_a + only_b)/n, and the exact two-sided p-value — the chance of a split of the disagreements at least this uneven if neither model were better. Two quantized policies evaluated on one test set mostly agree, so the paired error is far smaller than two separate accuracies' (±0.24 points each at 93% on 10,000 images). Either model may be an integer model (integer_model). Returns {a, b, only_a, only_b, difference, error, p}.",
                examples: [BuiltinExample("m = load(\"../shared/reference/fmnist_mlp.onnx\"); paired(m, m, fashion_mnist(split: \"test\", limit: 50)).p", "1"),
                           BuiltinExample("r = paired(load(\"../shared/reference/fmnist_mlp.onnx\"), zoo(\"mlp\"), fashion_mnist(split: \"test\", limit: 100)); r.a > r.b and r.p < 0.01", "true")]) { args, interp in
            let data = try args.dataset("data")
            func classes(_ name: String) throws -> [Int] {
                let progress = args.progress(interp, "paired", after: 1)
                if case .object(let o) = args[name], let im = o as? IntegerModelObject { return try im.engine.predictedClasses(on: data, progress: progress) }
                guard case .model(let m) = args[name] else { throw args.fail("expected a Model or an integer model for '\(name)', got \(args[name].typeName)") }
                return try m.predictedClasses(on: data, progress: progress)
            }
            let c = try PairedComparison(predictionsA: try classes("a"), predictionsB: try classes("b"), labels: data.labels)
            return .record(Record([("a", .number(c.accuracyA)), ("b", .number(c.accuracyB)), ("only_a", .number(Double(c.onlyA))),
                                   ("only_b", .number(Double(c.onlyB))), ("difference", .number(c.difference)),
                                   ("error", .number(c.standardError)), ("p", .number(c.pValue))]))
        },
        Builtin("predict", category: "models", [.required("model", .any), .required("x", .any)], returns: "Tensor",
                summary: "Logits for a batch of images (a Tensor [N, 1, 28, 28]) or a Dataset. The model may be an integer model (integer_model), which then runs in integers. With a Predictor (from predictor()) for `model`, x is a List of policies (Lists of widths, samples or Policies) and the result the List of their predicted accuracies (predicted output divergences for a predictor(..., target: \"divergence\")).",
                examples: [BuiltinExample("shape(predict(zoo(\"mlp\"), zeros([2, 1, 28, 28])))", "[2, 10]"),
                           BuiltinExample("p = predictor([{bits: [2], accuracy: 0.5}, {bits: [4], accuracy: 0.8}], epochs: 20, hidden: 4); len(predict(p, [[2], [4], [2]]))", "3")]) { args, _ in
            if case .object(let o as PredictorObject) = args["model"] {
                do { return .list(try o.predictor.predict(points: try policyPoints(args["x"], args, what: "x")).map { .number(o.predictor.target.figure(score: $0)) }) }
                catch let e as MixedPrecisionError { throw args.fail(e, method: "predictor") }
            }
            let x: Tensor
            if case .dataset(let d) = args["x"] { x = d.images } else { x = try args.tensor("x") }
            if case .object(let o) = args["model"], let im = o as? IntegerModelObject { return .tensor(try im.engine.run(x)) }
            guard case .model(let m) = args["model"] else { throw args.fail("expected a Model or an integer model for 'model', got \(args["model"].typeName)") }
            return .tensor(try m.predict(x))
        },
        Builtin("summary", category: "models", [.required("model", .model)], returns: "nil",
                summary: "Writes a model's conv and linear layers as a table: name, type, weight shape, parameters, MACs per image.",
                examples: [BuiltinExample("summary(zoo(\"cnn\"))")]) { args, interp in
            let m = try args.model("model")
            interp.output(try TableFormat.render(m.layers.map(Fields.layerRecord), at: args.location))
            interp.output("\(m.layers.count) layers, \(m.weightCount) weights, \(m.layers.reduce(0) { $0 + $1.macs }) MACs per image")
            return .null
        },
        Builtin("fold_bn", category: "models", [.required("model", .model)], returns: "Model",
                summary: "A copy with every batch norm that follows a conv folded into the conv's weights and bias.",
                examples: [BuiltinExample("len(fold_bn(zoo(\"cnn\")).layers)", "5")]) { args, _ in
            .model(try args.model("model").foldingBatchNorm())
        },
        Builtin("prune", category: "models", [.required("model", .model), .required("keep", .any)], returns: "Model",
                summary: "A copy with fewer output channels (APQ's width): keep is a ratio in (0, 1] for every prunable layer, or a Record layer → ratio. Each pruned layer keeps round(ratio × channels) (at least one) of largest L1 norm; the batch norm after it and the layer that reads it lose the same channels. Prunable: a layer whose output reaches one convolution through at most a batch norm and an activation — not a residual branch's last layer or a shortcut, whose channels an addition shares (m.prunable lists them). Costs, BitOps and energy of the copy count only the channels kept; fine-tune it to recover accuracy.",
                examples: [BuiltinExample("p = prune(zoo(\"cnn\"), keep: 0.5); [zoo(\"cnn\").layers[1].shape, p.layers[1].shape]", "[[32, 16, 3, 3], [16, 8, 3, 3]]")]) { args, _ in
            let m = try args.model("model")
            var ratios: [String: Double] = [:]
            switch args["keep"] {
            case .number(let r): for name in m.prunableLayers { ratios[name] = r }
            case .record(let r):
                for k in r.keys {
                    guard case .number(let x) = r[k]! else { throw args.fail("keep: expected a ratio (Number) for '\(k)', found \(r[k]!.shown)") }
                    ratios[k] = x
                }
            default: throw args.fail("keep: expected a ratio in (0, 1] or a Record layer → ratio, found \(args["keep"].typeName)")
            }
            do { return .model(try m.pruned(keep: ratios)) } catch let e as NetworkError { throw args.fail(e, method: "prune") }
        },
    ]
}
