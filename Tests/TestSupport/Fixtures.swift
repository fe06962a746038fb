import Foundation
import XCTest

/// Paths of the project's model files and references, and scratch folders, for tests.
public enum Fixtures {
    /// The repository root (found from this file's path at build time).
    public static let repoRoot: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }()

    /// A fetched catalog file in `models/files/`. Skips the test when it is missing: the fetch
    /// step (`python3 models/fetch.py`, run by the README's test command) fails loudly for the
    /// upstream files, and the mirror-only files (stand-ins, re-exports) are optional.
    public static func modelFile(_ name: String) throws -> String {
        let path = repoRoot + "/models/files/" + name
        guard FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("missing \(path): run `MODELS_MIRROR=../shared/models python3 models/fetch.py`")
        }
        return path
    }

    /// A reference `.npz` in `models/reference/`.
    public static func reference(_ name: String) -> String {
        repoRoot + "/models/reference/" + name
    }
}

/// A fresh folder under the system's temporary directory, removed by `remove()`.
public struct TemporaryDirectory {
    public let path: String

    public init() throws {
        let base = NSTemporaryDirectory() + "clipsafety-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        path = base
    }

    public func file(_ name: String) -> String { path + "/" + name }

    public func write(_ data: Data, to name: String) throws -> String {
        let p = file(name)
        try data.write(to: URL(fileURLWithPath: p))
        return p
    }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}
