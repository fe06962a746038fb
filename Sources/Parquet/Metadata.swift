import Core
import Foundation

// The Parquet footer and page-header structures clipsafety reads and writes (parquet-format,
// src/main/thrift/parquet.thrift), with the field ids of that file. Fields this project never
// uses are skipped when read and not written.

/// Physical types (`Type` in parquet.thrift).
public enum PhysicalType: Int32, Sendable {
    case boolean = 0, int32 = 1, int64 = 2, int96 = 3, float = 4, double = 5, byteArray = 6, fixedLenByteArray = 7
}

/// Value and level encodings (`Encoding`).
public enum Encoding: Int32, Sendable {
    case plain = 0, plainDictionary = 2, rle = 3, bitPacked = 4, deltaBinaryPacked = 5, deltaLengthByteArray = 6
    case deltaByteArray = 7, rleDictionary = 8, byteStreamSplit = 9, alp = 10

    static func name(_ raw: Int32) -> String {
        let names: [Int32: String] = [0: "PLAIN", 2: "PLAIN_DICTIONARY", 3: "RLE", 4: "BIT_PACKED", 5: "DELTA_BINARY_PACKED",
                                      6: "DELTA_LENGTH_BYTE_ARRAY", 7: "DELTA_BYTE_ARRAY", 8: "RLE_DICTIONARY",
                                      9: "BYTE_STREAM_SPLIT", 10: "ALP"]
        return names[raw] ?? "encoding \(raw)"
    }
}

/// Page compression (`CompressionCodec`).
public enum Codec: Int32, Sendable {
    case uncompressed = 0, snappy = 1, gzip = 2, lzo = 3, brotli = 4, lz4 = 5, zstd = 6, lz4Raw = 7
}

enum PageType: Int32 {
    case dataPage = 0, indexPage = 1, dictionaryPage = 2, dataPageV2 = 3
}

/// `FieldRepetitionType`.
public enum Repetition: Int32, Sendable {
    case required = 0, optional = 1, repeated = 2
}

struct Statistics {
    var nullCount: Int64?
    var minValue: Data?
    var maxValue: Data?

    func encode(_ w: inout CompactWriter) {
        if let nullCount { w.field(3, i64: nullCount) }
        if let maxValue { w.field(5, binary: maxValue) }
        if let minValue { w.field(6, binary: minValue) }
    }
}

struct KeyValue {
    var key: String
    var value: String?
}

struct SchemaElement {
    var type: PhysicalType?
    var typeLength: Int32?
    var repetition: Repetition?
    var name: String
    var numChildren: Int32?
    var convertedType: Int32?
    /// True when the logical type is STRING (field 10, member 1).
    var isString = false

    func encode(_ w: inout CompactWriter) {
        if let type { w.field(1, i32: type.rawValue) }
        if let repetition { w.field(3, i32: repetition.rawValue) }
        w.field(4, string: name)
        if let numChildren { w.field(5, i32: numChildren) }
        if let convertedType { w.field(6, i32: convertedType) }
        if isString { w.field(10) { $0.field(1) { _ in } } }
    }

    static func decode(_ r: inout CompactReader) throws -> SchemaElement {
        var e = SchemaElement(name: "")
        var rawType: Int32?, rawRepetition: Int32?
        try r.readStruct { r, id, t in
            switch id {
            case 1: rawType = try r.readI32(t)
            case 2: e.typeLength = try r.readI32(t)
            case 3: rawRepetition = try r.readI32(t)
            case 4: e.name = try r.readString(t)
            case 5: e.numChildren = try r.readI32(t)
            case 6: e.convertedType = try r.readI32(t)
            case 10:
                try r.readStruct { r, member, t in
                    if member == 1 { e.isString = true }
                    try r.skip(t)
                }
            default: try r.skip(t)
            }
        }
        if let rawType {
            guard let type = PhysicalType(rawValue: rawType) else { throw ClipSafetyError.malformed("schema element of unknown type \(rawType)") }
            e.type = type
        }
        if let rawRepetition {
            guard let rep = Repetition(rawValue: rawRepetition) else { throw ClipSafetyError.malformed("schema element of unknown repetition \(rawRepetition)") }
            e.repetition = rep
        }
        return e
    }
}

struct ColumnMetaData {
    var type: PhysicalType
    var encodings: [Int32]
    var path: [String]
    var codec: Int32
    var numValues: Int64
    var totalUncompressedSize: Int64
    var totalCompressedSize: Int64
    var dataPageOffset: Int64
    var dictionaryPageOffset: Int64?
    var statistics: Statistics?

    func encode(_ w: inout CompactWriter) {
        w.field(1, i32: type.rawValue)
        w.field(2, i32List: encodings)
        w.field(3, stringList: path)
        w.field(4, i32: codec)
        w.field(5, i64: numValues)
        w.field(6, i64: totalUncompressedSize)
        w.field(7, i64: totalCompressedSize)
        w.field(9, i64: dataPageOffset)
        if let dictionaryPageOffset { w.field(11, i64: dictionaryPageOffset) }
        if let statistics { w.field(12) { statistics.encode(&$0) } }
    }

    static func decode(_ r: inout CompactReader) throws -> ColumnMetaData {
        var type: Int32?, codec: Int32?, numValues: Int64?, uncompressed: Int64?, compressed: Int64?, dataPage: Int64?
        var m = ColumnMetaData(type: .boolean, encodings: [], path: [], codec: 0, numValues: 0, totalUncompressedSize: 0,
                               totalCompressedSize: 0, dataPageOffset: 0)
        try r.readStruct { r, id, t in
            switch id {
            case 1: type = try r.readI32(t)
            case 2: m.encodings = try r.readI32List(t)
            case 3: m.path = try r.readStringList(t)
            case 4: codec = try r.readI32(t)
            case 5: numValues = try r.readI64(t)
            case 6: uncompressed = try r.readI64(t)
            case 7: compressed = try r.readI64(t)
            case 9: dataPage = try r.readI64(t)
            case 11: m.dictionaryPageOffset = try r.readI64(t)
            default: try r.skip(t)
            }
        }
        guard let type, let physical = PhysicalType(rawValue: type), let codec, let numValues, let uncompressed,
              let compressed, let dataPage else {
            throw ClipSafetyError.malformed("column metadata lacks a required field")
        }
        m.type = physical
        m.codec = codec
        m.numValues = numValues
        m.totalUncompressedSize = uncompressed
        m.totalCompressedSize = compressed
        m.dataPageOffset = dataPage
        return m
    }
}

struct ColumnChunk {
    var fileOffset: Int64
    var metaData: ColumnMetaData?
    var filePath: String?

    func encode(_ w: inout CompactWriter) {
        w.field(2, i64: fileOffset)
        if let metaData { w.field(3) { metaData.encode(&$0) } }
    }

    static func decode(_ r: inout CompactReader) throws -> ColumnChunk {
        var c = ColumnChunk(fileOffset: 0)
        try r.readStruct { r, id, t in
            switch id {
            case 1: c.filePath = try r.readString(t)
            case 2: c.fileOffset = try r.readI64(t)
            case 3: c.metaData = try ColumnMetaData.decode(&r)
            case 8, 9: throw ClipSafetyError.unsupported("encrypted Parquet columns are not supported")
            default: try r.skip(t)
            }
        }
        return c
    }
}

struct RowGroup {
    var columns: [ColumnChunk]
    var totalByteSize: Int64
    var numRows: Int64
    var fileOffset: Int64?
    var totalCompressedSize: Int64?
    var ordinal: Int16?

    func encode(_ w: inout CompactWriter) {
        w.field(1, structList: columns) { w, c in c.encode(&w) }
        w.field(2, i64: totalByteSize)
        w.field(3, i64: numRows)
        if let fileOffset { w.field(5, i64: fileOffset) }
        if let totalCompressedSize { w.field(6, i64: totalCompressedSize) }
        if let ordinal { w.field(7, i32: Int32(ordinal)) }
    }

    static func decode(_ r: inout CompactReader) throws -> RowGroup {
        var g = RowGroup(columns: [], totalByteSize: 0, numRows: -1)
        try r.readStruct { r, id, t in
            switch id {
            case 1: g.columns = try r.readList(t) { r, et in
                guard et == .structure else { throw ClipSafetyError.malformed("row group columns are not structs") }
                return try ColumnChunk.decode(&r)
            }
            case 2: g.totalByteSize = try r.readI64(t)
            case 3: g.numRows = try r.readI64(t)
            default: try r.skip(t)
            }
        }
        guard g.numRows >= 0 else { throw ClipSafetyError.malformed("row group without a valid row count") }
        return g
    }
}

/// The file footer (`FileMetaData`).
struct FileMetaData {
    var version: Int32
    var schema: [SchemaElement]
    var numRows: Int64
    var rowGroups: [RowGroup]
    var keyValues: [KeyValue]
    var createdBy: String?
    /// Leaves written with type-defined order (min_value/max_value are meaningful).
    var typeDefinedOrderColumns = 0

    func encode() -> Data {
        var w = CompactWriter()
        w.structure { w in
            w.field(1, i32: version)
            w.field(2, structList: schema) { w, e in e.encode(&w) }
            w.field(3, i64: numRows)
            w.field(4, structList: rowGroups) { w, g in g.encode(&w) }
            if !keyValues.isEmpty {
                w.field(5, structList: keyValues) { w, kv in
                    w.field(1, string: kv.key)
                    if let v = kv.value { w.field(2, string: v) }
                }
            }
            if let createdBy { w.field(6, string: createdBy) }
            if typeDefinedOrderColumns > 0 {
                w.field(7, structList: Array(repeating: 0, count: typeDefinedOrderColumns)) { w, _ in w.field(1) { _ in } }
            }
        }
        return w.bytes
    }

    static func decode(_ r: inout CompactReader) throws -> FileMetaData {
        var m = FileMetaData(version: 0, schema: [], numRows: -1, rowGroups: [], keyValues: [])
        try r.readStruct { r, id, t in
            switch id {
            case 1: m.version = try r.readI32(t)
            case 2: m.schema = try r.readList(t) { r, et in
                guard et == .structure else { throw ClipSafetyError.malformed("schema elements are not structs") }
                return try SchemaElement.decode(&r)
            }
            case 3: m.numRows = try r.readI64(t)
            case 4: m.rowGroups = try r.readList(t) { r, et in
                guard et == .structure else { throw ClipSafetyError.malformed("row groups are not structs") }
                return try RowGroup.decode(&r)
            }
            case 5: m.keyValues = try r.readList(t) { r, et in
                guard et == .structure else { throw ClipSafetyError.malformed("key-value metadata are not structs") }
                var kv = KeyValue(key: "", value: nil)
                try r.readStruct { r, id, t in
                    switch id {
                    case 1: kv.key = try r.readString(t)
                    case 2: kv.value = try r.readString(t)
                    default: try r.skip(t)
                    }
                }
                return kv
            }
            case 6: m.createdBy = try r.readString(t)
            case 8: throw ClipSafetyError.unsupported("encrypted Parquet files are not supported")
            default: try r.skip(t)
            }
        }
        guard m.numRows >= 0, !m.schema.isEmpty else { throw ClipSafetyError.malformed("Parquet footer lacks its schema or row count") }
        return m
    }
}

struct DataPageHeader {
    var numValues: Int32
    var encoding: Int32
    var definitionLevelEncoding: Int32
    var repetitionLevelEncoding: Int32
    var statistics: Statistics?
}

struct DataPageHeaderV2 {
    var numValues: Int32
    var numNulls: Int32
    var numRows: Int32
    var encoding: Int32
    var definitionLevelsByteLength: Int32
    var repetitionLevelsByteLength: Int32
    var isCompressed = true
}

struct DictionaryPageHeader {
    var numValues: Int32
    var encoding: Int32
}

struct PageHeader {
    var type: Int32
    var uncompressedPageSize: Int32
    var compressedPageSize: Int32
    var dataPage: DataPageHeader?
    var dictionaryPage: DictionaryPageHeader?
    var dataPageV2: DataPageHeaderV2?

    func encode() -> Data {
        var w = CompactWriter()
        w.structure { w in
            w.field(1, i32: type)
            w.field(2, i32: uncompressedPageSize)
            w.field(3, i32: compressedPageSize)
            if let d = dataPage {
                w.field(5) { w in
                    w.field(1, i32: d.numValues)
                    w.field(2, i32: d.encoding)
                    w.field(3, i32: d.definitionLevelEncoding)
                    w.field(4, i32: d.repetitionLevelEncoding)
                    if let s = d.statistics { w.field(5) { s.encode(&$0) } }
                }
            }
            if let d = dictionaryPage {
                w.field(7) { w in
                    w.field(1, i32: d.numValues)
                    w.field(2, i32: d.encoding)
                }
            }
        }
        return w.bytes
    }

    static func decode(_ r: inout CompactReader) throws -> PageHeader {
        var h = PageHeader(type: -1, uncompressedPageSize: -1, compressedPageSize: -1)
        try r.readStruct { r, id, t in
            switch id {
            case 1: h.type = try r.readI32(t)
            case 2: h.uncompressedPageSize = try r.readI32(t)
            case 3: h.compressedPageSize = try r.readI32(t)
            case 5: h.dataPage = try decodeDataPage(&r)
            case 7: h.dictionaryPage = try decodeDictionaryPage(&r)
            case 8: h.dataPageV2 = try decodeDataPageV2(&r)
            default: try r.skip(t)
            }
        }
        guard h.type >= 0, h.uncompressedPageSize >= 0, h.compressedPageSize >= 0 else {
            throw ClipSafetyError.malformed("page header lacks its type or sizes")
        }
        return h
    }

    private static func decodeDataPage(_ r: inout CompactReader) throws -> DataPageHeader {
        var d = DataPageHeader(numValues: -1, encoding: -1, definitionLevelEncoding: 3, repetitionLevelEncoding: 3)
        try r.readStruct { r, id, t in
            switch id {
            case 1: d.numValues = try r.readI32(t)
            case 2: d.encoding = try r.readI32(t)
            case 3: d.definitionLevelEncoding = try r.readI32(t)
            case 4: d.repetitionLevelEncoding = try r.readI32(t)
            default: try r.skip(t)
            }
        }
        guard d.numValues >= 0, d.encoding >= 0 else { throw ClipSafetyError.malformed("data page header lacks its value count or encoding") }
        return d
    }

    private static func decodeDataPageV2(_ r: inout CompactReader) throws -> DataPageHeaderV2 {
        var d = DataPageHeaderV2(numValues: -1, numNulls: -1, numRows: -1, encoding: -1, definitionLevelsByteLength: -1,
                                 repetitionLevelsByteLength: -1)
        try r.readStruct { r, id, t in
            switch id {
            case 1: d.numValues = try r.readI32(t)
            case 2: d.numNulls = try r.readI32(t)
            case 3: d.numRows = try r.readI32(t)
            case 4: d.encoding = try r.readI32(t)
            case 5: d.definitionLevelsByteLength = try r.readI32(t)
            case 6: d.repetitionLevelsByteLength = try r.readI32(t)
            case 7: d.isCompressed = try r.readBool(t)
            default: try r.skip(t)
            }
        }
        guard d.numValues >= 0, d.numNulls >= 0, d.numRows >= 0, d.encoding >= 0, d.definitionLevelsByteLength >= 0,
              d.repetitionLevelsByteLength >= 0 else {
            throw ClipSafetyError.malformed("data page v2 header lacks a required field or holds a negative one")
        }
        return d
    }

    private static func decodeDictionaryPage(_ r: inout CompactReader) throws -> DictionaryPageHeader {
        var d = DictionaryPageHeader(numValues: -1, encoding: 0)
        try r.readStruct { r, id, t in
            switch id {
            case 1: d.numValues = try r.readI32(t)
            case 2: d.encoding = try r.readI32(t)
            default: try r.skip(t)
            }
        }
        guard d.numValues >= 0 else { throw ClipSafetyError.malformed("dictionary page header lacks its value count") }
        return d
    }
}
