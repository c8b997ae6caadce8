import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reading whole files and writing them atomically (a temporary file in the same folder,
/// then a rename), so an interrupted write never leaves a half-written file behind.
public enum FileIO {
    public static func read(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
                throw TensorError.io(path: path, reason: isDir.boolValue ? "is a directory, expected a file" : "cannot be read")
            }
            throw TensorError.io(path: path, reason: "no such file")
        }
        return [UInt8](data)
    }

    public static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent()
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).tmp")
        do {
            try Data(bytes).write(to: tmp)
        } catch {
            throw TensorError.io(path: path, reason: "cannot write: \(error.localizedDescription)")
        }
        // rename(2) replaces the target in one step.
        if rename(tmp.path, path) != 0 {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: tmp)
            throw TensorError.io(path: path, reason: "cannot write: \(reason)")
        }
    }
}
