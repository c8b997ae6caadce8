import Foundation
import MixedPrecision
import Network
import Quantization
import Tensors

/// The cost builtins: size, BitOps, BitFusion cycles and energy, measured latency.
extension Builtins {
    static let costs: [Builtin] = [
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
        Builtin("latency", category: "costs",
                [.required("model", .model), .optional("policy", .any), .optional("bits", .list, .list([2, 3, 4, 5, 6, 8].map { .number(Double($0)) }))],
                returns: "Number or List",
                summary: "Measured latency on this machine: each conv/linear layer as integer_model runs it (W·A8: its VNNI kernel with requantization in the epilogue), one image on one core, cached in ~/.cache/mpq (MPQ_CACHE) per CPU and model. With a policy: its total in ms per image (a 1-bit layer counted as W1A1); without: rows {layer, widths…} in ms for table(). Where the hardware differs by width, so do the entries: a layer with one output pixel (a linear layer) runs as a matrix–vector product reading each weight once per image, stored packed at 8, 4 or 2 bits, and is timed at each (3–4 bits take the 4-bit time, 2 bits the 2-bit one), so on wide linear layers fewer bits buy time; convolutions reuse each weight over their pixels and multiply every width from 2 to 8 as int8 (this CPU has nothing narrower), so they cost the same at every width — fewer bits save them bytes and energy, not time; and 1 bit (bits: [1, 8]) is measured as W1A1: XNOR-popcount on packed signs with the output packed into the next layer's signs, as a binary network (bnn) runs. Pooling and the image's quantization are not included.",
                examples: [BuiltinExample("latency(zoo(\"mlp\"), policy(zoo(\"mlp\"), bits: 8), bits: [4, 8]) > 0", "true")]) { args, interp in
            let m = try args.model("model")
            if case .object = args["policy"] {
                let p = try args.object("policy", PolicyObject.self, what: "a Policy").policy
                try p.check(against: m)
                guard let bits = p.layerWiseBits, bits.allSatisfy({ (1...8).contains($0) }) else {
                    throw args.fail("the latency table covers layers of one 1…8-bit width; the policy has float or per-channel layers")
                }
                let t = try LatencyTable.cached(m, bits: Array(Set(bits).union(2...8)).sorted(), progress: args.progress(interp, "latency table")).table
                return .number(zip(p.layerNames, bits).reduce(0.0) { $0 + t.milliseconds[$1.0]![$1.1]! })
            }
            let bits = try args.bitsList("bits")
            guard bits.allSatisfy({ (1...8).contains($0) }) else { throw args.fail("the latency table covers 1…8-bit weights (1: W1A1)") }
            let t = try LatencyTable.cached(m, bits: Array(Set(bits).union(2...8)).sorted(), progress: args.progress(interp, "latency table")).table
            return .list(m.layers.map { l in
                .record(Record([("layer", .string(l.name))] + bits.map { ("\($0)-bit ms", .number(Double(String(format: "%.4g", t.milliseconds[l.name]![$0]!))!)) }))
            })
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
            do { return .number(try model.cost(p)) } catch let e as MixedPrecisionError { throw args.fail(e.message.replacingOccurrences(of: "cost: ", with: "")) }
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
