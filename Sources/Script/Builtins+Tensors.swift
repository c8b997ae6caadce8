import Foundation
import Tensors

extension Builtins {
    /// Reductions: the whole tensor to a Number, or along `axis` to a Tensor.
    static func reduction(_ name: String, _ summary: String, _ example: String, _ result: String,
                          whole: @escaping (Tensor) -> Float, alongAxis: @escaping (Tensor, Int) throws -> Tensor) -> Builtin {
        Builtin(name, category: "tensors", [.required("x", .tensorLike), .optional("axis", .integer)], returns: "Number or Tensor",
                summary: summary, examples: [BuiltinExample(example, result)]) { args, _ in
            let t = try args.tensor("x")
            if let axis = try args.optionalInt("axis") { return Convert.value(try alongAxis(t, axis)) }
            return .number(Double(whole(t)))
        }
    }

    static func elementwise(_ name: String, _ summary: String, _ example: String, _ result: String,
                            _ f: @escaping (Tensor) -> Tensor) -> Builtin {
        Builtin(name, category: "tensors", [.required("x", .tensorLike)], returns: "Number or Tensor",
                summary: summary, examples: [BuiltinExample(example, result)]) { args, _ in
            Convert.value(f(try args.tensor("x")))
        }
    }

    static func random(_ name: String, _ summary: String, _ distribution: @escaping (Arguments) throws -> Distribution,
                       extra: [BuiltinParameter], example: String) -> Builtin {
        Builtin(name, category: "tensors", [.required("shape", .shape)] + extra + [.optional("seed", .integer, .number(0))],
                returns: "Tensor", summary: summary + " Seeded: the same seed gives the same tensor.",
                examples: [BuiltinExample(example)]) { args, _ in
            var rng = RandomGenerator(seed: UInt64(truncatingIfNeeded: try args.int("seed")))
            return .tensor(try Tensor.random(try args.shape("shape"), try distribution(args), using: &rng))
        }
    }

    static let tensors: [Builtin] = [
        Builtin("tensor", category: "tensors", [.required("values", .tensorLike), .optional("shape", .shape)], returns: "Tensor",
                summary: "A tensor from a number or (nested) list of numbers, optionally reshaped.",
                examples: [BuiltinExample("tensor([[1, 2], [3, 4]])", "Tensor[2, 2] [[1, 2], [3, 4]]"),
                           BuiltinExample("tensor(0..<6, shape: [2, 3]).shape", "[2, 3]")]) { args, _ in
            let t = try args.tensor("values")
            if case .null = args["shape"] { return .tensor(t) }
            return .tensor(try t.reshaped(try args.shape("shape")))
        },
        Builtin("zeros", category: "tensors", [.required("shape", .shape)], returns: "Tensor",
                summary: "A tensor of zeros.", examples: [BuiltinExample("zeros([2, 3]).shape", "[2, 3]")]) { args, _ in
            .tensor(try Tensor.zeros(try args.shape("shape")))
        },
        Builtin("ones", category: "tensors", [.required("shape", .shape)], returns: "Tensor",
                summary: "A tensor of ones.", examples: [BuiltinExample("sum(ones([4, 5]))", "20")]) { args, _ in
            .tensor(try Tensor.ones(try args.shape("shape")))
        },
        random("randn", "Standard normal draws (times std, plus mean).", { .normal(mean: Float(try $0.number("mean")), std: Float(try $0.number("std"))) },
               extra: [.optional("mean", .number, .number(0)), .optional("std", .number, .number(1))], example: "randn([2, 3], seed: 7)"),
        random("rand", "Uniform draws in [low, high).", { .uniform(low: Float(try $0.number("low")), high: Float(try $0.number("high"))) },
               extra: [.optional("low", .number, .number(0)), .optional("high", .number, .number(1))], example: "rand([3], seed: 1)"),
        Builtin("shape", category: "tensors", [.required("x", .tensorLike)], returns: "List",
                summary: "A tensor's shape.", examples: [BuiltinExample("shape(zeros([4, 2]))", "[4, 2]")]) { args, _ in
            .list(try args.tensor("x").shape.map { .number(Double($0)) })
        },
        Builtin("reshape", category: "tensors", [.required("x", .tensorLike), .required("shape", .shape)], returns: "Tensor",
                summary: "The same values under a new shape; one dimension may be -1.",
                examples: [BuiltinExample("reshape(0..<6, [3, -1]).shape", "[3, 2]")]) { args, _ in
            .tensor(try args.tensor("x").reshaped(try args.shape("shape")))
        },
        reduction("sum", "Sum of all elements, or along an axis.", "sum([1, 2, 3])", "6",
                  whole: { $0.sum() }, alongAxis: { try $0.sum(axis: $1) }),
        reduction("mean", "Mean of all elements, or along an axis.", "mean([1, 2, 3, 4])", "2.5",
                  whole: { $0.mean() }, alongAxis: { try $0.mean(axis: $1) }),
        reduction("max", "Largest element, or along an axis.", "max([3, 9, 2])", "9",
                  whole: { $0.max() }, alongAxis: { try $0.max(axis: $1) }),
        reduction("min", "Smallest element, or along an axis.", "min([3, 9, 2])", "2",
                  whole: { $0.min() }, alongAxis: { try $0.min(axis: $1) }),
        Builtin("argmax", category: "tensors", [.required("x", .tensorLike), .optional("axis", .integer)], returns: "Number or Tensor",
                summary: "Index of the largest element (of the flattened tensor, or along an axis); the first on ties.",
                examples: [BuiltinExample("argmax([3, 9, 2])", "1")]) { args, _ in
            let t = try args.tensor("x")
            if let axis = try args.optionalInt("axis") { return Convert.value(try t.argmax(axis: axis)) }
            return .number(Double(try t.argmax()))
        },
        elementwise("abs", "Absolute value, elementwise.", "abs(-3)", "3") { $0.abs() },
        elementwise("round", "Rounds to the nearest integer, ties to even (as the reference quantizers), elementwise.",
                    "round([0.5, 1.5, -2.5, 2.7])", "Tensor[4] [0, 2, -2, 3]") { $0.map { $0.rounded(.toNearestOrEven) } },
        elementwise("sign", "−1, 0 or 1 by the sign, elementwise.", "sign([-2, 0, 3])", "Tensor[3] [-1, 0, 1]") {
            $0.map { $0 > 0 ? 1 : $0 < 0 ? -1 : 0 }
        },
        Builtin("clamp", category: "tensors", [.required("x", .tensorLike), .required("low", .number), .required("high", .number)],
                returns: "Number or Tensor", summary: "Limits every element to [low, high].",
                examples: [BuiltinExample("clamp([-5, 0, 5], -1, 1)", "Tensor[3] [-1, 0, 1]")]) { args, _ in
            let lo = Float(try args.number("low")), hi = Float(try args.number("high"))
            guard lo <= hi else { throw args.fail("low (\(lo)) must not exceed high (\(hi))") }
            return Convert.value(try args.tensor("x").clamped(lo, hi))
        },
        elementwise("sqrt", "Square root, elementwise.", "sqrt(16)", "4") { $0.sqrt() },
        elementwise("exp", "e to the power x, elementwise.", "exp(0)", "1") { $0.exp() },
        elementwise("log", "Natural logarithm, elementwise.", "log(1)", "0") { $0.log() },
        Builtin("matmul", category: "tensors", [.required("a", .tensorLike), .required("b", .tensorLike)], returns: "Tensor",
                summary: "Matrix product (also written a @ b).",
                examples: [BuiltinExample("matmul([[1, 2]], [[3], [4]])", "Tensor[1, 1] [[11]]")]) { args, _ in
            Convert.value(try args.tensor("a").matmul(try args.tensor("b")))
        },
    ]
}
