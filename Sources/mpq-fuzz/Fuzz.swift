import Dispatch
import Foundation
import Kernels
import Network
import Script
import Tensors
import Runtime

/// libFuzzer entry point. `MPQ_FUZZ_TARGET` picks what each input is:
/// - `lang` (default): a script, run by a fresh interpreter with the stdlib loaded;
/// - `onnx`: the bytes of an ONNX file, imported and, when that succeeds, run on one zero input;
/// - `npz`: the bytes of an .npz archive (and, when it fails as one, of a single .npy array).
/// Errors are the expected outcome; a crash, a sanitizer report, a hang past the watchdog or
/// memory past libFuzzer's limit is a finding. Built by `scripts/fuzz` with
/// `-sanitize=fuzzer,address`; not part of the normal build's products.
nonisolated(unsafe) var generation = 0
nonisolated(unsafe) var configured = false
nonisolated(unsafe) var target = "lang"

@_cdecl("LLVMFuzzerTestOneInput")
public func mpqFuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    if !configured {
        // Inputs may ask for huge tensors; the limit turns those into errors, not OOM reports.
        Tensor.maxElementCount = 1 << 22
        target = ProcessInfo.processInfo.environment["MPQ_FUZZ_TARGET"] ?? "lang"
        configured = true
    }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    switch target {
    case "onnx":
        if let model = try? ONNXImporter.load(bytes: bytes, name: "fuzz", source: "fuzz.onnx"),
           let x = try? Tensor.zeros([1] + model.inputShape) {
            _ = try? model.run(x)
        }
        return 0
    case "npz":
        if (try? NPZ.decode(bytes, path: "fuzz.npz")) == nil { _ = try? NPY.decode(bytes[...], path: "fuzz.npy") }
        return 0
    default: break
    }
    let source = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    Interrupt.clear()
    generation += 1
    let mine = generation
    // Watchdog: long loops and training stop at the next Interrupt check.
    DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(300)) {
        if generation == mine { Interrupt.request() }
    }
    let interpreter = Interpreter(output: { _ in })
    if let dir = ProcessInfo.processInfo.environment["MPQ_STDLIB"] { try? interpreter.loadStdlib(directory: dir) }
    _ = try? interpreter.run(source)
    generation += 1
    Interrupt.clear()
    return 0
}

#if MPQ_LIBFUZZER
/// SwiftPM links an executable's entry point as `mpq_fuzz_main`; with libFuzzer that entry
/// hands control to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>,
                     _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("mpq_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { data, size in
        guard let data else { return 0 }
        return mpqFuzzOneInput(data, size)
    }
}
#else
/// Without libFuzzer (a normal build), the harness replays inputs: `mpq-fuzz FILE...` runs each
/// file as the fuzzer would, to reproduce a finding under a debugger.
@main
struct Replay {
    static func main() {
        for path in CommandLine.arguments.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else {
                FileHandle.standardError.write(Data("mpq-fuzz: cannot read \(path)\n".utf8)); continue
            }
            _ = data.withUnsafeBytes { raw in
                mpqFuzzOneInput(raw.bindMemory(to: UInt8.self).baseAddress ?? UnsafePointer(bitPattern: 1)!, data.count)
            }
            print("ran \(path)")
        }
    }
}
#endif
