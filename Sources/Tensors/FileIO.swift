import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reading whole files and writing them atomically (a temporary file in the same folder,
/// then a rename), so an interrupted write never leaves a half-written file behind.
public enum FileIO {
    /// Where `../shared/…` (the reference models and figures) is when the working directory is
    /// not the project's: `MPQ_SHARED`, else the `shared` folder beside an ancestor of the mpq
    /// executable (the project root's sibling, as in a checkout). Other paths, and paths that
    /// exist as given, are returned unchanged.
    public static func resolve(_ path: String) -> String {
        let prefix = "../shared/"
        guard path.hasPrefix(prefix), !FileManager.default.fileExists(atPath: path) else { return path }
        let rest = String(path.dropFirst(prefix.count))
        if let root = ProcessInfo.processInfo.environment["MPQ_SHARED"], !root.isEmpty { return root + "/" + rest }
        var dir = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<8 {
            let candidate = dir.deletingLastPathComponent().appendingPathComponent("shared")
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent(rest).path) { return candidate.appendingPathComponent(rest).path }
            dir = dir.deletingLastPathComponent()
        }
        return path
    }

    public static func read(_ path: String) throws -> [UInt8] {
        let path = resolve(path)
        try checkPath(path)
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int {
            try MemoryBudget.check(bytes: size, for: "reading \(path)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
                throw TensorError.io(path: path, reason: isDir.boolValue ? "is a directory, expected a file" : "cannot be read")
            }
            throw TensorError.io(path: path, reason: "no such file")
        }
        return [UInt8](data)
    }

    /// A path the file system would silently cut short is refused.
    public static func checkPath(_ path: String) throws {
        if path.isEmpty { throw TensorError.io(path: path, reason: "empty path") }
        if path.utf8.contains(0) {
            throw TensorError.io(path: path.replacingOccurrences(of: "\u{0}", with: "\\0"), reason: "the path contains a NUL byte")
        }
    }

    /// Writes `bytes` so that readers see the old file or the new one, never a mix: into a
    /// temporary file beside the target, then renamed over it. Only a regular file (or a missing
    /// one) is replaced that way: a symbolic link is followed and its target replaced; a character
    /// device (/dev/null, a terminal) is written directly; a directory, FIFO, socket or block
    /// device is refused. On any failure (disk full, permissions) the old file is left as it was
    /// and the temporary removed. Temporaries left by a writer that died (`.NAME.PID.tmp` whose
    /// process is gone) are removed first.
    public static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        try checkPath(path)
        var target = path
        var st = stat()
        if lstat(target, &st) == 0, (st.st_mode & S_IFMT) == S_IFLNK {
            target = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
            if lstat(target, &st) != 0 { st = stat() }
        }
        var existingMode: mode_t? = nil
        if stat(target, &st) == 0 {
            switch st.st_mode & S_IFMT {
            case S_IFREG: existingMode = st.st_mode & 0o7777
            case S_IFCHR: return try writeDirectly(bytes, to: target, shown: path)
            case S_IFDIR: throw TensorError.io(path: path, reason: "is a directory; expected a file name")
            case S_IFIFO: throw TensorError.io(path: path, reason: "is a FIFO; mpq writes regular files (and character devices) only")
            case S_IFSOCK: throw TensorError.io(path: path, reason: "is a socket; mpq writes regular files (and character devices) only")
            default: throw TensorError.io(path: path, reason: "is a device; mpq writes regular files (and character devices) only")
            }
        }
        let url = URL(fileURLWithPath: target)
        let dir = url.deletingLastPathComponent().path
        removeStaleTemporaries(of: url.lastPathComponent, in: dir)
        let tmp = dir + "/.\(url.lastPathComponent).\(getpid()).tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, existingMode ?? 0o644)
        guard fd >= 0 else { throw TensorError.io(path: path, reason: "cannot write: \(String(cString: strerror(errno)))") }
        do {
            defer { close(fd) }
            if let existingMode { fchmod(fd, existingMode) }
            try writeAll(bytes, to: fd, shown: path)
            guard fsync(fd) == 0 else { throw TensorError.io(path: path, reason: "cannot write: \(String(cString: strerror(errno)))") }
        } catch {
            unlink(tmp)
            throw error
        }
        // rename(2) replaces the target in one step.
        if rename(tmp, target) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw TensorError.io(path: path, reason: "cannot write: \(reason)")
        }
    }

    static func writeDirectly(_ bytes: [UInt8], to target: String, shown: String) throws {
        let fd = open(target, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TensorError.io(path: shown, reason: "cannot write: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try writeAll(bytes, to: fd, shown: shown)
    }

    static func writeAll(_ bytes: [UInt8], to fd: Int32, shown: String) throws {
        try bytes.withUnsafeBytes { buffer in
            var done = 0
            while done < buffer.count {
                let n = write(fd, buffer.baseAddress! + done, buffer.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    throw TensorError.io(path: shown, reason: "cannot write after \(done) of \(buffer.count) bytes: \(String(cString: strerror(errno)))")
                }
                done += n
            }
        }
    }

    /// `.NAME.PID.tmp` files of processes that no longer run.
    static func removeStaleTemporaries(of name: String, in dir: String) {
        let prefix = ".\(name).", suffix = ".tmp"
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
        for entry in entries where entry.hasPrefix(prefix) && entry.hasSuffix(suffix) {
            let middle = entry.dropFirst(prefix.count).dropLast(suffix.count)
            guard let pid = Int32(middle), pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { unlink(dir + "/" + entry) }
        }
    }
}
