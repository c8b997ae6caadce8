import CZlib

/// zlib, wrapped once: gzip and raw-deflate streams in memory, and CRC-32.
enum Zlib {
    /// The most deflate can expand: 258 bytes from 2 bits, about 1032:1.
    static let maxRatio = 1032

    /// Inflates a gzip stream (`gzip: true`) or a raw deflate stream. `expectedSize` (when
    /// known) sizes the output; `limit` bounds it so a malicious stream cannot exhaust memory.
    static func inflate(_ input: ArraySlice<UInt8>, gzip: Bool, expectedSize: Int? = nil, limit: Int,
                        path: String) throws -> [UInt8] {
        var stream = z_stream()
        let windowBits: Int32 = gzip ? 15 + 32 : -15  // +32: accept gzip or zlib headers
        guard inflateInit2_(&stream, windowBits, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw TensorError.io(path: path, reason: "zlib could not start")
        }
        defer { inflateEnd(&stream) }
        // Deflate cannot expand past 1032:1, so a longer output means a corrupt stream; and no
        // output may pass the memory budget. Past either bound the stream stops with an error.
        let (ratioBound, overflow) = input.count.multipliedReportingOverflow(by: maxRatio)
        let limit = Swift.min(limit, MemoryBudget.limit, overflow ? Int.max : ratioBound + 1024)
        if let expectedSize, expectedSize > limit {
            throw TensorError.malformedFile(path: path, offset: 0, reason: expectedSize > MemoryBudget.limit
                ? TensorError.overBudget(what: "decompressing", bytes: expectedSize, limit: MemoryBudget.limit).description
                : "declares \(expectedSize) bytes from \(input.count) compressed ones, more than deflate's \(maxRatio):1 allows")
        }
        var out = [UInt8](repeating: 0, count: Swift.min(limit, Swift.max(expectedSize ?? input.count * 4, 1024)))
        var produced = 0
        let status: Int32 = input.withUnsafeBufferPointer { inp in
            stream.next_in = UnsafeMutablePointer(mutating: inp.baseAddress)
            stream.avail_in = UInt32(inp.count)
            while true {
                if produced == out.count {
                    if out.count >= limit { return Z_BUF_ERROR }
                    out += [UInt8](repeating: 0, count: Swift.min(out.count, limit - out.count))
                }
                let r: Int32 = out.withUnsafeMutableBufferPointer { o in
                    stream.next_out = o.baseAddress! + produced
                    stream.avail_out = UInt32(Swift.min(o.count - produced, Int(UInt32.max)))
                    let before = stream.avail_out
                    let r = CZlib.inflate(&stream, Z_NO_FLUSH)
                    produced += Int(before - stream.avail_out)
                    return r
                }
                if r == Z_STREAM_END { return r }
                if r == Z_BUF_ERROR && stream.avail_in == 0 { return Z_DATA_ERROR }  // truncated
                if r != Z_OK && r != Z_BUF_ERROR { return r }
            }
        }
        guard status == Z_STREAM_END else {
            let consumed = input.count - Int(stream.avail_in)
            let reason = status == Z_BUF_ERROR
                ? "decompressed data exceeds \(limit) bytes" + (limit == MemoryBudget.limit ? " (the memory limit; set MPQ_MEMORY_LIMIT to change it)" : "")
                : status == Z_DATA_ERROR && stream.avail_in == 0 ? "compressed stream is truncated"
                : "corrupt compressed data"
            throw TensorError.malformedFile(path: path, offset: consumed, reason: reason)
        }
        out.removeSubrange(produced...)
        return out
    }

    /// Deflates into a gzip stream.
    static func gzip(_ input: [UInt8]) -> [UInt8] {
        var stream = z_stream()
        deflateInit2_(&stream, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, UInt(input.count))) + 32
        var out = [UInt8](repeating: 0, count: bound)
        var produced = 0
        input.withUnsafeBufferPointer { inp in
            out.withUnsafeMutableBufferPointer { o in
                stream.next_in = UnsafeMutablePointer(mutating: inp.baseAddress)
                stream.avail_in = UInt32(inp.count)
                stream.next_out = o.baseAddress
                stream.avail_out = UInt32(o.count)
                _ = deflate(&stream, Z_FINISH)
                produced = o.count - Int(stream.avail_out)
            }
        }
        return Array(out[..<produced])
    }

    static func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        bytes.withUnsafeBufferPointer { p in UInt32(CZlib.crc32(0, p.baseAddress, UInt32(p.count))) }
    }
}
