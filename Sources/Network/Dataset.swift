import Foundation
import Tensors

/// Labelled images: [N] + example shape, and one class label per image.
public struct Dataset: Sendable {
    public var name: String
    public var images: Tensor
    public var labels: [Int]
    public var classes: Int
    /// How the inputs were made from the files (see `Preprocessing`); empty for built-in data.
    public var preprocessing = ""
    /// Class names, when the files named them (an image folder's subfolders).
    public var classNames: [String]? = nil

    public init(name: String, images: Tensor, labels: [Int], classes: Int) throws {
        guard images.rank >= 1, images.shape[0] == labels.count else {
            throw NetworkError("dataset '\(name)': \(images.rank >= 1 ? images.shape[0] : 0) images but \(labels.count) labels")
        }
        guard labels.allSatisfy({ $0 >= 0 && $0 < classes }) else {
            throw NetworkError("dataset '\(name)': labels must lie in 0..<\(classes)")
        }
        self.name = name; self.images = images; self.labels = labels; self.classes = classes
    }

    public var count: Int { labels.count }
    public var exampleShape: [Int] { Array(images.shape.dropFirst()) }

    /// Examples `range` (in order).
    public func slice(_ range: Range<Int>) throws -> Dataset {
        let r = max(0, range.lowerBound)..<min(count, range.upperBound)
        return try Dataset(name: name, images: try images.slice(r), labels: Array(labels[r]), classes: classes)
    }

    /// The examples at `indices` (a shuffled mini-batch).
    public func gather(_ indices: ArraySlice<Int>) throws -> (images: Tensor, labels: [Int]) {
        let size = exampleShape.reduce(1, *)
        var out = [Float](repeating: 0, count: indices.count * size)
        images.withUnsafeScalars { src in
            out.withUnsafeMutableBufferPointer { dst in
                for (row, i) in indices.enumerated() {
                    (dst.baseAddress! + row * size).update(from: src.baseAddress! + i * size, count: size)
                }
            }
        }
        return (Tensor(checkedShape: [indices.count] + exampleShape, scalars: out), indices.map { labels[$0] })
    }
}

/// Fashion-MNIST from the gzip IDX files of the Debian package `dataset-fashion-mnist`
/// (/usr/share/datasets/fashion-mnist, or the folder in MPQ_DATA), normalised as the reference
/// models were trained: x = (pixel/255 − 0.2860) / 0.3530, shape [N, 1, 28, 28].
public enum FashionMNIST {
    public static let mean: Float = 0.2860, std: Float = 0.3530
    public static let classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                    "Sneaker", "Bag", "Ankle boot"]

    public static var directory: String {
        ProcessInfo.processInfo.environment["MPQ_DATA"].flatMap { $0.isEmpty ? nil : $0 } ?? "/usr/share/datasets/fashion-mnist"
    }

    public enum Split: String, Sendable { case train, test }

    /// The first `limit` images of a split, in file order.
    public static func load(_ split: Split, limit: Int? = nil, directory: String = FashionMNIST.directory) throws -> Dataset {
        let prefix = split == .train ? "train" : "t10k"
        let imagesPath = "\(directory)/\(prefix)-images-idx3-ubyte.gz", labelsPath = "\(directory)/\(prefix)-labels-idx1-ubyte.gz"
        guard FileManager.default.fileExists(atPath: imagesPath) else {
            throw NetworkError("Fashion-MNIST not found: \(imagesPath) is missing. Install the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or point MPQ_DATA at a folder with the four .gz files")
        }
        if let limit, limit < 0 { throw NetworkError("fashion_mnist: limit must be ≥ 0, found \(limit)") }
        let images = try IDX.read(imagesPath), labels = try IDX.read(labelsPath)
        guard let pixels = images.bytes, images.tensor.rank == 3, images.tensor.shape[1] == 28, images.tensor.shape[2] == 28,
              let labelBytes = labels.bytes, labels.tensor.rank == 1 else {
            throw NetworkError("Fashion-MNIST files in \(directory) are not 28×28 uint8 images with uint8 labels")
        }
        let n = min(limit ?? Int.max, images.tensor.shape[0], labels.tensor.shape[0])
        var x = [Float](repeating: 0, count: n * 784)
        for i in 0..<(n * 784) { x[i] = (Float(pixels[i]) / 255 - mean) / std }
        return try Dataset(name: "fashion-mnist/\(split.rawValue)", images: Tensor(checkedShape: [n, 1, 28, 28], scalars: x),
                           labels: labelBytes.prefix(n).map(Int.init), classes: 10)
    }

    /// The calibration batch of the references: the first 512 training images in file order.
    public static func calibration(directory: String = FashionMNIST.directory) throws -> Dataset {
        var d = try load(.train, limit: 512, directory: directory)
        d.name = "fashion-mnist/calibration"
        return d
    }
}
