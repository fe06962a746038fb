// swift-tools-version:6.0
// clipsafety: CLIP safety heads (NSFW detectors, violence prompts) converted to one
// documented native format and run natively. See README.md and docs/FORMAT.md.
import PackageDescription

let package = Package(
    name: "clipsafety",
    products: [
        // An app that only runs converted models depends on Runtime alone (its own C kernels, no other library).
        .library(name: "ClipSafetyRuntime", targets: ["Runtime"]),
        .library(name: "ClipSafetyConverters", targets: ["Converters"]),
        // Reports and diffs over any model file; used by the fuzz harness too.
        .library(name: "ClipSafetyInspect", targets: ["Inspect"]),
        // What the commands do, as library calls: verify, compare, file and folder scoring.
        .library(name: "ClipSafetyJobs", targets: ["Jobs"]),
        // Flat Parquet files (scores, selections, clip-retrieval metadata).
        .library(name: "ClipSafetyParquet", targets: ["Parquet"]),
        // The command-line tool as a library; the executable only calls its main().
        .library(name: "ClipSafetyCLI", targets: ["CLI"]),
        .executable(name: "clipsafety", targets: ["clipsafety"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // System libraries, found through pkg-config.
        .systemLibrary(
            name: "CZip", pkgConfig: "libzip",
            providers: [.apt(["libzip-dev"])]),
        .systemLibrary(
            name: "CHDF5", pkgConfig: "hdf5",
            providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(
            name: "CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(
            name: "CZstd", pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(
            name: "CSnappy", pkgConfig: "snappy",
            providers: [.apt(["libsnappy-dev"])]),
        .systemLibrary(
            name: "CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]),

        // CPU-specific kernels chosen at run time (F16C widening); plain C, no flags.
        .target(name: "CKernels"),
        // Bytes, errors and exit codes, reader limits, atomic files: below every other module.
        .target(name: "Core"),
        .target(name: "Runtime", dependencies: ["Core", "CKernels"]),
        .target(
            name: "Converters",
            dependencies: [
                "Core", "Runtime", "CZip", "CHDF5", "CZlib",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            exclude: ["SavedModel/Proto/tensorflow_savedmodel.proto", "SavedModel/Proto/keras_saved_metadata.proto",
                      "ONNX/Proto/onnx.proto"]),
        .target(name: "Inspect", dependencies: ["Core", "Runtime", "Converters"]),
        // Flat Parquet files: a writer (PLAIN, ZSTD) and a bounded reader for what pyarrow writes.
        .target(name: "Parquet", dependencies: ["Core", "CZstd", "CSnappy"]),
        // Long-running work the commands start: verification, comparison, folder scoring.
        .target(
            name: "Jobs",
            dependencies: ["Core", "Runtime", "Converters", "Inspect", "Parquet", .product(name: "Crypto", package: "swift-crypto")]),
        .target(
            name: "CLI",
            dependencies: [
                "Core", "Runtime", "Converters", "Inspect", "Jobs", "Parquet", "CBLAS",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(name: "clipsafety", dependencies: ["CLI"]),

        // Shared test helpers (fixture paths, scratch folders); used by tests only.
        .target(name: "TestSupport", dependencies: ["Core", "Runtime"], path: "Tests/TestSupport"),
        .testTarget(name: "CoreTests", dependencies: ["Core"]),
        // Converters only to read the catalog's heads for kernel and lookup tests.
        .testTarget(name: "RuntimeTests", dependencies: ["Runtime", "Converters", "TestSupport"]),
        .testTarget(name: "ConvertersTests", dependencies: ["Converters", "Runtime", "TestSupport"]),
        .testTarget(name: "InspectTests", dependencies: ["Inspect", "Converters", "Runtime", "TestSupport"]),
        .testTarget(name: "JobsTests", dependencies: ["Jobs", "Converters", "Runtime", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["CLI", "Jobs", "Runtime", "Converters", "Inspect", "Parquet", "TestSupport"]),
        .testTarget(name: "ParquetTests", dependencies: ["Parquet", "Core", "TestSupport"]),
    ]
)
