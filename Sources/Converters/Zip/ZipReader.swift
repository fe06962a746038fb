import Foundation
import Runtime

/// A zip archive no other reader claims: described by its member names and sizes.
enum ZipReader {
    static let unknown = FormatReader(kind: .zip, matches: { $0.zipMembers != nil }, describe: { bytes, limits in
        let zip = try ZipArchive(bytes: bytes, limits: limits)
        return FileDescription(format: .zip, notes: zip.entries.prefix(100).map { "member \($0.name): \($0.uncompressedSize) bytes" })
    })
}
