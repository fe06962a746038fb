import Core
import Foundation
import Parquet

/// `--metadata-dir DIR [--keep a,b]`: the Parquet file holding a shard's metadata, row for
/// row (clip-retrieval writes `img_emb/img_emb_{N}.npy` beside `metadata/metadata_{N}.parquet`),
/// and the columns of it copied into the shard's score file.
public struct MetadataJoin: Sendable {
    public var directory: String
    /// Columns to copy; nil copies whichever of `defaultColumns` the file has.
    public var keep: [String]?
    public var limits: ReaderLimits

    public static let defaultColumns = ["key", "uid", "url", "caption"]

    public init(directory: String, keep: [String]?, limits: ReaderLimits = .init()) {
        self.directory = directory
        self.keep = keep
        self.limits = limits
    }

    /// The metadata file of shard `name`: `<stem>.parquet`, else `metadata_<N>.parquet` where N
    /// is the number the shard's stem ends in.
    public func candidates(forShard name: String) -> [String] {
        let stem = (name as NSString).deletingPathExtension
        var names = [stem + ".parquet"]
        let digits = String(stem.reversed().prefix { $0.isASCII && $0.isNumber }.reversed())
        if !digits.isEmpty { names.append("metadata_\(digits).parquet") }
        return names.map { directory + "/" + $0 }
    }

    /// Opens the shard's metadata and checks that it has `rows` rows and the kept columns.
    /// Errors name the metadata file (the caller names the shard).
    public func open(forShard name: String, rows: Int) throws -> MetadataSource {
        let paths = candidates(forShard: name)
        guard let path = paths.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw ClipSafetyError.missingFile("no metadata file for this shard (looked for \(paths.map { ($0 as NSString).lastPathComponent }.joined(separator: ", ")) in \(directory))")
        }
        do {
            let file = try ParquetFile(path: path, limits: limits)
            guard file.rowCount == rows else {
                throw ClipSafetyError.mismatch("has \(file.rowCount) rows, the shard \(rows); the metadata does not belong to this shard")
            }
            let names = keep ?? Self.defaultColumns.filter { file.leafIndex($0) != nil }
            let readers = try names.map { n -> ParquetColumnReader in
                guard file.leafIndex(n) != nil else {
                    throw ClipSafetyError.mismatch("has no column '\(n)' (it has \(file.leaves.map(\.name).joined(separator: ", ")))")
                }
                return try file.columnReader(n)
            }
            return MetadataSource(path: path, readers: readers)
        } catch let e as ClipSafetyError {
            throw ClipSafetyError(e.kind, "\(path): \(e.message)")
        }
    }
}

extension ClipSafetyError {
    static func missingFile(_ m: String) -> Self { .init(.missingFile, m) }
}

/// The kept columns of one metadata file, handed out batch by batch in row order.
public final class MetadataSource {
    public let path: String
    let readers: [ParquetColumnReader]

    init(path: String, readers: [ParquetColumnReader]) {
        self.path = path
        self.readers = readers
    }

    /// The copied columns' fields (the source's names, types and nullability).
    public var fields: [ParquetField] { readers.map(\.field) }

    /// The next `count` rows of every kept column.
    public func next(_ count: Int) throws -> [ParquetColumn] {
        do {
            return try readers.map { try $0.read(count) }
        } catch let e as ClipSafetyError {
            throw ClipSafetyError(e.kind, "\(path): \(e.message)")
        }
    }
}
