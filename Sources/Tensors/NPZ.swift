/// NumPy's `.npz`: a zip archive of `.npy` files (`np.savez` stores them, `np.savez_compressed`
/// deflates them). Reading goes through the central directory (with zip64 sizes and offsets,
/// which NumPy writes), checks each entry's CRC-32, and keeps the archive's order. Writing
/// stores entries uncompressed, atomically.
public enum NPZ {
    /// Entries larger than this (decompressed) are refused.
    nonisolated(unsafe) public static var entryLimit = 1 << 32

    /// The arrays of an archive, by name without the `.npy` suffix, in archive order.
    public static func read(_ path: String) throws -> [(name: String, tensor: Tensor)] {
        try decode(try FileIO.read(path), path: path)
    }

    public static func decode(_ bytes: [UInt8], path: String) throws -> [(name: String, tensor: Tensor)] {
        var r = ByteReader(bytes, path: path)
        // The end-of-central-directory record sits in the last 22 + 65,535 bytes.
        let eocdSignature: [UInt8] = [0x50, 0x4B, 0x05, 0x06]
        var eocd = -1
        var p = bytes.count - 22
        while p >= Swift.max(0, bytes.count - 22 - 65_535) {
            if bytes[p] == 0x50 && Array(bytes[p..<(p + 4)]) == eocdSignature { eocd = p; break }
            p -= 1
        }
        guard eocd >= 0 else {
            if bytes.count >= 4 && Array(bytes[0..<4]) == [0x93, 0x4E, 0x55, 0x4D] {
                throw r.fail("this is a single .npy array, not an .npz archive; read it with load_npy", at: 0)
            }
            throw r.fail("no zip end-of-central-directory record (not an .npz archive, or truncated)", at: Swift.max(0, bytes.count - 22))
        }
        try r.seek(eocd + 10)
        var entries = try r.uint16LE("entry count")
        _ = try r.uint32LE("central directory size")
        var cdOffset = try r.uint32LE("central directory offset")
        if entries == 0xFFFF || cdOffset == 0xFFFF_FFFF {
            // zip64: a locator just before the EOCD points at the zip64 EOCD record.
            guard eocd >= 20 else { throw r.fail("zip64 archive without its locator", at: eocd) }
            try r.seek(eocd - 20)
            guard try r.uint32LE("zip64 locator signature") == 0x0706_4B50 else {
                throw r.fail("expected the zip64 end-of-central-directory locator", at: eocd - 20)
            }
            _ = try r.uint32LE("disk")
            let z64 = try r.uint64LE("zip64 EOCD offset")
            guard z64 < UInt64(bytes.count) else { throw r.fail("zip64 EOCD offset \(z64) is past the end", at: eocd - 12) }
            try r.seek(Int(z64))
            guard try r.uint32LE("zip64 EOCD signature") == 0x0606_4B50 else { throw r.fail("expected the zip64 EOCD record") }
            try r.seek(Int(z64) + 32)
            let n64 = try r.uint64LE("entry count")
            _ = try r.uint64LE("central directory size")
            let off64 = try r.uint64LE("central directory offset")
            guard n64 < 1 << 20, off64 < UInt64(bytes.count) else { throw r.fail("implausible zip64 directory (\(n64) entries at \(off64))") }
            entries = Int(n64); cdOffset = Int(off64)
        }
        try r.seek(cdOffset)
        var out: [(String, Tensor)] = []
        for _ in 0..<entries {
            let at = r.offset
            guard try r.uint32LE("central header signature") == 0x0201_4B50 else {
                throw r.fail("expected a zip central directory header", at: at)
            }
            try r.seek(at + 10)
            let method = try r.uint16LE("compression method")
            try r.seek(at + 16)
            let crc = try r.uint32LE("crc-32")
            var compressed = try r.uint32LE("compressed size")
            var size = try r.uint32LE("size")
            let nameLength = try r.uint16LE("name length"), extraLength = try r.uint16LE("extra length")
            let commentLength = try r.uint16LE("comment length")
            try r.seek(at + 42)
            var local = try r.uint32LE("local header offset")
            let name = String(decoding: try r.take(nameLength, "file name"), as: UTF8.self)
            // zip64 extra field (id 1): the 64-bit values for each field that was 0xFFFFFFFF.
            var extra = ByteReader(Array(try r.take(extraLength, "extra field")), path: path)
            while extra.remaining >= 4 {
                let id = try extra.uint16LE("extra id"), length = try extra.uint16LE("extra length")
                let fieldEnd = extra.offset + length
                if id == 1 {
                    if size == 0xFFFF_FFFF { size = Int(clamping: try extra.uint64LE("zip64 size")) }
                    if compressed == 0xFFFF_FFFF { compressed = Int(clamping: try extra.uint64LE("zip64 compressed size")) }
                    if local == 0xFFFF_FFFF { local = Int(clamping: try extra.uint64LE("zip64 offset")) }
                }
                try extra.seek(Swift.min(fieldEnd, extra.bytes.count))
            }
            _ = try r.take(commentLength, "comment")
            let resume = r.offset

            try r.seek(local)
            guard try r.uint32LE("local header signature") == 0x0403_4B50 else {
                throw r.fail("expected the local header of '\(name)'", at: local)
            }
            try r.seek(local + 26)
            let localName = try r.uint16LE("name length"), localExtra = try r.uint16LE("extra length")
            try r.seek(local + 30 + localName + localExtra)
            let dataStart = r.offset
            let stored = try r.take(compressed, "data of '\(name)'")
            guard size <= entryLimit else { throw r.fail("'\(name)' is \(size) bytes, over the limit of \(entryLimit)", at: dataStart) }
            do { try MemoryBudget.check(bytes: size, for: "'\(name)'") } catch { throw r.fail("\(error)", at: dataStart) }
            let data: ArraySlice<UInt8>
            switch method {
            case 0:
                guard compressed == size else { throw r.fail("stored entry '\(name)' has sizes \(compressed) and \(size)", at: at) }
                data = stored
            case 8: data = try Zlib.inflate(stored, gzip: false, expectedSize: size, limit: Swift.max(size, 1), path: path)[...]
            default: throw r.fail("'\(name)' uses compression method \(method); expected 0 (stored) or 8 (deflate)", at: at)
            }
            guard data.count == size else { throw r.fail("'\(name)' decompressed to \(data.count) bytes, expected \(size)", at: dataStart) }
            guard Zlib.crc32(data) == UInt32(truncatingIfNeeded: crc) else {
                throw r.fail("CRC-32 mismatch in '\(name)' (corrupt archive)", at: dataStart)
            }
            let key = name.hasSuffix(".npy") ? String(name.dropLast(4)) : name
            out.append((key, try NPY.decode(data, path: "\(path):\(name)")))
            try r.seek(resume)
        }
        return out
    }

    /// Encodes arrays as a stored (uncompressed) zip of `.npy` files.
    public static func encode(_ arrays: [(name: String, tensor: Tensor)]) throws -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        for (name, tensor) in arrays {
            let data = NPY.encode(tensor)
            let file = Array((name + ".npy").utf8)
            guard out.count < 0xFFFF_FFFF - data.count - 100, file.count < 0xFFFF else {
                throw TensorError.invalidArgument("npz: archive over 4 GiB or name too long; not supported when writing")
            }
            let crc = Int(Zlib.crc32(data[...]))
            let offset = out.count
            func common(_ b: inout [UInt8]) {
                b.appendLE(20, bytes: 2)          // version needed
                b.appendLE(0, bytes: 2)           // flags
                b.appendLE(0, bytes: 2)           // method: stored
                b.appendLE(0, bytes: 2)           // time
                b.appendLE(0x21, bytes: 2)        // date: 1980-01-01
                b.appendLE(crc, bytes: 4)
                b.appendLE(data.count, bytes: 4)
                b.appendLE(data.count, bytes: 4)
                b.appendLE(file.count, bytes: 2)
                b.appendLE(0, bytes: 2)           // extra length
            }
            out.appendLE(0x0403_4B50, bytes: 4)
            common(&out)
            out += file
            out += data
            central.appendLE(0x0201_4B50, bytes: 4)
            central.appendLE(20, bytes: 2)        // version made by
            common(&central)
            central.appendLE(0, bytes: 2)         // comment length
            central.appendLE(0, bytes: 2)         // disk
            central.appendLE(0, bytes: 2)         // internal attributes
            central.appendLE(0, bytes: 4)         // external attributes
            central.appendLE(offset, bytes: 4)
            central += file
        }
        let cdOffset = out.count
        out += central
        out.appendLE(0x0605_4B50, bytes: 4)
        out.appendLE(0, bytes: 4)                 // disks
        out.appendLE(arrays.count, bytes: 2)
        out.appendLE(arrays.count, bytes: 2)
        out.appendLE(central.count, bytes: 4)
        out.appendLE(cdOffset, bytes: 4)
        out.appendLE(0, bytes: 2)                 // comment
        return out
    }

    public static func write(_ arrays: [(name: String, tensor: Tensor)], to path: String) throws {
        try FileIO.writeAtomically(try encode(arrays), to: path)
    }
}
