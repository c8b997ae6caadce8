import Foundation

/// ONNX Runtime as an anchor that stays up for the whole run: one `scripts/ort-throughput.py
/// --serve` child, asked for one rate at a time (its sessions kept between requests), so a row
/// can time the anchor and our side in turns. When python3 or onnxruntime is missing, every
/// rate is nil and the rows report the anchor as 0.
final class ORTAnchor {
    private let process = Process()
    private let requests = Pipe(), answers = Pipe()
    private var pending = Data()
    private var alive = true

    /// The server for this run, started on first use (nil when it cannot be started).
    nonisolated(unsafe) static let shared: ORTAnchor? = ORTAnchor()

    private init?() {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "scripts/ort-throughput.py", "--serve"]
        process.standardInput = requests
        process.standardOutput = answers
        process.standardError = FileHandle.nullDevice
        // A server that died must end in a nil rate, not in SIGPIPE on our next request.
        signal(SIGPIPE, SIG_IGN)
        guard (try? process.run()) != nil else { return nil }
    }

    deinit {
        try? requests.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    /// ONNX Runtime's best images/s on `model` over about `budget` seconds of runs; nil when the
    /// server is gone or cannot run the model (its reason on stderr).
    func rate(_ model: String, threads: Int, batch: Int, budget: Double, exact: Bool = false) -> Double? {
        guard alive else { return nil }
        let request: [String: Any] = ["model": model, "threads": threads, "batch": batch, "budget": budget, "exact": exact]
        guard let body = try? JSONSerialization.data(withJSONObject: request),
              (try? requests.fileHandleForWriting.write(contentsOf: body + Data("\n".utf8))) != nil,
              let line = readLine(),
              let answer = try? JSONSerialization.jsonObject(with: line) as? [String: Any] else {
            alive = false
            FileHandle.standardError.write(Data("infer: onnxruntime anchor unavailable (pip install onnxruntime)\n".utf8))
            return nil
        }
        if let error = answer["error"] as? String {
            FileHandle.standardError.write(Data("infer: onnxruntime cannot run \(model): \(error)\n".utf8))
        }
        return answer["images_per_second"] as? Double
    }

    /// The server's next line (nil at its end).
    private func readLine() -> Data? {
        while true {
            if let i = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = pending[pending.startIndex..<i]
                pending = Data(pending[(i + 1)...])
                return Data(line)
            }
            let chunk = answers.fileHandleForReading.availableData
            if chunk.isEmpty { return nil }
            pending.append(chunk)
        }
    }
}
