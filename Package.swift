// swift-tools-version: 6.0
import PackageDescription

// The hot targets are compiled for the CPU this machine has (AVX-512 here). Set
// MPQ_PORTABLE=1 to build for the baseline x86-64/arm64 instead; scripts/build does
// that automatically when the compiler rejects `-target-cpu native`.
let portable = Context.environment["MPQ_PORTABLE"].map { !$0.isEmpty && $0 != "0" } ?? false
let hostCPU: [String] = portable ? [] : ["-Xfrontend", "-target-cpu", "-Xfrontend", "native"]
// Only the kernels' inner loops, over buffers their callers have already validated, are built
// without bounds and overflow checks. Every module that reads files or user values keeps them:
// a mistake there must be an error or a trap at a named line, never a silent out-of-bounds read.
let kernelSwift: [SwiftSetting] = [
    .unsafeFlags(hostCPU),
    .unsafeFlags(["-Ounchecked"], .when(configuration: .release)),
]
let hotSwift: [SwiftSetting] = [.unsafeFlags(hostCPU)]

let package = Package(
    name: "mpq",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "mpq", targets: ["mpq"]),
        .executable(name: "mpq-bench", targets: ["mpq-bench"]),
        .library(name: "Runtime", targets: ["Runtime"]),
        .library(name: "Kernels", targets: ["Kernels"]),
        .library(name: "Tensors", targets: ["Tensors"]),
        .library(name: "Network", targets: ["Network"]),
        .library(name: "Quantization", targets: ["Quantization"]),
        .library(name: "MixedPrecision", targets: ["MixedPrecision"]),
        .library(name: "Script", targets: ["Script"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
    ],
    targets: [
        // C libraries, wrapped once.
        .systemLibrary(name: "CEdit", pkgConfig: "libedit", providers: [.apt(["libedit-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CMalloc"),
        // x86's pause for the worker pool's spin-waits.
        .systemLibrary(name: "CThreads"),
        // CommonMark for the notebooks' Markdown cells in HTML.
        .systemLibrary(name: "CCmark", pkgConfig: "libcmark", providers: [.apt(["libcmark-dev"])]),
        // Linked only into the benchmark, as the anchor our GEMM is measured against.
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),

        // PNG and JPEG decoding for datasets, over Debian's libpng and libjpeg-turbo.
        .target(name: "CImage", cSettings: [.unsafeFlags(["-O2"])], linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("jpeg")]),
        // Instructions Swift cannot reach (AVX-512 VNNI), each beside a Swift version.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),
        // Worker threads, Ctrl-C and timing, shared by every layer above.
        .target(name: "Runtime", dependencies: ["CMalloc", "CThreads"], swiftSettings: hotSwift),
        .target(name: "Kernels", dependencies: ["CKernels", "Runtime"], swiftSettings: kernelSwift),
        .target(name: "Tensors", dependencies: ["Runtime", "Kernels", "CZlib"], swiftSettings: hotSwift),
        .target(name: "Network",
                dependencies: ["Runtime", "Kernels", "Tensors", "CImage", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
                exclude: ["ONNX/onnx.proto"], swiftSettings: hotSwift),

        .target(name: "Quantization", dependencies: ["Runtime", "Kernels", "Tensors", "Network"], swiftSettings: hotSwift),
        .target(name: "MixedPrecision", dependencies: ["Runtime", "Kernels", "Tensors", "Network", "Quantization",
                                                     .product(name: "HeapModule", package: "swift-collections")],
                swiftSettings: hotSwift),
        // The interpreter's environments are classes it alone mutates, one call at a time:
        // dynamic exclusivity checks on them cost more than the variable accesses themselves.
        .target(name: "Script", dependencies: ["Runtime", "Kernels", "Tensors", "Network", "Quantization", "MixedPrecision", "CCmark"],
                swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]),
        .executableTarget(
            name: "mpq",
            dependencies: ["Runtime", "Tensors", "Network", "Script", "CEdit", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "mpq-bench",
            dependencies: ["Runtime", "Kernels", "Tensors", "Network", "Quantization", "MixedPrecision", "COpenBLAS",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: hotSwift),

        // libFuzzer harness: built only by scripts/fuzz (-sanitize=fuzzer supplies main).
        .executableTarget(name: "mpq-fuzz", dependencies: ["Runtime", "Script", "Kernels", "Tensors", "Network"],
                          swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "Runtime"]),
        .testTarget(name: "TensorsTests", dependencies: ["TestSupport", "Tensors"]),
        .testTarget(name: "NetworkTests", dependencies: ["TestSupport", "Network", "Kernels"]),
        .testTarget(name: "MixedPrecisionTests", dependencies: ["TestSupport", "MixedPrecision", "Network", "Quantization", "Tensors"]),
        .testTarget(name: "QuantizationTests", dependencies: ["TestSupport", "Quantization", "Network", "Tensors"]),
        .testTarget(name: "ScriptTests", dependencies: ["Script", "Network", "Tensors"], exclude: ["cases"]),
    ],
    swiftLanguageModes: [.v5]
)
