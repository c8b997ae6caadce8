import Foundation
import Kernels
import MixedPrecision
import Network
import Quantization
import Tensors

extension Builtins {
    static let data: [Builtin] = [
        Builtin("fashion_mnist", category: "data", [.optional("split", .choice(["train", "test"])), .optional("limit", .integer)],
                returns: "Record or Dataset",
                summary: "Fashion-MNIST from the Debian package dataset-fashion-mnist: without a split, a record {train, test, calibration} (calibration = the first 512 training images); with split: \"train\" or \"test\", that split's first `limit` images in file order.",
                examples: [BuiltinExample("fashion_mnist(split: \"test\", limit: 8).count", "8")]) { args, _ in
            let limit = try args.optionalInt("limit")
            if case .string = args["split"] { return .dataset(try FashionMNIST.load(try args.choice("split"), limit: limit)) }
            let train = try FashionMNIST.load(.train, limit: limit)
            return .record(Record([("train", .dataset(train)), ("test", .dataset(try FashionMNIST.load(.test, limit: limit))),
                                   ("calibration", .dataset(try train.slice(0..<512)))]))
        },
        Builtin("dataset", category: "data", [.required("x", .tensorLike), .required("y", .tensorLike), .optional("classes", .integer), .optional("name", .string, .string("dataset"))],
                returns: "Dataset",
                summary: "A dataset from tensors: inputs x [N, C, H, W], [N, H, W, C] (a last dimension of 1 or 3) or [N, H, W], or any [N, …] for non-image models; labels y [N], whole numbers ≥ 0 (classes: default the largest label + 1). Counts must match.",
                examples: [BuiltinExample("dataset(zeros([4, 3, 8, 8]), [0, 1, 2, 1]).classes", "3"),
                           BuiltinExample("dataset(zeros([2, 8, 8, 3]), [0, 1]).images.shape", "[2, 3, 8, 8]")]) { args, _ in
            .dataset(try Dataset.arrays(name: try args.string("name"), images: try args.tensor("x"), labels: try args.tensor("y"),
                                        preprocessing: Preprocessing(scale: 1), classes: try args.optionalInt("classes")))
        },
        Builtin("load_dataset", category: "data",
                [.required("path", .string), .optional("labels", .string), .optional("size", .shape), .optional("channels", .integer), .optional("scale", .number, .number(1.0 / 255)),
                 .optional("mean", .any), .optional("std", .any), .optional("classes", .integer)],
                returns: "Dataset",
                summary: "A dataset from files: a folder with x.npy and y.npy (or images.npy and labels.npy), an inputs .npy with labels: its labels' .npy, an .npz holding x and y, or a folder of class folders of PNG/JPEG images (sorted folder names are classes 0, 1, …; libpng and libjpeg-turbo decode them). 8-bit pixels are multiplied by `scale` (default 1/255), then each channel becomes (x − mean)/std (a Number or one per channel); size: [height, width] resizes (bilinear), channels: 1 or 3 converts. Images of different sizes without size: are refused, naming the files. The dataset's .preprocessing says what was done.",
                examples: [BuiltinExample("d = dataset(zeros([6, 2, 4, 4]), [0, 1, 0, 1, 0, 1]); save_npy(d.images, \"/tmp/mpq-doc-x.npy\"); save_npy(d.labels, \"/tmp/mpq-doc-y.npy\"); load_dataset(\"/tmp/mpq-doc-x.npy\", labels: \"/tmp/mpq-doc-y.npy\").shape", "[2, 4, 4]")]) { args, _ in
            func floats(_ name: String) throws -> [Float] {
                switch args[name] {
                case .null: return []
                case .number(let x): return [Float(x)]
                case .list(let xs): return try xs.map { guard case .number(let x) = $0 else { throw args.fail("\(name) must be a Number or a List of Numbers") }; return Float(x) }
                case let v: throw args.fail("\(name) must be a Number or a List of Numbers, got \(v.typeName)")
                }
            }
            var size: [Int]? = nil
            if case .list(let xs) = args["size"] { size = try xs.map { guard case .number(let x) = $0, let d = Convert.whole(x) else { throw args.fail("size must be [height, width]") }; return d } }
            let p = Preprocessing(size: size, channels: try args.optionalInt("channels"), scale: Float(try args.number("scale")),
                                  mean: try floats("mean"), std: try floats("std"))
            return .dataset(try Dataset.open(try args.string("path"), labels: try args.optionalString("labels"), preprocessing: p, classes: try args.optionalInt("classes")))
        },
        Builtin("split", category: "data", [.required("data", .dataset), .required("fraction", .number), .optional("seed", .integer, .number(0))],
                returns: "Record",
                summary: "Two disjoint parts of a dataset, shuffled by the seed: {train: the `fraction`, validation: the rest} — choose on validation, report on the test set.",
                examples: [BuiltinExample("s = split(fashion_mnist(split: \"train\", limit: 100), 0.9, seed: 1); [s.train.count, s.validation.count]", "[90, 10]")]) { args, _ in
            let (a, b) = try args.dataset("data").split(try args.number("fraction"), seed: UInt64(truncatingIfNeeded: try args.int("seed")))
            return .record(Record([("train", .dataset(a)), ("validation", .dataset(b))]))
        },
    ]

    /// `save`'s dispatch: what the value is and the extension decide the format; any other
    /// pairing is refused with the formats the value takes.
    static func saveByExtension(_ value: Value, path: String, _ args: Arguments) throws {
        let ext = (path as NSString).pathExtension.lowercased()
        func refuse(_ what: String, _ formats: String) -> ScriptError {
            args.fail("\(what) saves as \(formats); the path '\(path)' ends in \(ext.isEmpty ? "no extension" : ".\(ext)")")
        }
        switch value {
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
        case let v: throw args.fail("expected a Model, an IntegerModel, a packed tensor, a Policy, a Tensor or a Dataset to save, got \(v.typeName)")
        }
    }

    static let models: [Builtin] = [
        Builtin("zoo", category: "models", [.required("name", .choice(Zoo.names)), .optional("seed", .integer, .number(0)),
                                            .optional("input", .shape, .list([1, 28, 28].map { .number(Double($0)) })), .optional("classes", .integer, .number(10))],
                returns: "Model",
                summary: "A fresh model of a zoo architecture (\(Zoo.names.joined(separator: ", "))), weights drawn from the seed, for inputs of shape `input` ([channels, height, width]; the references' [1, 28, 28]) and `classes` outputs.",
                examples: [BuiltinExample("len(zoo(\"resnet20\").layers)", "22"),
                           BuiltinExample("zoo(\"cnn\", input: [3, 32, 32], classes: 100).layers[3].shape", "[128, 1024]")]) { args, _ in
            guard case .list(let dims) = args["input"], let input = try? dims.map({ v -> Int in
                guard case .number(let x) = v, let d = Convert.whole(x) else { throw args.fail("input must be whole numbers") }
                return d
            }) else { throw args.fail("input must be a List [channels, height, width]") }
            return .model(try Zoo.make(try args.string("name"), seed: UInt64(truncatingIfNeeded: try args.int("seed")), input: input, classes: try args.int("classes")))
        },
        Builtin("load", category: "models", [.required("path", .string), .optional("into", .model), .optional("model", .model)], returns: "Model",
                summary: "A model from an ONNX file, a model saved by mpq, or (with into:) a PyTorch state dict .npz loaded into a zoo model; a packed tensor (.mpqt); a tensor (.npy, any numeric dtype, as Float32); or a policy saved as JSON (.json) for `model:` (the format is in README.md; errors name the layer and field). Datasets load with load_dataset.",
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
            return .model(try Model.open(path))
        },
        Builtin("save", category: "models", [.required("model", .any), .required("path", .string)], returns: "nil",
                summary: "Saves by the path's extension, atomically: a model as .npz (graph and weights; load(path) reads it back) or .onnx (opset 21; fake quantization as QDQ, see export()), an integer model (from integer_model()) as QDQ .onnx, a packed tensor (from packed()) as .mpqt, a policy as .json (load(path, model: m)), a tensor as .npy, a dataset as .npz (x and y; load_dataset(path) reads it back). Anything else is refused with the formats that value takes.",
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
                 .optional("seed", .integer, .number(0)), .optional("optimizer", .choice(["sgd", "adam"]), .string("sgd"))],
                returns: "Record",
                summary: "Trains in place with cross-entropy (SGD with Nesterov momentum and a one-cycle schedule peaking at lr, or optimizer: \"adam\" at a constant lr), showing progress; Ctrl-C stops after the current batch. Returns {epochs, loss, accuracy, seconds}.",
                examples: [BuiltinExample("train(zoo(\"mlp\"), fashion_mnist(split: \"train\", limit: 256), epochs: 1).epochs", "1")]) { args, interp in
            let model = try args.model("model")
            var options = TrainingOptions()
            options.epochs = try args.int("epochs"); options.batchSize = try args.int("batch")
            options.seed = UInt64(truncatingIfNeeded: try args.int("seed"))
            let lr = Float(try args.number("lr"))
            if try args.string("optimizer") == "adam" { options.optimizer = .adam(); options.schedule = .constant(lr) }
            else { options.schedule = .oneCycle(peak: lr) }
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
        Builtin("predict", category: "models", [.required("model", .any), .required("x", .any)], returns: "Tensor",
                summary: "Logits for a batch of images (a Tensor [N, 1, 28, 28]) or a Dataset. The model may be an integer model (integer_model), which then runs in integers.",
                examples: [BuiltinExample("shape(predict(zoo(\"mlp\"), zeros([2, 1, 28, 28])))", "[2, 10]")]) { args, _ in
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
        Builtin("size", category: "costs", [.required("model", .model), .optional("policy", .any), .optional("bits", .integer)], returns: "Number",
                summary: "Bytes of the conv and linear weights: at FP32, under a policy, or at `bits` per weight: Σ params·bits/8 over the layers (kernel-wise: over the channels), the one size formula (cost(kind: \"size\"), search(size:), policy.size); biases not counted.",
                examples: [BuiltinExample("size(zoo(\"mlp\"))", "939008"), BuiltinExample("size(zoo(\"mlp\"), bits: 4)", "117376"),
                           BuiltinExample("size(zoo(\"mlp\"), policy(zoo(\"mlp\"), bits: [8, 4, 2]))", "217408")]) { args, _ in
            let m = try args.model("model")
            if case .object = args["policy"] {
                let p = try args.object("policy", PolicyObject.self, what: "a Policy").policy
                try p.check(against: m)
                return .number(try CostModel.size.cost(p))
            }
            guard let bits = try args.optionalInt("bits") else { return .number(Double(m.weightCount * 4)) }
            guard (1...32).contains(bits) else { throw args.fail("bits must be in 1…32, got \(bits)") }
            return .number(try CostModel.size.uniformCost(m, bits: bits))
        },
    ]

    static let kernels: [Builtin] = [
        Builtin("pack", category: "kernels", [.required("codes", .tensorLike), .required("bits", .integer)], returns: "Tensor",
                summary: "Packs integer codes (each in 0…2^bits−1, or signed −2^(bits−1)…) into bytes, LSB first; returns the bytes.",
                examples: [BuiltinExample("pack([1, 2, 3], bits: 4)", "Tensor[2] [33, 3]")]) { args, _ in
            let bits = try args.int("bits")
            guard (1...8).contains(bits) else { throw args.fail("bits must be in 1…8, got \(bits)") }
            let t = try args.tensor("codes")
            let lo = -(1 << (bits - 1)), hi = (1 << bits) - 1
            let codes = try t.scalars.map { x -> UInt8 in
                guard let c = Convert.whole(Double(x), in: lo...hi) else { throw args.fail("code \(x) does not fit \(bits) bits") }
                return UInt8(truncatingIfNeeded: c)
            }
            return .tensor(Tensor(BitPacking.pack(codes, bits: bits).map(Float.init)))
        },
        Builtin("unpack", category: "kernels", [.required("bytes", .tensorLike), .required("count", .integer), .required("bits", .integer),
                                                  .optional("signed", .bool, .bool(false))], returns: "Tensor",
                summary: "Unpacks `count` codes of `bits` each from bytes (the inverse of pack).",
                examples: [BuiltinExample("unpack(pack([1, 2, 3], bits: 4), 3, 4)", "Tensor[3] [1, 2, 3]")]) { args, _ in
            let bits = try args.int("bits"), count = try args.int("count")
            guard (1...8).contains(bits) else { throw args.fail("bits must be in 1…8, got \(bits)") }
            let bytes = try args.tensor("bytes").scalars.map { x -> UInt8 in
                guard let b = Convert.whole(Double(x), in: 0...255) else { throw args.fail("bytes must be whole numbers in 0…255, found \(x)") }
                return UInt8(b)
            }
            guard count >= 0, bytes.count >= BitPacking.byteCount(codes: count, bits: bits) else {
                throw args.fail("\(count) codes of \(bits) bits need \(BitPacking.byteCount(codes: count, bits: bits)) bytes, got \(bytes.count)")
            }
            let signed = try args.bool("signed")
            let codes = BitPacking.unpack(bytes, count: count, bits: bits, signed: signed)
            return .tensor(Tensor(codes.map { signed ? Float(Int8(bitPattern: $0)) : Float($0) }))
        },
    ]
}

extension Interpreter {
    /// Progress lines of long work: rewritten in place on a terminal, one per epoch otherwise.
    func progress(_ line: String, done: Bool) {
        if let progressSink { progressSink(line, done); return }
        if isatty(STDERR_FILENO) != 0 {
            // Rewritten in place; ESC[K clears what a longer earlier line left.
            FileHandle.standardError.write(Data(("\r" + line + "\u{1B}[K" + (done ? "\n" : "")).utf8))
        } else if done {
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }
}
