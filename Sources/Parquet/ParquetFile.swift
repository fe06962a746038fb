import Core
import Foundation

/// A leaf column of a file's schema.
public struct ParquetLeaf: Sendable, Equatable {
    /// The names from the root to the leaf, joined with `.` (flat columns: the column name).
    public var name: String
    public var field: ParquetField
    public var maxDefinitionLevel: Int
    public var maxRepetitionLevel: Int
    /// A direct, non-repeated child of the root: the only kind this reader reads.
    public var isFlat: Bool
}

/// A Parquet file read from untrusted bytes: the footer and schema are decoded and checked
/// when opened; column values are decoded page by page when asked for.
///
/// Reads what pyarrow and clip-retrieval write by default: flat columns of boolean, int32,
/// int64, float, double and byte arrays, required or optional; data pages v1 and v2; PLAIN,
/// PLAIN_DICTIONARY/RLE_DICTIONARY (and RLE booleans); uncompressed, snappy and zstd pages.
/// Anything else is refused with a message naming it. Every size the file declares is
/// checked against the bytes present and `ReaderLimits` before it is used.
public final class ParquetFile {
    public let leaves: [ParquetLeaf]
    public let rowCount: Int
    /// Key-value metadata of the footer, in file order.
    public let keyValues: [(key: String, value: String?)]
    public let createdBy: String?
    let data: Data
    let limits: ReaderLimits
    let rowGroups: [RowGroup]

    /// Maps and opens `path` (the file size is checked against `limits.maxFileBytes`).
    public convenience init(path: String, limits: ReaderLimits = .init()) throws {
        try self.init(data: MappedFile.map(path, limits: limits), limits: limits)
    }

    public init(data: Data, limits: ReaderLimits = .init()) throws {
        self.data = data
        self.limits = limits
        let meta = try Self.footer(of: data, limits: limits)
        leaves = try SchemaTree.leaves(of: meta.schema, maxDepth: limits.maxDepth)
        guard meta.numRows <= Int64(Int32.max) * 1024 else { throw ClipSafetyError.limitExceeded("Parquet file declares \(meta.numRows) rows") }
        rowCount = Int(meta.numRows)
        keyValues = meta.keyValues.map { ($0.key, $0.value) }
        createdBy = meta.createdBy
        rowGroups = meta.rowGroups
        try checkRowGroups()
    }

    /// The footer: `PAR1` at both ends, a 4-byte length before the last, the Thrift footer
    /// inside the file and below the uncompressed-bytes limit.
    static func footer(of data: Data, limits: ReaderLimits) throws -> FileMetaData {
        var cursor = ByteCursor(data)
        guard data.count >= 12, cursor.peekBytes(4) == Data("PAR1".utf8) else {
            throw ClipSafetyError.malformed("not a Parquet file (no PAR1 magic)")
        }
        guard cursor.seek(toOffset: data.count - 8), let length = cursor.readInteger(UInt32.self, endianness: .little),
              cursor.readBytes(4) == Data("PAR1".utf8) else {
            if data.count >= 4, data.suffix(4) == Data("PARE".utf8) { throw ClipSafetyError.unsupported("encrypted Parquet files are not supported") }
            throw ClipSafetyError.malformed("Parquet file does not end in PAR1 (truncated?)")
        }
        guard Int(length) <= data.count - 12 else { throw ClipSafetyError.truncated("Parquet footer of \(length) bytes is longer than the file") }
        guard Int(length) <= limits.maxUncompressedBytes else {
            throw ClipSafetyError.limitExceeded("Parquet footer of \(length) bytes is above the \(limits.maxUncompressedBytes)-byte limit")
        }
        guard cursor.seek(toOffset: data.count - 8 - Int(length)), let slice = cursor.readSlice(Int(length)) else {
            throw ClipSafetyError.truncated("Parquet footer outside the file")
        }
        var reader = CompactReader(slice, maxDepth: limits.maxDepth, maxElements: Int(length))
        return try FileMetaData.decode(&reader)
    }

    private func checkRowGroups() throws {
        var rows: Int64 = 0
        for (g, group) in rowGroups.enumerated() {
            guard group.columns.count == leaves.count else {
                throw ClipSafetyError.malformed("row group \(g) has \(group.columns.count) columns, the schema \(leaves.count)")
            }
            for (chunk, leaf) in zip(group.columns, leaves) {
                guard chunk.filePath == nil else { throw ClipSafetyError.unsupported("column '\(leaf.name)' lives in another file") }
                guard let m = chunk.metaData else { throw ClipSafetyError.malformed("column '\(leaf.name)' of row group \(g) has no metadata") }
                guard m.type == leaf.field.type else { throw ClipSafetyError.malformed("column '\(leaf.name)' is \(m.type) in row group \(g), \(leaf.field.type) in the schema") }
                guard m.numValues >= 0, m.totalCompressedSize >= 0 else { throw ClipSafetyError.malformed("column '\(leaf.name)' declares negative sizes") }
                if m.numValues > 0 { _ = try chunkRange(m, name: leaf.name) }  // empty chunks may have no pages at all
            }
            rows += group.numRows
            guard rows <= Int64(rowCount) else { break }
        }
        guard rows == Int64(rowCount) else { throw ClipSafetyError.malformed("row groups hold \(rows) rows, the footer says \(rowCount)") }
    }

    /// Where a column chunk's pages lie: from its dictionary page (or first data page) for
    /// `total_compressed_size` bytes, inside the file.
    func chunkRange(_ m: ColumnMetaData, name: String) throws -> Range<Int> {
        // pyarrow leaves data_page_offset 0 in a chunk of no rows (only a dictionary page).
        var start = m.dataPageOffset
        if let d = m.dictionaryPageOffset, d >= 4, d < start || start < 4 { start = d }
        guard start >= 4, m.totalCompressedSize >= 0, start <= Int64(data.count),
              m.totalCompressedSize <= Int64(data.count) - start else {
            throw ClipSafetyError.malformed("column '\(name)' lies outside the file")
        }
        return Int(start)..<Int(start + m.totalCompressedSize)
    }

    /// Index of the leaf named `name`.
    public func leafIndex(_ name: String) -> Int? { leaves.firstIndex { $0.name == name } }

    /// Every row of a flat column (the row count is checked against `maxTensorElements`).
    public func readColumn(_ name: String) throws -> ParquetColumn {
        guard rowCount <= limits.maxTensorElements else {
            throw ClipSafetyError.limitExceeded("\(rowCount) rows are above the \(limits.maxTensorElements)-element limit")
        }
        let reader = try columnReader(name)
        return try reader.read(rowCount)
    }

    /// A reader that hands out the rows of a flat column in order, a page at a time.
    public func columnReader(_ name: String) throws -> ParquetColumnReader {
        guard let i = leafIndex(name) else { throw ClipSafetyError.mismatch("no column '\(name)'") }
        let leaf = leaves[i]
        guard leaf.isFlat else {
            throw ClipSafetyError.unsupported("column '\(name)' is nested or repeated; clipsafety reads flat columns only")
        }
        return ParquetColumnReader(file: self, index: i)
    }
}

/// The schema list is a depth-first flattening of a tree: each group gives its child count.
/// Walking it once, by index, visits every element at most once (no cycles), with the depth
/// limited and the counts required to add up to the list exactly.
enum SchemaTree {
    static func leaves(of schema: [SchemaElement], maxDepth: Int) throws -> [ParquetLeaf] {
        guard let root = schema.first else { throw ClipSafetyError.malformed("empty Parquet schema") }
        let children = Int(root.numChildren ?? 0)
        guard children >= 0, children < schema.count else {
            throw ClipSafetyError.malformed("schema root declares \(children) children for \(schema.count - 1) elements")
        }
        var out: [ParquetLeaf] = []
        var next = 1
        for _ in 0..<children {
            try walk(schema, &next, path: [], definition: 0, repetition: 0, depth: 1, maxDepth: maxDepth, into: &out)
        }
        guard next == schema.count else {
            throw ClipSafetyError.malformed("schema children counts cover \(next) of \(schema.count) elements")
        }
        return out
    }

    private static func walk(_ schema: [SchemaElement], _ next: inout Int, path: [String], definition: Int, repetition: Int,
                             depth: Int, maxDepth: Int, into out: inout [ParquetLeaf]) throws {
        guard depth <= maxDepth else { throw ClipSafetyError.limitExceeded("Parquet schema nests deeper than \(maxDepth)") }
        guard next < schema.count else { throw ClipSafetyError.malformed("schema children counts run past the \(schema.count) elements") }
        let e = schema[next]
        next += 1
        let rep = e.repetition ?? .required
        let def = definition + (rep == .required ? 0 : 1)
        let reps = repetition + (rep == .repeated ? 1 : 0)
        let names = path + [e.name]
        if let n = e.numChildren, n > 0 || e.type == nil {
            guard n >= 0, n < schema.count - next + 1 else {
                throw ClipSafetyError.malformed("schema element '\(e.name)' declares \(n) children")
            }
            for _ in 0..<n {
                try walk(schema, &next, path: names, definition: def, repetition: reps, depth: depth + 1, maxDepth: maxDepth, into: &out)
            }
            return
        }
        guard let type = e.type else { throw ClipSafetyError.malformed("schema leaf '\(e.name)' has no type") }
        let isString = e.isString || e.convertedType == 0
        let field = ParquetField(name: names.joined(separator: "."), type: type, isString: isString, isOptional: def > 0)
        out.append(ParquetLeaf(name: field.name, field: field, maxDefinitionLevel: def, maxRepetitionLevel: reps,
                               isFlat: depth == 1 && reps == 0))
    }
}
