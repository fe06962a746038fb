import Core
import Foundation

/// Where a `ParquetWriter` sends its bytes, in order (an atomic file, a hasher, memory).
public protocol ParquetSink: AnyObject {
    func write(_ data: Data) throws
}

/// Collects written bytes in memory (tests, small files).
public final class DataSink: ParquetSink {
    public private(set) var data = Data()
    public init() {}
    public func write(_ data: Data) throws { self.data.append(data) }
}

/// Writes a flat Parquet file (parquet-format: `PAR1`, column chunks, Thrift compact footer,
/// footer length, `PAR1`) as rows arrive: columns are buffered until a row group fills, then
/// written as ZSTD-compressed PLAIN data pages (v1) with RLE definition levels for optional
/// columns and min/max/null-count statistics. Memory holds one row group and one batch.
/// The bytes depend only on the rows, fields and metadata (no clock, no host), so two runs
/// over the same input give the same file.
public final class ParquetWriter {
    public let fields: [ParquetField]
    private let keyValues: [KeyValue]
    private let sink: ParquetSink
    private let rowGroupRows: Int
    private var buffered: [ParquetColumn]
    private var bufferedRows = 0
    private var bufferedBytes = 0
    private var offset = 0
    private var rowGroups: [RowGroup] = []
    private var totalRows = 0
    private var finished = false

    /// Row groups hold at least `rowGroupRows` rows (the last one fewer) unless byte-array
    /// columns reach this many bytes first.
    static let rowGroupByteLimit = 64 << 20
    /// Values are cut into pages of about this many encoded bytes.
    static let pageBytes = 1 << 20
    /// Byte-array statistics are left out when a min or max would be longer.
    static let maxStatisticsBytes = 1024
    /// `created_by` in the footer.
    public static let createdBy = "clipsafety version \(clipsafetyParquetVersion)"

    /// Starts a file with `fields` (flat; names unique) and key-value metadata `keyValues`.
    public init(fields: [ParquetField], keyValues: [(String, String)], sink: ParquetSink, rowGroupRows: Int = 65536) throws {
        guard !fields.isEmpty else { throw ClipSafetyError.usage("a Parquet file needs at least one column") }
        guard Set(fields.map(\.name)).count == fields.count else { throw ClipSafetyError.usage("Parquet column names must be unique") }
        guard fields.allSatisfy({ [.boolean, .int32, .int64, .float, .double, .byteArray].contains($0.type) }) else {
            throw ClipSafetyError.usage("the Parquet writer stores boolean, int32, int64, float, double and byte-array columns")
        }
        self.fields = fields
        self.keyValues = keyValues.map { KeyValue(key: $0.0, value: $0.1) }
        self.sink = sink
        self.rowGroupRows = max(1, rowGroupRows)
        buffered = fields.map { ParquetColumn(.empty($0.type)) }
        try emit(Data("PAR1".utf8))
    }

    private func emit(_ data: Data) throws {
        try sink.write(data)
        offset += data.count
    }

    /// Appends rows: one column per field, in field order, all of the same length and of
    /// the field's type; nulls only in optional fields.
    public func append(_ columns: [ParquetColumn]) throws {
        guard !finished else { throw ClipSafetyError.usage("rows appended to a finished Parquet file") }
        guard columns.count == fields.count else { throw ClipSafetyError.mismatch("\(columns.count) columns for \(fields.count) fields") }
        let rows = columns.first?.count ?? 0
        for (c, f) in zip(columns, fields) {
            guard c.count == rows, c.values.physicalType == f.type, c.valid.map({ $0.count == rows }) ?? true else {
                throw ClipSafetyError.mismatch("column '\(f.name)' does not match its field or the batch's \(rows) rows")
            }
            guard f.isOptional || !(c.valid?.contains(false) ?? false) else {
                throw ClipSafetyError.mismatch("null in required column '\(f.name)'")
            }
        }
        for i in columns.indices {
            buffered[i].append(columns[i])
            if case .byteArray(let v) = columns[i].values { bufferedBytes += v.reduce(0) { $0 + $1.count + 4 } }
        }
        bufferedRows += rows
        if bufferedRows >= rowGroupRows || bufferedBytes >= Self.rowGroupByteLimit { try flushRowGroup() }
    }

    private func flushRowGroup() throws {
        guard bufferedRows > 0 else { return }
        let start = offset
        var chunks: [ColumnChunk] = []
        var uncompressed: Int64 = 0
        for (i, field) in fields.enumerated() {
            let meta = try writeChunk(buffered[i], field: field)
            uncompressed += meta.totalUncompressedSize
            chunks.append(ColumnChunk(fileOffset: meta.dataPageOffset, metaData: meta))
            buffered[i] = ParquetColumn(.empty(field.type))
        }
        rowGroups.append(RowGroup(columns: chunks, totalByteSize: uncompressed, numRows: Int64(bufferedRows),
                                  fileOffset: Int64(start), totalCompressedSize: Int64(offset - start),
                                  ordinal: Int16(truncatingIfNeeded: rowGroups.count)))
        totalRows += bufferedRows
        bufferedRows = 0
        bufferedBytes = 0
    }

    /// One column chunk: its pages, then its metadata for the footer.
    private func writeChunk(_ column: ParquetColumn, field: ParquetField) throws -> ColumnMetaData {
        let start = offset
        var uncompressed = 0
        for range in pageRanges(column) {
            let page = column.slice(range)
            var body = Data()
            if field.isOptional {
                let levels = RLEHybrid.encode((page.valid ?? Array(repeating: true, count: page.count)).map { $0 ? 1 : 0 }, width: 1)
                withUnsafeBytes(of: UInt32(levels.count).littleEndian) { body.append(contentsOf: $0) }
                body.append(levels)
            }
            body.append(PlainEncoding.encode(page))
            let compressed = try PageCompression.zstd(body)
            guard body.count <= Int32.max, compressed.count <= Int32.max else { throw ClipSafetyError.limitExceeded("a Parquet page over 2 GiB") }
            let header = PageHeader(type: PageType.dataPage.rawValue, uncompressedPageSize: Int32(body.count),
                                    compressedPageSize: Int32(compressed.count),
                                    dataPage: DataPageHeader(numValues: Int32(page.count), encoding: Encoding.plain.rawValue,
                                                             definitionLevelEncoding: Encoding.rle.rawValue,
                                                             repetitionLevelEncoding: Encoding.rle.rawValue))
            let headerBytes = header.encode()
            try emit(headerBytes)
            try emit(compressed)
            uncompressed += headerBytes.count + body.count
        }
        return ColumnMetaData(type: field.type, encodings: [Encoding.plain.rawValue, Encoding.rle.rawValue], path: [field.name],
                              codec: Codec.zstd.rawValue, numValues: Int64(column.count), totalUncompressedSize: Int64(uncompressed),
                              totalCompressedSize: Int64(offset - start), dataPageOffset: Int64(start),
                              statistics: ColumnStatistics.of(column, maxBytes: Self.maxStatisticsBytes))
    }

    /// Row ranges of about `pageBytes` encoded bytes each (at least one, even when empty).
    private func pageRanges(_ column: ParquetColumn) -> [Range<Int>] {
        let n = column.count
        var ranges: [Range<Int>] = []
        switch column.values {
        case .byteArray(let v):
            var start = 0, bytes = 0
            for (i, d) in v.enumerated() {
                bytes += d.count + 4
                if bytes >= Self.pageBytes {
                    ranges.append(start..<(i + 1))
                    start = i + 1
                    bytes = 0
                }
            }
            if start < n || ranges.isEmpty { ranges.append(start..<n) }
        default:
            let perPage = Self.pageBytes / 8
            var start = 0
            repeat {
                ranges.append(start..<min(n, start + perPage))
                start += perPage
            } while start < n
        }
        return ranges
    }

    /// Writes the last row group and the footer. The sink then holds the whole file.
    public func finish() throws {
        guard !finished else { return }
        try flushRowGroup()
        finished = true
        var schema = [SchemaElement(name: "schema", numChildren: Int32(fields.count))]
        for f in fields {
            schema.append(SchemaElement(type: f.type, repetition: f.isOptional ? .optional : .required, name: f.name,
                                        convertedType: f.isString ? 0 : nil, isString: f.isString))
        }
        let footer = FileMetaData(version: 1, schema: schema, numRows: Int64(totalRows), rowGroups: rowGroups,
                                  keyValues: keyValues, createdBy: Self.createdBy, typeDefinedOrderColumns: fields.count).encode()
        try emit(footer)
        try emit(withUnsafeBytes(of: UInt32(footer.count).littleEndian) { Data($0) })
        try emit(Data("PAR1".utf8))
    }

    /// Rows written so far (buffered ones included).
    public var rows: Int { totalRows + bufferedRows }
}

/// The version in `created_by`.
public let clipsafetyParquetVersion = "0.1.0"
