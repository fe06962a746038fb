import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Runtime

/// A TensorFlow SavedModel stored as a folder (`saved_model.pb`, `keras_metadata.pb`,
/// `variables/`), read as the same members as from a zip and within the same limits: each
/// member at most `maxFileBytes` (memory-mapped), all of them at most `maxUncompressedBytes`.
///
/// Only fixed member paths are opened (`saved_model.pb`, `keras_metadata.pb`,
/// `variables/variables.index`, `variables/variables.data-K-of-N` as listed in `variables/`),
/// so no name from the folder can reach outside it. A member or the `variables` folder that
/// is a symbolic link is refused, wherever it points: links are never followed. The folder
/// given itself may be a link. Assets and other files are not read.
public struct SavedModelFolder: Sendable {
    public let path: String
    let files: SavedModelReader.Files
    /// Bytes of the members read.
    public let byteCount: Int
    /// SHA-256 of the lines `<sha256 of member>  <member path>\n` of the members read, sorted
    /// by path (what `sha256sum` prints for them): the folder's identity in reports and
    /// provenance.
    public let sha256: String

    /// Entries of `variables/` looked at, at most.
    static let maxVariablesEntries = 100_000

    /// True when `path` is a folder (following `path` itself if it is a link).
    public static func isFolder(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Reads the members of the SavedModel folder at `path`.
    public init(path: String, limits: ReaderLimits) throws {
        self.path = path
        guard try Self.kind(path, "saved_model.pb") != nil else {
            throw ClipSafetyError.unsupported("a folder that is not a SavedModel (no saved_model.pb in it)")
        }
        var members = ["saved_model.pb"]
        if try Self.kind(path, "keras_metadata.pb") != nil { members.append("keras_metadata.pb") }
        if try Self.kind(path, "variables") == S_IFDIR {
            members += try Self.variablesMembers(path)
        }
        var read: [String: Data] = [:]
        var total = 0
        for member in members {
            let data = try Self.map(path, member, limits: limits)
            total += data.count
            guard total <= limits.maxUncompressedBytes else {
                throw ClipSafetyError.limitExceeded("SavedModel folder: members up to '\(member)' hold more than \(limits.maxUncompressedBytes) bytes (raise with --max-uncompressed-bytes)")
            }
            read[member] = data
        }
        files = try SavedModelReader.Files(members: members, container: "SavedModel folder") { read[$0] }
        byteCount = total
        sha256 = Self.digest(read)
    }

    /// Describes the SavedModel as `SavedModelReader` describes a zip.
    public func describe(limits: ReaderLimits) throws -> FileDescription {
        try SavedModelReader.describe(files, format: .savedModelFolder, limits: limits)
    }

    /// `variables/variables.index` and the data shards `variables/` lists.
    static func variablesMembers(_ root: String) throws -> [String] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: root + "/variables")
        } catch {
            throw ClipSafetyError.io("SavedModel folder: cannot list variables/: \(error.localizedDescription)")
        }
        guard names.count <= maxVariablesEntries else {
            throw ClipSafetyError.limitExceeded("SavedModel folder: variables/ holds more than \(maxVariablesEntries) entries")
        }
        let wanted = names.filter { $0 == "variables.index" || $0.hasPrefix("variables.data-") }.sorted()
        return wanted.map { "variables/" + $0 }
    }

    /// The file type (`S_IFREG`, `S_IFDIR`, …) of `root/relative` without following a link in
    /// it (every component below `root` is checked); nil when it does not exist. Throws for
    /// a symbolic link.
    static func kind(_ root: String, _ relative: String) throws -> mode_t? {
        var prefix = root
        var type: mode_t?
        for component in relative.split(separator: "/") {
            prefix += "/" + component
            var st = stat()
            guard lstat(prefix, &st) == 0 else { return nil }
            type = st.st_mode & S_IFMT
            if type == S_IFLNK {
                let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: prefix)) ?? "?"
                throw ClipSafetyError.unsafe("SavedModel folder: '\(relative)' is a symbolic link (to '\(target)'); links in a SavedModel folder are not followed")
            }
        }
        return type
    }

    /// A member's bytes, memory-mapped; it must be a regular file, not a link.
    static func map(_ root: String, _ relative: String, limits: ReaderLimits) throws -> Data {
        guard let type = try kind(root, relative) else {
            throw ClipSafetyError.malformed("SavedModel folder: missing \(relative)")
        }
        guard type == S_IFREG else {
            throw ClipSafetyError.unsupported("SavedModel folder: '\(relative)' is not a regular file")
        }
        do {
            return try MappedFile.map(root + "/" + relative, limits: limits)
        } catch let e as ClipSafetyError {
            throw ClipSafetyError(e.kind, "SavedModel folder: \(relative): \(e.message)")
        }
    }

    static func digest(_ members: [String: Data]) -> String {
        var lines = ""
        for (name, data) in members.sorted(by: { $0.key < $1.key }) {
            lines += "\(sha256Hex(data))  \(name)\n"
        }
        return sha256Hex(Data(lines.utf8))
    }
}
