import Crypto
import Foundation
import Runtime

/// Lower-case hex SHA-256, as recorded in provenance and the catalog.
public func sha256Hex(_ data: Data) -> String {
    SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
}

/// Lower-case hex SHA-256 of a file, read 1 MiB at a time: memory stays small whatever its
/// size (a mapping would keep every page of a 1.5 GB shard resident).
public func sha256Hex(path: String) throws -> String {
    guard let handle = FileHandle(forReadingAtPath: path) else { throw ClipSafetyError(.missingFile, "cannot open") }
    defer { try? handle.close() }
    var hasher = SHA256()
    while true {
        let chunk = try handle.read(upToCount: 1 << 20) ?? Data()
        if chunk.isEmpty { break }
        hasher.update(data: chunk)
    }
    return hasher.finalize().map { String(format: "%02x", $0) }.joined()
}
