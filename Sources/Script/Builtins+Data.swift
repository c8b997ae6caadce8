import Foundation
import MixedPrecision
import Network
import Quantization
import Tensors

/// The data builtins: datasets built in, from tensors and from files, splits, .npy arrays.
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
        Builtin("load_npy", category: "data", [.required("path", .string)], returns: "Tensor",
                summary: "A tensor from a NumPy .npy file (any float, int or bool dtype; converted to Float32).",
                examples: [BuiltinExample("save_npy([1, 2], \"/tmp/mpq-doc-load.npy\"); load_npy(\"/tmp/mpq-doc-load.npy\")", "Tensor[2] [1, 2]")]) { args, _ in
            .tensor(try NPY.read(try args.string("path")))
        },
        Builtin("save_npy", category: "data", [.required("x", .tensorLike), .required("path", .string)], returns: "nil",
                summary: "Writes a tensor as a float32 .npy file (atomically).",
                examples: [BuiltinExample("save_npy(zeros([2, 2]), \"/tmp/mpq-doc-save.npy\")")]) { args, _ in
            try NPY.write(try args.tensor("x"), to: try args.string("path"))
            return .null
        },
    ]
}
