import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The most memory one allocation sized by input may take: a tensor, a file's declared data, a
/// decompressed stream, a string or list built by a script. Asking for more is an error naming the
/// size and this limit, raised before the allocation, instead of the runtime's "failed to
/// allocate" trap.
///
/// Default: a quarter of the smaller of physical memory and the process's address-space limit
/// (`ulimit -v`), so a few such values fit side by side. `MPQ_MEMORY_LIMIT` sets it in bytes, or
/// with a suffix K, M, G (powers of 1024), e.g. `MPQ_MEMORY_LIMIT=2G`.
public enum MemoryBudget {
    nonisolated(unsafe) public static var limit: Int = defaultLimit()

    public static func defaultLimit() -> Int {
        if let text = ProcessInfo.processInfo.environment["MPQ_MEMORY_LIMIT"], let bytes = parse(text) { return bytes }
        var available = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        var rl = rlimit()
        if getrlimit(Int32(RLIMIT_AS.rawValue), &rl) == 0, rl.rlim_cur != rlim_t.max {
            available = min(available, Int(clamping: rl.rlim_cur))
        }
        return max(available / 4, 1 << 20)
    }

    /// "1048576", "512M", "2G" → bytes; nil for anything else.
    public static func parse(_ text: String) -> Int? {
        let t = text.trimmingCharacters(in: .whitespaces).uppercased()
        let scale: Int
        switch t.last {
        case "K": scale = 1 << 10
        case "M": scale = 1 << 20
        case "G": scale = 1 << 30
        default: scale = 1
        }
        guard let n = Int(scale == 1 ? t : String(t.dropLast())), n > 0 else { return nil }
        let (bytes, overflow) = n.multipliedReportingOverflow(by: scale)
        return overflow ? nil : bytes
    }

    /// Throws when `bytes` is over the limit (or negative: an overflowed size).
    public static func check(bytes: Int, for what: @autoclosure () -> String) throws {
        guard bytes >= 0, bytes <= limit else { throw TensorError.overBudget(what: what(), bytes: bytes, limit: limit) }
    }

    /// `count` elements of `size` bytes each, checked for overflow and against the limit.
    public static func check(count: Int, of size: Int, for what: @autoclosure () -> String) throws {
        let (bytes, overflow) = count.multipliedReportingOverflow(by: size)
        try check(bytes: overflow || count < 0 ? -1 : bytes, for: what())
    }

    /// "3.0 GiB", "512 MiB", "12 KiB", "100 bytes".
    public static func format(_ bytes: Int) -> String {
        let units = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        for (size, name) in units where bytes >= size { return String(format: "%.1f %@", Double(bytes) / Double(size), name) }
        return "\(bytes) bytes"
    }
}
