// swift-tools-version:6.0
// clipsafety: CLIP safety heads (NSFW detectors, violence prompts) converted to one
// documented native format and run natively. See README.md and docs/FORMAT.md.
import PackageDescription

let package = Package(
    name: "clipsafety",
    products: [
        // An app that only runs converted models depends on Runtime alone (BLAS, nothing else).
        .library(name: "ClipSafetyRuntime", targets: ["Runtime"]),
        .library(name: "ClipSafetyConverters", targets: ["Converters"]),
        // Opens any model file (identification + conversion); used by the fuzz harness too.
        .library(name: "ClipSafetyInspect", targets: ["Inspect"]),
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

        // CPU-specific kernels chosen at run time (F16C widening); plain C, no flags.
        .target(name: "CKernels"),
        .target(name: "Runtime", dependencies: ["CBLAS", "CKernels"]),
        .target(
            name: "Converters",
            dependencies: [
                "Runtime", "CZip", "CHDF5",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            exclude: ["Proto/tensorflow_savedmodel.proto", "Proto/keras_saved_metadata.proto"]),
        .target(name: "Inspect", dependencies: ["Runtime", "Converters"]),
        .executableTarget(
            name: "clipsafety",
            dependencies: [
                "Runtime", "Converters", "Inspect",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // Shared test helpers (fixture paths, scratch folders); used by tests only.
        .target(name: "TestSupport", dependencies: ["Runtime"], path: "Tests/TestSupport"),
        .testTarget(name: "RuntimeTests", dependencies: ["Runtime", "TestSupport"]),
        .testTarget(name: "ConvertersTests", dependencies: ["Converters", "Runtime", "TestSupport"]),
        .testTarget(name: "InspectTests", dependencies: ["Inspect", "Converters", "Runtime", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["Runtime", "Converters", "TestSupport"]),
    ]
)
