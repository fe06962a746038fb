// swift-tools-version:6.0
// libFuzzer targets for clipsafety's parsers, one per format. Built only by Fuzz/run.sh with
// `-sanitize=fuzzer,address` (every module of the main package is instrumented), in its own
// scratch path; never part of the main build. See Fuzz/README.md.
import PackageDescription

let fuzzerFlags: [SwiftSetting] = [.unsafeFlags(["-sanitize=fuzzer,address"])]
let fuzzerLink: [LinkerSetting] = [.unsafeFlags(["-sanitize=fuzzer,address", "-use-ld=lld"])]

func fuzzTarget(_ name: String) -> Target {
    .executableTarget(
        name: name,
        dependencies: [
            "FuzzCommon",
            .product(name: "ClipSafetyRuntime", package: "clipsafety"),
            .product(name: "ClipSafetyConverters", package: "clipsafety"),
            .product(name: "ClipSafetyInspect", package: "clipsafety"),
        ],
        path: "Sources/\(name)",
        swiftSettings: fuzzerFlags,
        linkerSettings: fuzzerLink)
}

let package = Package(
    name: "clipsafety-fuzz",
    dependencies: [.package(name: "clipsafety", path: "..")],
    targets: [
        .target(
            name: "FuzzCommon",
            dependencies: [
                .product(name: "ClipSafetyRuntime", package: "clipsafety"),
                .product(name: "ClipSafetyConverters", package: "clipsafety"),
            ],
            swiftSettings: fuzzerFlags),
    ] + ["fuzz-safetensors", "fuzz-npy", "fuzz-zip", "fuzz-pickle", "fuzz-sstable", "fuzz-protobuf", "fuzz-hdf5", "fuzz-any"].map(fuzzTarget)
)
