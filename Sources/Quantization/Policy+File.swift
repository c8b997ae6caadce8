import Foundation
import Network
import Tensors

/// Policies as JSON files a person can read and edit:
///
///     {
///       "format": "mpq-policy",
///       "version": 1,
///       "model": "resnet20",
///       "layers": [
///         {"name": "conv1", "weight": {"bits": 8, "scheme": "symmetric", "granularity": "channel"},
///          "activation": {"bits": 8}},
///         {"name": "fc", "weight": {"bits": 4, "scheme": "symmetric", "granularity": "channel"},
///          "activation": null}
///       ]
///     }
///
/// One entry per conv/linear layer of the model, by its name (any order; each exactly once).
/// `weight.bits` is 1…8 (1: binary); `weight.scheme` is "symmetric", the reference quantizer
/// (narrow range, max-abs scale, half-even rounding), the one scheme a policy carries today;
/// `weight.granularity` is "channel" or "tensor", the same for every layer. `activation` is
/// null (float) or `{"bits": 1…16}` (uniform, calibrated min/max; 1: binary). `model` is
/// informative. Reading checks everything and names the layer and field at fault.
extension Policy {
    public static let fileFormat = "mpq-policy"
    public static let fileVersion = 1

    /// The JSON text (layers in model order, two-space indentation).
    public func jsonText(modelName: String) -> String {
        func quoted(_ s: String) -> String {
            let data = try! JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])
            return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
        }
        let rows = layers.indices.map { i -> String in
            let activation = activationBits[i].map { "{\"bits\": \($0)}" } ?? "null"
            return "    {\"name\": \(quoted(layers[i])), \"weight\": {\"bits\": \(weightBits[i]), \"scheme\": \"symmetric\", " +
                "\"granularity\": \"\(granularity.rawValue)\"}, \"activation\": \(activation)}"
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
        func fail(_ message: String) -> NetworkError { NetworkError("\(source): \(message)") }
        let root: Any
        do { root = try JSONSerialization.jsonObject(with: Data(bytes)) } catch {
            throw fail("not valid JSON (\((error as NSError).userInfo[NSDebugDescriptionErrorKey] ?? error))")
        }
        guard let top = root as? [String: Any] else { throw fail("expected a JSON object at the top, found \(kind(root))") }
        guard top["format"] as? String == fileFormat else {
            throw fail("field 'format': expected \"\(fileFormat)\", found \(describe(top["format"]))")
        }
        guard let version = whole(top["version"]) else { throw fail("field 'version': expected a whole number, found \(describe(top["version"]))") }
        guard version == fileVersion else {
            throw fail("field 'version': this mpq reads version \(fileVersion), found \(version)\(version > fileVersion ? " (written by a newer mpq)" : "")")
        }
        guard let entries = top["layers"] as? [Any] else { throw fail("field 'layers': expected a list, found \(describe(top["layers"]))") }
        let names = model.layers.map(\.name)
        var weight: [String: Int] = [:], activation: [String: Int?] = [:]
        var granularity: Granularity? = nil
        for (i, entry) in entries.enumerated() {
            guard let e = entry as? [String: Any] else { throw fail("layers[\(i)]: expected an object, found \(kind(entry))") }
            guard let name = e["name"] as? String else { throw fail("layers[\(i)]: field 'name': expected a string, found \(describe(e["name"]))") }
            let at = "layer '\(name)'"
            guard names.contains(name) else {
                throw fail("\(at): model '\(model.name)' has no such layer; its layers are \(names.joined(separator: ", "))")
            }
            guard weight[name] == nil else { throw fail("\(at) appears twice") }
            guard let w = e["weight"] as? [String: Any] else { throw fail("\(at): field 'weight': expected an object, found \(describe(e["weight"]))") }
            guard let bits = whole(w["bits"]), (1...8).contains(bits) else {
                throw fail("\(at): field 'weight.bits': expected a whole number in 1…8, found \(describe(w["bits"]))")
            }
            if let scheme = w["scheme"], scheme as? String != "symmetric" {
                throw fail("\(at): field 'weight.scheme': expected \"symmetric\" (the one scheme policies carry today), found \(describe(scheme))")
            }
            if let g = w["granularity"] {
                guard let text = g as? String, let parsed = Granularity(rawValue: text) else {
                    throw fail("\(at): field 'weight.granularity': expected \"channel\" or \"tensor\", found \(describe(g))")
                }
                if let granularity, granularity != parsed {
                    throw fail("\(at): field 'weight.granularity': \"\(text)\" differs from the earlier layers' \"\(granularity.rawValue)\"; a policy has one granularity")
                }
                granularity = parsed
            }
            weight[name] = bits
            switch e["activation"] {
            case nil, is NSNull: activation[name] = .some(nil)
            case let a as [String: Any]:
                guard let b = whole(a["bits"]), (1...16).contains(b) else {
                    throw fail("\(at): field 'activation.bits': expected a whole number in 1…16, found \(describe(a["bits"]))")
                }
                activation[name] = b
            case let other?: throw fail("\(at): field 'activation': expected null or an object, found \(kind(other))")
            }
        }
        let missing = names.filter { weight[$0] == nil }
        guard missing.isEmpty else { throw fail("no entry for layer\(missing.count == 1 ? "" : "s") \(missing.map { "'\($0)'" }.joined(separator: ", ")) of model '\(model.name)'") }
        return try Policy(layers: names, weightBits: names.map { weight[$0]! }, activationBits: names.map { activation[$0]! },
                          granularity: granularity ?? .perChannel)
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
