import Foundation
import Testing
import TestSupport
import Network
import Tensors

/// The CIFAR-shaped fixtures of scripts/gen-image-data.py, written once per test process.
let imageData: String = {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-image-data-\(getpid())").path
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", repositoryRoot.appendingPathComponent("scripts/gen-image-data.py").path, dir]
    p.standardOutput = FileHandle.nullDevice
    try? p.run()
    p.waitUntilExit()
    return dir
}()

/// The same 36 images three ways: a uint8 .npy pair ([N, H, W, C], scaled by 1/255 and
/// transposed to [N, C, H, W]), and a folder of class folders whose PNGs hold exactly those
/// pixels (decoded by libpng) and whose JPEGs (libjpeg-turbo) decode as Pillow decodes them,
/// within two levels.
@Test func imageFoldersAndArraysAgree() throws {
    let arrays = try Dataset.open("\(imageData)/npy")
    let folder = try Dataset.open("\(imageData)/folder")
    #expect(arrays.count == 36 && folder.count == 36)
    #expect(arrays.exampleShape == [3, 32, 32] && folder.exampleShape == [3, 32, 32])
    #expect(folder.classes == 3 && folder.classNames == ["cat", "dog", "ship"])
    #expect(folder.labels == arrays.labels)
    let jpegs = Set(try String(contentsOfFile: "\(imageData)/jpeg-of.txt", encoding: .utf8).split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
    let per = 3 * 32 * 32
    let decoded = try NPY.read("\(imageData)/jpeg-decoded.npy")  // [k, 32, 32, 3], 0…255
    var worstJPEG: Float = 0
    for i in 0..<36 {
        let b = Array(folder.images.scalars[(i * per)..<((i + 1) * per)])
        if let k = jpegs.sorted().firstIndex(of: i) {
            // Against Pillow's decoding of the same file (IDCTs may differ by a level).
            for p in 0..<1024 { for c in 0..<3 {
                worstJPEG = max(worstJPEG, abs(b[c * 1024 + p] * 255 - decoded.scalars[(k * 1024 + p) * 3 + c]))
            } }
        } else {
            let a = arrays.images.scalars[(i * per)..<((i + 1) * per)]
            #expect(zip(a, b).map { abs($0 - $1) }.max()! == 0, "image \(i)")
        }
    }
    #expect(worstJPEG <= 2.01, "JPEG pixels differ from Pillow's decoding by \(worstJPEG) levels")
    #expect(folder.preprocessing.contains("1/255"))
}

/// Preprocessing: resize, channel conversion and per-channel normalisation, as stated.
@Test func preprocessingResizesConvertsAndNormalises() throws {
    let p = Preprocessing(size: [16, 20], channels: 1, mean: [0.5], std: [0.25])
    let d = try Dataset.open("\(imageData)/folder", preprocessing: p)
    #expect(d.exampleShape == [1, 16, 20])
    #expect(d.preprocessing.contains("resized to 16×20") && d.preprocessing.contains("1 channel"))
    // A constant image stays constant through resize; normalisation is (x − 0.5)/0.25.
    let flat = try Dataset.arrays(name: "flat", images: try Tensor(shape: [1, 3, 4, 4], scalars: Array(repeating: 0.75, count: 48)),
                                  labels: Tensor([0]), preprocessing: Preprocessing(size: [7, 9], mean: [0.5], std: [0.25]))
    #expect(flat.images.shape == [1, 3, 7, 9])
    // Float inputs are not pixels: the description says no scaling happened.
    #expect(flat.preprocessing == "resized to 7×9 (bilinear), (x − [0.5]) / [0.25] per channel")
    #expect(flat.images.scalars.allSatisfy { abs($0 - 1) < 1e-6 })
    let (a, b) = try d.split(0.75, seed: 3)
    #expect(a.count == 27 && b.count == 9)
    #expect((a.labels + b.labels).sorted() == d.labels.sorted())
    // Disjoint: every image of the data lands in exactly one part.
    let rows = { (x: Dataset) in (0..<x.count).map { Array(x.images.scalars[($0 * 320)..<(($0 + 1) * 320)]) } }
    #expect(Set((rows(a) + rows(b)).map { $0.description }).count == Set(rows(d).map { $0.description }).count)
}

/// Bad input: images of different sizes without a resize (the files named), labels that do not
/// match the inputs in count (both counts), non-image files, and missing labels.
@Test func badDatasetsAreRefusedClearly() throws {
    func message(_ f: () throws -> Dataset) -> String { do { _ = try f(); return "no error" } catch { return "\(error)" } }
    let mixed = message { try Dataset.open("\(imageData)/mixed") }
    #expect(mixed.contains("small.png") && mixed.contains("big.png") && mixed.contains("size:"))
    #expect(message { try Dataset.open("\(imageData)/mixed", preprocessing: Preprocessing(size: [32, 32])) } == "no error")
    let counts = message { try Dataset.arrays(name: "d", images: try Tensor.zeros([4, 3, 2, 2]), labels: Tensor([0, 1, 0])) }
    #expect(counts.contains("4 inputs but 3 labels"))
    let junk = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-junk-\(getpid())").path
    try FileManager.default.createDirectory(atPath: "\(junk)/a", withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: junk) }
    try Data("not an image".utf8).write(to: URL(fileURLWithPath: "\(junk)/a/x.png"))
    #expect(message { try Dataset.open(junk) }.contains("x.png: not a PNG or JPEG file"))
    try Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13]).write(to: URL(fileURLWithPath: "\(junk)/a/x.png"))
    #expect(message { try Dataset.open(junk) }.contains("x.png"))
    #expect(message { try Dataset.open("\(imageData)/npy/x.npy") }.contains("labels"))
    #expect(message { try Dataset.open("\(imageData)/nowhere") }.contains("no file or folder"))
}
