import CImage
import Foundation
import Tensors

/// How stored examples become a dataset's inputs, stated in the dataset (`Dataset.preprocessing`)
/// and in reports: 8-bit pixels (image files, uint8/int8 arrays) are multiplied by `scale`; then
/// each channel c becomes (x − mean[c]) / std[c] (one value applies to every channel; none:
/// unchanged). Images are resized to `size` ([height, width], bilinear, half-pixel centres) when
/// given — otherwise all must share one size — and converted to `channels` (1: luma
/// 0.299R + 0.587G + 0.114B, 3: gray repeated) when given. Inputs are laid out [N, C, H, W].
public struct Preprocessing: Sendable, Equatable {
    public var size: [Int]?
    public var channels: Int?
    public var scale: Float = 1.0 / 255
    public var mean: [Float] = []
    public var std: [Float] = []
    public init(size: [Int]? = nil, channels: Int? = nil, scale: Float = 1.0 / 255, mean: [Float] = [], std: [Float] = []) {
        self.size = size; self.channels = channels; self.scale = scale; self.mean = mean; self.std = std
    }

    public func validate() throws {
        if let size { guard size.count == 2, size.allSatisfy({ (1...8192).contains($0) }) else { throw NetworkError("dataset: size must be [height, width] in 1…8192, found \(size)") } }
        if let channels { guard channels == 1 || channels == 3 else { throw NetworkError("dataset: channels must be 1 or 3, found \(channels)") } }
        guard scale.isFinite, scale > 0 else { throw NetworkError("dataset: scale must be a positive number, found \(scale)") }
        guard std.allSatisfy({ $0.isFinite && $0 > 0 }), mean.allSatisfy(\.isFinite) else { throw NetworkError("dataset: mean must be finite and std positive") }
    }

    public var description: String { describe(scaledPixels: true) }

    /// What was done; `scaledPixels`: whether the inputs were 8-bit pixels that `scale` multiplied.
    public func describe(scaledPixels: Bool) -> String {
        var parts: [String] = []
        if let size { parts.append("resized to \(size[0])×\(size[1]) (bilinear)") }
        if let channels { parts.append("\(channels) channel\(channels == 1 ? "" : "s")") }
        if scaledPixels { parts.append("8-bit pixels × \(scale == 1.0 / 255 ? "1/255" : "\(scale)")") }
        if !mean.isEmpty || !std.isEmpty { parts.append("(x − \(mean.isEmpty ? [0] : mean)) / \(std.isEmpty ? [1] : std) per channel") }
        return parts.isEmpty ? "as stored" : parts.joined(separator: ", ")
    }

    /// Normalises `x` ([N, C, H, W] or any [N, C, …]) in place.
    func normalize(_ x: inout [Float], channels c: Int, inner: Int) throws {
        guard !mean.isEmpty || !std.isEmpty else { return }
        for (name, v) in [("mean", mean), ("std", std)] where !(v.isEmpty || v.count == 1 || v.count == c) {
            throw NetworkError("dataset: \(name) has \(v.count) values; expected 1 or one per channel (\(c))")
        }
        let n = x.count / max(1, c * inner)
        for i in 0..<n {
            for ch in 0..<c {
                let m = mean.isEmpty ? 0 : mean[mean.count == 1 ? 0 : ch], s = std.isEmpty ? 1 : std[std.count == 1 ? 0 : ch]
                let base = (i * c + ch) * inner
                for j in 0..<inner { x[base + j] = (x[base + j] - m) / s }
            }
        }
    }
}

extension Dataset {
    /// A dataset from a file or folder:
    /// - a folder with `x.npy` and `y.npy` (or `images.npy` and `labels.npy`), or an `.npz` with
    ///   arrays named so (8-bit pixels: a `|u1` .npy; in an .npz, whole numbers in 0…255): inputs [N, C, H, W] or [N, H, W, C] (told apart by a last dimension of
    ///   1 or 3 where the second is not), or [N, H, W] (one channel); labels [N], whole numbers;
    /// - a folder of class folders (`cat/`, `dog/`, …; sorted names are classes 0, 1, …) holding
    ///   PNG or JPEG images, decoded by libpng and libjpeg-turbo.
    /// - an inputs `.npy` with `labels` naming the labels' `.npy`.
    public static func open(_ path: String, labels: String? = nil, preprocessing: Preprocessing = Preprocessing(), classes: Int? = nil) throws -> Dataset {
        try preprocessing.validate()
        let path = FileIO.resolve(path)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw NetworkError("dataset: no file or folder at \(path)") }
        let name = (path as NSString).lastPathComponent
        if path.lowercased().hasSuffix(".npy") {
            guard let labels else { throw NetworkError("dataset: \(path) holds inputs only; name the labels' .npy (labels: \"y.npy\")") }
            let xBytes = try FileIO.read(path)
            return try arrays(name: name, images: try NPY.decode(xBytes[...], path: path), labels: try NPY.read(labels),
                              eightBit: npyHoldsBytes(xBytes[...]), preprocessing: preprocessing, classes: classes)
        }
        if !isDirectory.boolValue {
            guard path.lowercased().hasSuffix(".npz") else { throw NetworkError("dataset: \(path) is not a folder or an .npz file") }
            let stored = try NPZ.read(path)
            func find(_ names: [String]) -> Tensor? { stored.first { names.contains($0.name) }?.tensor }
            guard let x = find(["x", "images"]), let y = find(["y", "labels"]) else {
                throw NetworkError("dataset: \(path) holds \(stored.map(\.name)); expected arrays named x and y (or images and labels)")
            }
            // An .npz's dtypes are not kept by the reader: whole numbers in 0…255 above 1 are pixels.
            let pixels = x.scalars.allSatisfy { $0 == $0.rounded() && $0 >= 0 && $0 <= 255 } && (x.scalars.max() ?? 0) > 1
            return try Dataset.arrays(name: name, images: x, labels: y, eightBit: pixels, preprocessing: preprocessing, classes: classes)
        }
        let entries = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
        for (xName, yName) in [("x.npy", "y.npy"), ("images.npy", "labels.npy")] where entries.contains(xName) {
            guard entries.contains(yName) else { throw NetworkError("dataset: \(path)/\(xName) has no \(yName) beside it") }
            let xBytes = try FileIO.read("\(path)/\(xName)")
            let x = try NPY.decode(xBytes[...], path: "\(path)/\(xName)"), y = try NPY.read("\(path)/\(yName)")
            return try arrays(name: name, images: x, labels: y, eightBit: npyHoldsBytes(xBytes[...]), preprocessing: preprocessing, classes: classes)
        }
        return try imageFolder(path, entries: entries, preprocessing: preprocessing)
    }

    /// A dataset from arrays: `images` [N, …] (see `open` for the layouts), `labels` [N].
    public static func arrays(name: String, images x: Tensor, labels y: Tensor, eightBit: Bool = false,
                              preprocessing: Preprocessing = Preprocessing(), classes: Int? = nil) throws -> Dataset {
        try preprocessing.validate()
        guard x.rank >= 2 else { throw NetworkError("dataset '\(name)': inputs must have a batch dimension and more, found shape \(x.shape)") }
        guard y.count == x.shape[0] else {
            throw NetworkError("dataset '\(name)': \(x.shape[0]) inputs but \(y.count) labels")
        }
        guard !x.hasNonFinite else { throw NetworkError("dataset '\(name)': the inputs hold NaN or infinite values") }
        let labels = try y.scalars.enumerated().map { i, v -> Int in
            guard v.isFinite, v == v.rounded(), v >= 0, v < 1e9 else { throw NetworkError("dataset '\(name)': label \(i) is \(v); expected a whole number ≥ 0") }
            return Int(v)
        }
        var shape = x.shape
        var values = x.scalars
        if shape.count == 3 { shape.insert(1, at: 1) }
        if shape.count == 4, [1, 3].contains(shape[3]), ![1, 3].contains(shape[1]) {
            // [N, H, W, C] → [N, C, H, W]
            let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
            var t = [Float](repeating: 0, count: values.count)
            for i in 0..<n { for p in 0..<(h * w) { for ch in 0..<c { t[(i * c + ch) * h * w + p] = values[(i * h * w + p) * c + ch] } } }
            values = t
            shape = [n, c, h, w]
        }
        if eightBit { for i in values.indices { values[i] *= preprocessing.scale } }
        let p = preprocessing
        if shape.count == 4 {
            (values, shape) = try resized(values, shape: shape, to: p.size, channels: p.channels)
        } else if p.size != nil || p.channels != nil {
            throw NetworkError("dataset '\(name)': size and channels apply to images [N, C, H, W]; the inputs are \(x.shape)")
        }
        try p.normalize(&values, channels: shape.count >= 2 ? shape[1] : 1, inner: shape.dropFirst(2).reduce(1, *))
        let k = classes ?? ((labels.max() ?? 0) + 1)
        var d = try Dataset(name: name, images: try Tensor(shape: shape, scalars: values), labels: labels, classes: max(k, 1))
        d.preprocessing = p.describe(scaledPixels: eightBit)
        return d
    }

    static func imageFolder(_ path: String, entries: [String], preprocessing p: Preprocessing) throws -> Dataset {
        let classes = entries.filter { var d: ObjCBool = false; return FileManager.default.fileExists(atPath: "\(path)/\($0)", isDirectory: &d) && d.boolValue && !$0.hasPrefix(".") }
        guard !classes.isEmpty else {
            throw NetworkError("dataset: \(path) holds no x.npy/y.npy pair and no class folders of images")
        }
        var images: [(pixels: [Float], shape: [Int])] = [], labels: [Int] = []
        var firstSize: (String, [Int])? = nil
        for (label, cls) in classes.enumerated() {
            let files = try FileManager.default.contentsOfDirectory(atPath: "\(path)/\(cls)").sorted()
                .filter { ["png", "jpg", "jpeg"].contains(($0 as NSString).pathExtension.lowercased()) }
            for f in files {
                let file = "\(path)/\(cls)/\(f)"
                var (pixels, shape) = try decodeImage(file)
                for i in pixels.indices { pixels[i] *= p.scale }
                let (r, rs) = try resized(pixels, shape: [1] + shape, to: p.size, channels: p.channels)
                // Every image must come out the same shape: what size:/channels: are for.
                if let (first, s) = firstSize, Array(rs.dropFirst()) != s {
                    throw NetworkError("dataset: \(file) is \(rs[2])×\(rs[3]) with \(rs[1]) channel(s) but \(first) is \(s[1])×\(s[2]) with \(s[0]); give size: [height, width] and channels: to make them alike")
                }
                if firstSize == nil { firstSize = (file, Array(rs.dropFirst())) }
                images.append((r, Array(rs.dropFirst())))
                labels.append(label)
            }
        }
        guard let shape = images.first?.shape else { throw NetworkError("dataset: the class folders of \(path) hold no .png or .jpg files") }
        let count = try Tensor.elementCount(of: [images.count] + shape)
        try MemoryBudget.check(count: count, of: 4, for: "dataset \(path)")
        var values = [Float]()
        values.reserveCapacity(count)
        for image in images { values += image.pixels }
        try p.normalize(&values, channels: shape[0], inner: shape[1] * shape[2])
        var d = try Dataset(name: (path as NSString).lastPathComponent, images: try Tensor(shape: [images.count] + shape, scalars: values),
                            labels: labels, classes: classes.count)
        d.preprocessing = p.description
        d.classNames = classes
        return d
    }

    /// One image file as floats [C, H, W] (values 0…255).
    public static func decodeImage(_ path: String) throws -> ([Float], [Int]) {
        let bytes = try FileIO.read(path)
        var pixels: UnsafeMutablePointer<UInt8>? = nil
        var w: Int32 = 0, h: Int32 = 0, c: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let limit = max(1, Tensor.maxElementCount / 3)
        let status = bytes.withUnsafeBufferPointer { b in
            mpq_decode_image(b.baseAddress, b.count, limit, &pixels, &w, &h, &c, &message, message.count)
        }
        guard status == 0, let pixels else { throw NetworkError("dataset: \(path): \(String(cString: message))") }
        defer { free(pixels) }
        let (width, height, channels) = (Int(w), Int(h), Int(c))
        var out = [Float](repeating: 0, count: width * height * channels)
        for p in 0..<(width * height) { for ch in 0..<channels { out[ch * width * height + p] = Float(pixels[p * channels + ch]) } }
        return (out, [channels, height, width])
    }

    /// Images [N, C, H, W] resized (bilinear, half-pixel centres) and converted to `channels`.
    static func resized(_ x: [Float], shape: [Int], to size: [Int]?, channels: Int?) throws -> ([Float], [Int]) {
        var (values, s) = (x, shape)
        if let channels, channels != s[1] {
            let (n, c, hw) = (s[0], s[1], s[2] * s[3])
            guard c == 1 || c == 3 else { throw NetworkError("dataset: cannot convert \(c) channels to \(channels)") }
            var t = [Float](repeating: 0, count: n * channels * hw)
            for i in 0..<n {
                for p in 0..<hw {
                    if channels == 1 {
                        t[i * hw + p] = 0.299 * values[(i * 3) * hw + p] + 0.587 * values[(i * 3 + 1) * hw + p] + 0.114 * values[(i * 3 + 2) * hw + p]
                    } else {
                        for ch in 0..<3 { t[(i * 3 + ch) * hw + p] = values[i * hw + p] }
                    }
                }
            }
            values = t; s[1] = channels
        }
        if let size, size != [s[2], s[3]] {
            let (n, c, h, w) = (s[0], s[1], s[2], s[3]), (oh, ow) = (size[0], size[1])
            try MemoryBudget.check(count: n * c * oh * ow, of: 4, for: "resized images")
            var t = [Float](repeating: 0, count: n * c * oh * ow)
            for plane in 0..<(n * c) {
                for y in 0..<oh {
                    let fy = max(0, (Float(y) + 0.5) * Float(h) / Float(oh) - 0.5)
                    let y0 = min(Int(fy), h - 1), y1 = min(y0 + 1, h - 1), dy = fy - Float(y0)
                    for xo in 0..<ow {
                        let fx = max(0, (Float(xo) + 0.5) * Float(w) / Float(ow) - 0.5)
                        let x0 = min(Int(fx), w - 1), x1 = min(x0 + 1, w - 1), dx = fx - Float(x0)
                        let b = plane * h * w
                        let top = values[b + y0 * w + x0] * (1 - dx) + values[b + y0 * w + x1] * dx
                        let bottom = values[b + y1 * w + x0] * (1 - dx) + values[b + y1 * w + x1] * dx
                        t[(plane * oh + y) * ow + xo] = top * (1 - dy) + bottom * dy
                    }
                }
            }
            values = t; s[2] = oh; s[3] = ow
        }
        return (values, s)
    }

    /// Whether an .npy's dtype is one byte wide (u1/i1: pixels to scale).
    static func npyHoldsBytes(_ bytes: ArraySlice<UInt8>) -> Bool {
        let head = String(decoding: bytes.prefix(512), as: UTF8.self)
        return head.contains("'descr': '|u1'") || head.contains("'descr': '|i1'") || head.contains("'descr': '<u1'")
    }

    /// Two disjoint datasets: a `fraction` of the examples (shuffled by `seed`) and the rest.
    public func split(_ fraction: Double, seed: UInt64) throws -> (Dataset, Dataset) {
        guard fraction > 0, fraction < 1 else { throw NetworkError("split: the fraction must lie strictly between 0 and 1, found \(fraction)") }
        let k = Int((Double(count) * fraction).rounded())
        guard k >= 1, k < count else { throw NetworkError("split: \(count) examples cannot be split \(fraction) : \(1 - fraction) with both parts non-empty") }
        var order = Array(0..<count)
        var rng = RandomGenerator(seed: seed)
        for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        func part(_ idx: ArraySlice<Int>, _ suffix: String) throws -> Dataset {
            let (x, y) = try gather(idx)
            var d = try Dataset(name: "\(name)/\(suffix)", images: x, labels: y, classes: classes)
            d.preprocessing = preprocessing; d.classNames = classNames
            return d
        }
        return (try part(order[..<k], "split \(k)"), try part(order[k...], "split \(count - k)"))
    }
}
