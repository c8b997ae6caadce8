import Foundation
import Network
import Tensors

/// Policies as JSON files a person can read and edit:
///
///     {
///       "format": "mpq-policy",
///       "version": 2,
///       "model": "resnet20",
///       "layers": [
///         {"name": "conv1",
///          "weight": {"bits": 8, "scheme": "symmetric", "granularity": "channel", "clip": "max", "rounding": "nearest_even"},
///          "activation": {"bits": 8, "scheme": "uniform", "sign": "auto", "calibration": "minmax"}},
///         {"name": "layer1.0.conv1",
///          "weight": {"bits": [4, 3, 8, ...one per output channel...], "scheme": "pow2", "granularity": "channel", "clip": "mse"},
///          "activation": {"bits": 4, "scheme": "hwgq"}},
///         {"name": "fc", "weight": null, "activation": null}
///       ]
///     }
///
/// One entry per conv/linear layer of the model, by its name (any order; each exactly once).
/// `weight` is null (float weights) or a quantizer: `bits` 1…8, or a list of one width per
/// output channel (kernel-wise; granularity "channel"); `scheme` one of symmetric,
/// symmetric_full, asymmetric, binary, ternary, gaussian, pow2 (default symmetric; 1 bit
/// means binary); `granularity` "channel" or "tensor", and `group` N for N weights per scale;
/// `clip` "max", "mse" or a percentile in (50, 100]; `rounding` "nearest_even", "nearest_away"
/// or "stochastic" with `seed`. `activation` is null (float) or `bits` 1…16 with `scheme`
/// uniform, pow2, hwgq (1…4 bits) or binary (1 bit; the default at 1), `sign` auto, signed or
/// unsigned, and `calibration` "minmax" (the one calibration today). Every field but `bits`
/// may be left out for its default. `model` is informative. Version 1 files (bits and
/// granularity only) read as before. Reading checks everything and names the layer and field
/// at fault.
extension Policy {
    public static let fileFormat = "mpq-policy"
    public static let fileVersion = 2

    /// The JSON text (layers in model order, two-space indentation).
    public func jsonText(modelName: String) -> String {
        func quoted(_ s: String) -> String {
            let data = try! JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])
            return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
        }
        func number(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : "\(x)" }
        let rows = entries.map { e -> String in
            var weight = "null"
            if let w = e.weight {
                let q = w.quantizer
                let bits = w.channelBits.map { "[" + $0.map(String.init).joined(separator: ", ") + "]" } ?? String(q.bits)
                var fields = ["\"bits\": \(bits)", "\"scheme\": \"\(q.scheme.rawValue)\""]
                switch q.slicing {
                case .channel: fields.append("\"granularity\": \"channel\"")
                case .tensor: fields.append("\"granularity\": \"tensor\"")
                case .group(let g): fields.append("\"granularity\": \"channel\", \"group\": \(g)")
                }
                switch q.clipping {
                case .max: fields.append("\"clip\": \"max\"")
                case .mse: fields.append("\"clip\": \"mse\"")
                case .percentile(let p): fields.append("\"clip\": \(number(p))")
                }
                switch q.rounding {
                case .nearestEven: fields.append("\"rounding\": \"nearest_even\"")
                case .nearestAway: fields.append("\"rounding\": \"nearest_away\"")
                case .stochastic(let seed): fields.append("\"rounding\": \"stochastic\", \"seed\": \(seed)")
                }
                weight = "{" + fields.joined(separator: ", ") + "}"
            }
            let activation = e.activation.map {
                "{\"bits\": \($0.bits), \"scheme\": \"\($0.scheme.rawValue)\", \"sign\": \"\($0.sign.rawValue)\", \"calibration\": \"minmax\"}"
            } ?? "null"
            return "    {\"name\": \(quoted(e.layer.name)),\n     \"weight\": \(weight),\n     \"activation\": \(activation)}"
        }
        return "{\n  \"format\": \"\(Self.fileFormat)\",\n  \"version\": \(Self.fileVersion),\n  \"model\": \(quoted(modelName)),\n" +
            "  \"layers\": [\n" + rows.joined(separator: ",\n") + "\n  ]\n}\n"
    }

    /// Writes the policy atomically.
    public func save(to path: String, modelName: String) throws {
        try FileIO.writeAtomically(Array(jsonText(modelName: modelName).utf8), to: path)
    }

    /// Reads a policy file for `model`.
    public static func load(path: String, model: Model) throws -> Policy {
        try decode(try FileIO.read(path), model: model, source: path)
    }

    public static func decode(_ bytes: [UInt8], model: Model, source: String) throws -> Policy {
        func fail(_ message: String) -> QuantizationError { QuantizationError("\(source): \(message)") }
        let root: Any
        do { root = try JSONSerialization.jsonObject(with: Data(bytes)) } catch {
            throw fail("not valid JSON (\((error as NSError).userInfo[NSDebugDescriptionErrorKey] ?? error))")
        }
        guard let top = root as? [String: Any] else { throw fail("expected a JSON object at the top, found \(kind(root))") }
        guard top["format"] as? String == fileFormat else {
            throw fail("field 'format': expected \"\(fileFormat)\", found \(describe(top["format"]))")
        }
        guard let version = whole(top["version"]) else { throw fail("field 'version': expected a whole number, found \(describe(top["version"]))") }
        guard (1...fileVersion).contains(version) else {
            throw fail("field 'version': this mpq reads versions 1…\(fileVersion), found \(version)\(version > fileVersion ? " (written by a newer mpq)" : "")")
        }
        guard let list = top["layers"] as? [Any] else { throw fail("field 'layers': expected a list, found \(describe(top["layers"]))") }
        let names = model.layers.map(\.name)
        var byName: [String: Entry] = [:]
        var granularity: Quantizer.Slicing? = nil
        for (i, item) in list.enumerated() {
            guard let e = item as? [String: Any] else { throw fail("layers[\(i)]: expected an object, found \(kind(item))") }
            guard let name = e["name"] as? String else { throw fail("layers[\(i)]: field 'name': expected a string, found \(describe(e["name"]))") }
            let at = "layer '\(name)'"
            guard let layer = model.layer(named: name) else {
                throw fail("\(at): model '\(model.name)' has no such layer; its layers are \(names.joined(separator: ", "))")
            }
            guard byName[name] == nil else { throw fail("\(at) appears twice") }
            func field(_ f: String, _ message: String) -> QuantizationError { fail("\(at): field '\(f)': \(message)") }
            var weight: Weight? = nil
            switch e["weight"] {
            case is NSNull: weight = nil
            case let w as [String: Any]:
                weight = try decodeWeight(w, layer: layer, version: version, field: field)
                if version == 1, let g = weight?.quantizer.slicing {
                    // Version 1 had one granularity per policy.
                    if let granularity, granularity != g {
                        throw field("weight.granularity", "differs from the earlier layers'; a version 1 policy has one granularity")
                    }
                    granularity = g
                }
            case let other: throw field("weight", "expected null (float) or an object, found \(describe(other))")
            }
            var activation: Activation? = nil
            switch e["activation"] {
            case nil, is NSNull: activation = nil
            case let a as [String: Any]: activation = try decodeActivation(a, field: field)
            case let other?: throw field("activation", "expected null or an object, found \(kind(other))")
            }
            byName[name] = Entry(layer: layer, weight: weight, activation: activation)
        }
        let missing = names.filter { byName[$0] == nil }
        guard missing.isEmpty else { throw fail("no entry for layer\(missing.count == 1 ? "" : "s") \(missing.map { "'\($0)'" }.joined(separator: ", ")) of model '\(model.name)'") }
        do { return try Policy(model: model, entries: names.map { byName[$0]! }) }
        catch let e as QuantizationError { throw fail(e.message.replacingOccurrences(of: "policy: ", with: "")) }
    }

    private static func decodeWeight(_ w: [String: Any], layer: Layer, version: Int,
                                     field: (String, String) -> QuantizationError) throws -> Weight {
        if version == 1 {
            for key in w.keys where !["bits", "scheme", "granularity"].contains(key) {
                throw field("weight.\(key)", "version 1 files have no such field (bits, scheme, granularity)")
            }
        } else {
            for key in w.keys where !["bits", "scheme", "granularity", "group", "clip", "rounding", "seed"].contains(key) {
                throw field("weight.\(key)", "no such field; a weight has bits, scheme, granularity, group, clip, rounding, seed")
            }
        }
        var channelBits: [Int]? = nil
        let bits: Int
        if let list = w["bits"] as? [Any] {
            guard version >= 2 else { throw field("weight.bits", "per-channel widths need a version 2 file") }
            let channels = layer.weightShape[0]
            guard list.count == channels else {
                throw field("weight.bits", "expected \(channels) widths (one per output channel of \(layer.weightShape)), found \(list.count)")
            }
            channelBits = try list.enumerated().map { i, v in
                guard let b = whole(v), (1...8).contains(b) else { throw field("weight.bits[\(i)]", "expected a whole number in 1…8, found \(describe(v))") }
                return b
            }
            bits = channelBits!.max()!
        } else {
            guard let b = whole(w["bits"]), (1...8).contains(b) else {
                throw field("weight.bits", "expected a whole number in 1…8 or a list of one per output channel, found \(describe(w["bits"]))")
            }
            bits = b
        }
        var scheme: Quantizer.Scheme = bits == 1 && channelBits == nil ? .binary : .symmetric
        if let v = w["scheme"] {
            guard let text = v as? String, let parsed = Quantizer.Scheme(rawValue: text) else {
                throw field("weight.scheme", "expected one of \(Quantizer.Scheme.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")), found \(describe(v))")
            }
            if version == 1 && parsed != .symmetric { throw field("weight.scheme", "version 1 files carry \"symmetric\" only, found \(describe(v))") }
            scheme = parsed == .symmetric && bits == 1 && channelBits == nil ? .binary : parsed
        }
        var slicing: Quantizer.Slicing = .channel
        if let g = w["granularity"] {
            guard let text = g as? String, let parsed = Granularity(rawValue: text) else {
                throw field("weight.granularity", "expected \"channel\" or \"tensor\", found \(describe(g))")
            }
            slicing = parsed == .perChannel ? .channel : .tensor
        }
        if let g = w["group"] {
            guard let n = whole(g), n >= 1 else { throw field("weight.group", "expected a whole number ≥ 1, found \(describe(g))") }
            slicing = .group(n)
        }
        var clipping: Quantizer.Clipping = .max
        switch w["clip"] {
        case nil: break
        case let s as String where s == "max": clipping = .max
        case let s as String where s == "mse": clipping = .mse
        case let v?:
            guard let n = v as? NSNumber, String(cString: n.objCType) != "c", n.doubleValue > 50, n.doubleValue <= 100 else {
                throw field("weight.clip", "expected \"max\", \"mse\" or a percentile in (50, 100], found \(describe(v))")
            }
            clipping = .percentile(n.doubleValue)
        }
        var rounding: Quantizer.Rounding = .nearestEven
        switch w["rounding"] {
        case nil: break
        case let s as String where s == "nearest_even": rounding = .nearestEven
        case let s as String where s == "nearest_away": rounding = .nearestAway
        case let s as String where s == "stochastic":
            var seed: UInt64 = 0
            if let v = w["seed"] {
                guard let n = whole(v), n >= 0 else { throw field("weight.seed", "expected a whole number ≥ 0, found \(describe(v))") }
                seed = UInt64(n)
            }
            rounding = .stochastic(seed: seed)
        case let v?: throw field("weight.rounding", "expected \"nearest_even\", \"nearest_away\" or \"stochastic\", found \(describe(v))")
        }
        let weight = Weight(Quantizer(bits: bits, scheme: scheme, slicing: slicing, rounding: rounding, clipping: clipping), channelBits: channelBits)
        do { try weight.validate(for: layer) }
        catch let e as QuantizationError {
            let message = e.message
            if message.hasPrefix("weight") {
                let parts = message.split(separator: ":", maxSplits: 1)
                throw field(String(parts[0]), String(parts.count > 1 ? parts[1].dropFirst() : ""))
            }
            throw field("weight", message)
        }
        return weight
    }

    private static func decodeActivation(_ a: [String: Any], field: (String, String) -> QuantizationError) throws -> Activation {
        for key in a.keys where !["bits", "scheme", "sign", "calibration"].contains(key) {
            throw field("activation.\(key)", "no such field; an activation has bits, scheme, sign, calibration")
        }
        guard let b = whole(a["bits"]), (1...16).contains(b) else {
            throw field("activation.bits", "expected a whole number in 1…16, found \(describe(a["bits"]))")
        }
        var scheme: Activation.Scheme? = nil
        if let v = a["scheme"] {
            guard let text = v as? String, let parsed = Activation.Scheme(rawValue: text) else {
                throw field("activation.scheme", "expected one of \(Activation.Scheme.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")), found \(describe(v))")
            }
            scheme = parsed
        }
        var sign = Activation.Sign.auto
        if let v = a["sign"] {
            guard let text = v as? String, let parsed = Activation.Sign(rawValue: text) else {
                throw field("activation.sign", "expected \"auto\", \"signed\" or \"unsigned\", found \(describe(v))")
            }
            sign = parsed
        }
        if let v = a["calibration"], v as? String != "minmax" {
            throw field("activation.calibration", "expected \"minmax\" (the one calibration today), found \(describe(v))")
        }
        let activation = Activation(bits: b, scheme: scheme, sign: sign)
        do { try activation.validate() }
        catch let e as QuantizationError {
            throw field(e.message.hasPrefix("activation.bits") ? "activation.bits" : "activation.scheme",
                        String(e.message.split(separator: ":", maxSplits: 1).last!.dropFirst()))
        }
        return activation
    }

    private static func whole(_ v: Any?) -> Int? {
        // JSON true and false arrive as NSNumbers of type "c" (char); they are not numbers here.
        guard let n = v as? NSNumber, String(cString: n.objCType) != "c" else { return nil }
        let d = n.doubleValue
        guard d.isFinite, d == d.rounded(), abs(d) < 1e15 else { return nil }
        return Int(d)
    }

    private static func kind(_ v: Any) -> String {
        switch v {
        case is NSNull: return "null"
        case is String: return "a string"
        case is [Any]: return "a list"
        case is [String: Any]: return "an object"
        case is NSNumber: return "a number"
        default: return "\(type(of: v))"
        }
    }

    private static func describe(_ v: Any?) -> String {
        guard let v else { return "nothing (the field is missing)" }
        if let s = v as? String { return "\"\(s)\"" }
        if let n = v as? NSNumber { return String(cString: n.objCType) == "c" ? (n.boolValue ? "true" : "false") : "\(n)" }
        return kind(v)
    }
}
