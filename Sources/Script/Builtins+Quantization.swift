import Network
import Quantization
import Tensors

extension Builtins {
    static let quantization: [Builtin] = [
        Builtin("quantize", category: "quantizers",
                [.required("x", .any), .optional("bits", .any, .number(8)), .optional("granularity", .string, .string("channel")),
                 .optional("activation_bits", .integer), .optional("calibration", .any)],
                returns: "Tensor or Model",
                summary: "quantize(model, policy) simulates a mixed-precision policy (activation bits need calibration). Otherwise the reference weight quantizer (symmetric, narrow range, max-abs scale, round half to even; 1 bit = sign·mean|W|), simulated in float. On a tensor: its quantized values (granularity \"channel\" = one scale per slice of dimension 0, or \"tensor\"). On a model: every conv/linear weight quantized; with activation_bits, every layer's input too, calibrated by min/max on `calibration` (a Dataset or Tensor).",
                examples: [BuiltinExample("quantize([0.5, -1, 0.25], bits: 3, granularity: \"tensor\")", "Tensor[3] [0.6667, -1, 0.3333]"),
                           BuiltinExample("evaluate(quantize(load(\"../shared/reference/fmnist_mlp.onnx\"), bits: 4), fashion_mnist(split: \"test\", limit: 200)) > 0.8", "true")]) { args, _ in
            if case .object(let o) = args["bits"], let p = o as? PolicyObject {
                guard case .model(let m) = args["x"] else { throw args.fail("a policy applies to a model, got \(args["x"].typeName)") }
                var calibration: Tensor? = nil
                if case .dataset(let d) = args["calibration"] { calibration = d.images }
                return .model(try m.quantized(policy: p.policy, calibration: calibration))
            }
            guard case .number = args["bits"] else { throw args.fail("expected a Number of bits or a Policy for argument 2, got \(args["bits"].typeName)") }
            let bits = try args.int("bits")
            guard let granularity = Granularity(rawValue: try args.string("granularity")) else {
                throw args.fail("granularity must be \"channel\" or \"tensor\", got \"\(try args.string("granularity"))\"")
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
    ]
}
