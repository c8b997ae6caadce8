import Foundation
import Testing
import TestSupport
import Tensors

func temporaryPath(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-tests-\(ProcessInfo.processInfo.processIdentifier)")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}

let fashionMNIST = ProcessInfo.processInfo.environment["MPQ_DATA"] ?? "/usr/share/datasets/fashion-mnist"

@Test(arguments: [false, true])
func idxRoundTrip(gzip: Bool) throws {
    let t = try Tensor(shape: [2, 3, 2], scalars: (0..<12).map { Float($0 * 20) })
    let path = temporaryPath("a\(gzip).idx")
    try IDX.write(t, as: .uint8, to: path, gzip: gzip)
    let back = try IDX.read(path)
    #expect(back.tensor == t)
    #expect(back.type == .uint8)
    let f = try Tensor(shape: [3], scalars: [1.5, -2.25, 1e-3])
    try IDX.write(f, as: .float32, to: path, gzip: gzip)
    #expect(try IDX.read(path).tensor == f)
    #expect(throws: TensorError.self) { try IDX.write(try Tensor(shape: [1], scalars: [300]), as: .uint8, to: path) }
}

@Test func idxMalformed() throws {
    let good = try IDX.encode(try Tensor(shape: [2, 2], scalars: [1, 2, 3, 4]), as: .uint8)
    func expectError(_ bytes: [UInt8], _ fragment: String) {
        do { _ = try IDX.decode(bytes, path: "x.idx"); Issue.record("accepted: \(fragment)") } catch {
            #expect("\(error)".contains(fragment), "\(error)")
        }
    }
    expectError(Array(good.dropLast()), "need 4 bytes of data, found 3")
    expectError([1] + good.dropFirst(), "magic")
    expectError([0, 0, 0x42, 1, 0, 0, 0, 1, 7], "element type")
    expectError([0, 0, 8, 2, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1], "too large")
    expectError([0, 0, 8, 3, 0, 0], "truncated")
    expectError([], "truncated")
    // A gzip stream cut short.
    let gz = temporaryPath("t.idx.gz")
    try IDX.write(try Tensor(shape: [100], scalars: [Float](repeating: 7, count: 100)), as: .uint8, to: gz, gzip: true)
    let bytes = try FileIO.read(gz)
    expectError(Array(bytes.prefix(bytes.count / 2)), "truncated")
    expectError([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3, 0xFF, 0xFF, 0xFF], "corrupt")
}

@Test func fashionMNISTFilesRead() throws {
    let labels = try IDX.read(fashionMNIST + "/t10k-labels-idx1-ubyte.gz")
    #expect(labels.tensor.shape == [10_000])
    #expect(labels.tensor.max() == 9 && labels.tensor.min() == 0)
    let images = try IDX.read(fashionMNIST + "/t10k-images-idx3-ubyte.gz")
    #expect(images.tensor.shape == [10_000, 28, 28])
    #expect(images.bytes?.count == 7_840_000)
}

@Test func npyRoundTripAndHeader() throws {
    for shape in [[], [5], [2, 3], [2, 1, 3, 2]] as [[Int]] {
        let n = shape.reduce(1, *)
        let t = try Tensor(shape: shape, scalars: (0..<n).map { Float($0) * 0.5 - 1 })
        let bytes = NPY.encode(t)
        #expect((bytes.count - 4 * n) % 64 == 0, "data starts on a 64-byte boundary")
        #expect(try NPY.decode(bytes[...], path: "t.npy") == t)
    }
    let path = temporaryPath("t.npy")
    let t = try Tensor(shape: [2, 2], scalars: [1, 2, 3, 4])
    try NPY.write(t, to: path)
    #expect(try NPY.read(path) == t)
}

/// Hand-built headers for dtypes and orders our writer does not produce.
func npy(_ header: String, _ data: [UInt8]) -> [UInt8] {
    var h = Array(header.utf8) + [0x0A]
    while (10 + h.count) % 16 != 0 { h.insert(0x20, at: h.count - 1) }
    return [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(h.count & 255), UInt8(h.count >> 8)] + h + data
}

@Test func npyDtypesAndOrders() throws {
    let f8 = npy("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }",
                 [1.0, 4, 2, 5, 3, 6].flatMap { (d: Double) in withUnsafeBytes(of: d.bitPattern.littleEndian, Array.init) })
    let t = try NPY.decode(f8[...], path: "f8.npy")
    #expect(t.shape == [2, 3] && t.scalars == [1, 2, 3, 4, 5, 6])
    let i2 = try NPY.decode(npy("{'descr': '>i2', 'fortran_order': False, 'shape': (2,), }", [0xFF, 0xFE, 0x01, 0x00])[...], path: "i2")
    #expect(i2.scalars == [-2, 256])
    let b1 = try NPY.decode(npy("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", [1, 0, 1])[...], path: "b1")
    #expect(b1.scalars == [1, 0, 1])
    let i8 = try NPY.decode(npy("{'descr': '<i8', 'fortran_order': False, 'shape': (), }", [0xFB, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])[...], path: "i8")
    #expect(i8.shape == [] && i8.scalars == [-5])
    func rejects(_ bytes: [UInt8], _ fragment: String) {
        do { _ = try NPY.decode(bytes[...], path: "bad.npy"); Issue.record("accepted: \(fragment)") } catch {
            #expect("\(error)".contains(fragment), "\(error)")
        }
    }
    rejects(npy("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", [0, 0, 0, 0, 0, 0, 0, 0]), "unsupported dtype")
    rejects(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", [0, 0, 0, 0]), "needs 12 bytes")
    rejects(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }", []), "too large")
    rejects(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", []), "dimension")
    rejects(npy("{'descr': '<f4' 'shape'", []), "header")
    rejects([0x93, 0x4E, 0x55], "truncated")
    rejects(Array("PK\u{3}\u{4}hello".utf8), "magic")
}

@Test func npzRoundTrip() throws {
    let arrays: [(name: String, tensor: Tensor)] = [
        ("conv1.weight", try Tensor(shape: [2, 1, 3, 3], scalars: (0..<18).map(Float.init))),
        ("bn1.running_var", try Tensor(shape: [2], scalars: [0.5, 2])),
    ]
    let path = temporaryPath("s.npz")
    try NPZ.write(arrays, to: path)
    let back = try NPZ.read(path)
    #expect(back.map(\.name) == ["conv1.weight", "bn1.running_var"])
    #expect(back.map(\.tensor) == arrays.map(\.tensor))
    // Python's zipfile reads what we write.
    if let python = ["/usr/bin/python3", "/usr/local/bin/python3"].first(where: FileManager.default.fileExists) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-c", "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print(z.namelist())", path]
        try p.run(); p.waitUntilExit()
        #expect(p.terminationStatus == 0)
    }
}

@Test func npzReadsTheReferenceStateDict() throws {
    let arrays = try NPZ.read(referenceDirectory + "/fmnist_cnn.npz")
    #expect(arrays.count == 22)
    #expect(arrays.first?.name == "conv1.weight")
    #expect(arrays.first?.tensor.shape == [16, 1, 3, 3])
    let byName = Dictionary(uniqueKeysWithValues: arrays.map { ($0.name, $0.tensor) })
    #expect(byName["fc1.weight"]?.shape == [128, 576])
    #expect(byName["bn1.num_batches_tracked"]?.shape == [])
    #expect(byName["bn1.running_var"]?.scalars.allSatisfy { $0 > 0 } == true)
    #expect(arrays.allSatisfy { !$0.tensor.hasNonFinite })
}

@Test func npzMalformed() throws {
    let good = try NPZ.encode([("a", try Tensor(shape: [4], scalars: [1, 2, 3, 4]))])
    func rejects(_ bytes: [UInt8], _ fragment: String) {
        do { _ = try NPZ.decode(bytes, path: "bad.npz"); Issue.record("accepted: \(fragment)") } catch {
            #expect("\(error)".contains(fragment), "\(error)")
        }
    }
    rejects(Array(good.prefix(good.count - 5)), "end-of-central-directory")
    rejects(NPY.encode(try Tensor(shape: [1], scalars: [1])), "single .npy array")
    var corrupt = good
    corrupt[80] ^= 0xFF  // inside the stored .npy data
    rejects(corrupt, "CRC-32")
    var badOffset = good
    badOffset[good.count - 3] = 0x70  // central directory offset far past the end
    rejects(badOffset, "past the end")
    rejects([], "end-of-central-directory")
}

@Test func filesThatAreNotThere() {
    #expect(throws: TensorError.self) { try NPY.read("/nonexistent/x.npy") }
    do { _ = try IDX.read("/tmp") ; Issue.record("read a directory") } catch { #expect("\(error)".contains("directory")) }
}

/// Saves replace regular files atomically and nothing else: a symbolic link's target is
/// replaced (the link stays), directories, FIFOs and NUL-bearing paths are refused with the
/// file left as it was, and a dead writer's temporary is removed by the next save.
@Test func atomicWritesRespectWhatTheyReplace() throws {
    let path = temporaryPath("atomic.bin")
    try FileIO.writeAtomically([1, 2, 3], to: path)
    #expect(try FileIO.read(path) == [1, 2, 3])

    // A temporary left by a process that no longer runs (pids never reach 2^30).
    let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
    let stale = "\(dir)/.atomic.bin.1073741823.tmp"
    FileManager.default.createFile(atPath: stale, contents: Data([9]))
    try FileIO.writeAtomically([4, 5], to: path)
    #expect(!FileManager.default.fileExists(atPath: stale))
    #expect(try FileIO.read(path) == [4, 5])
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix(".atomic.bin.") }.isEmpty)

    let link = temporaryPath("atomic-link.bin")
    try? FileManager.default.removeItem(atPath: link)
    try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: path)
    try FileIO.writeAtomically([6], to: link)
    #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == path)
    #expect(try FileIO.read(path) == [6])

    let fifo = temporaryPath("atomic.fifo")
    try? FileManager.default.removeItem(atPath: fifo)
    #expect(mkfifo(fifo, 0o600) == 0)
    #expect(throws: TensorError.io(path: fifo, reason: "is a FIFO; mpq writes regular files (and character devices) only")) {
        try FileIO.writeAtomically([1], to: fifo)
    }
    var st = stat()
    #expect(lstat(fifo, &st) == 0 && (st.st_mode & S_IFMT) == S_IFIFO)
    #expect(throws: TensorError.self) { try FileIO.writeAtomically([1], to: dir) }
    #expect(throws: TensorError.self) { try FileIO.writeAtomically([1], to: path + "\u{0}x") }
    #expect(throws: TensorError.self) { try FileIO.read(path + "\u{0}x") }
    #expect(try FileIO.read(path) == [6])
}

/// The memory budget: sizes parse with K/M/G, and a request past the limit is an error that
/// names both, before anything is allocated.
@Test func memoryBudgetRefusesBeforeAllocating() throws {
    #expect(MemoryBudget.parse("2G") == 2 << 30 && MemoryBudget.parse("512m") == 512 << 20 && MemoryBudget.parse("4096") == 4096)
    #expect(MemoryBudget.parse("x") == nil && MemoryBudget.parse("-1") == nil && MemoryBudget.parse("99999999999G") == nil)
    #expect(throws: TensorError.overBudget(what: "a test", bytes: MemoryBudget.limit + 1, limit: MemoryBudget.limit)) {
        try MemoryBudget.check(bytes: MemoryBudget.limit + 1, for: "a test")
    }
    #expect(throws: TensorError.self) { try MemoryBudget.check(count: Int.max / 2, of: 4, for: "overflow") }
    #expect(throws: TensorError.self) { try Tensor.zeros([Tensor.maxElementCount + 1]) }
}
