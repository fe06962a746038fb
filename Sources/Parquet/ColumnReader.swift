import Core
import Foundation

/// Hands out the rows of one flat column in order, decoding one page at a time, so memory
/// holds a page, its dictionary and the rows asked for, not the column.
public final class ParquetColumnReader {
    private let file: ParquetFile
    private let leaf: ParquetLeaf
    private let index: Int
    private var group = -1
    private var chunk: ByteCursor?
    private var codec: Int32 = 0
    private var valuesLeft: Int64 = 0
    private var dictionary: ParquetValues?
    private var pending: ParquetColumn
    private var pendingStart = 0

    init(file: ParquetFile, index: Int) {
        self.file = file
        self.index = index
        leaf = file.leaves[index]
        pending = ParquetColumn(.empty(leaf.field.type))
    }

    public var field: ParquetField { leaf.field }

    /// The next `count` rows; fails when the column has fewer left.
    public func read(_ count: Int) throws -> ParquetColumn {
        while pending.count - pendingStart < count {
            let page = try nextPage()
            pending = pendingStart < pending.count ? pending.slice(pendingStart..<pending.count) : ParquetColumn(.empty(leaf.field.type))
            pendingStart = 0
            pending.append(page)
        }
        let out = pending.slice(pendingStart..<(pendingStart + count))
        pendingStart += count
        return out
    }

    /// The rows of the next data page (moving on to the next row group when needed).
    private func nextPage() throws -> ParquetColumn {
        while true {
            if chunk == nil || valuesLeft == 0 {
                guard group + 1 < file.rowGroups.count else {
                    throw ClipSafetyError.truncated("column '\(leaf.name)' ends before the rows asked for")
                }
                try openChunk(group + 1)
                continue
            }
            if let rows = try readPage() { return rows }
        }
    }

    private func openChunk(_ g: Int) throws {
        group = g
        guard let m = file.rowGroups[g].columns[index].metaData else { throw ClipSafetyError.malformed("column chunk without metadata") }
        guard m.numValues == file.rowGroups[g].numRows else {
            throw ClipSafetyError.malformed("column '\(leaf.name)' has \(m.numValues) values in row group \(g) of \(file.rowGroups[g].numRows) rows")
        }
        guard m.numValues > 0 else {
            chunk = nil
            valuesLeft = 0
            return
        }
        let range = try file.chunkRange(m, name: leaf.name)
        var all = ByteCursor(file.data)
        guard all.seek(toOffset: range.lowerBound), let slice = all.readSlice(range.count) else {
            throw ClipSafetyError.malformed("column '\(leaf.name)' lies outside the file")
        }
        chunk = slice
        codec = m.codec
        valuesLeft = m.numValues
        dictionary = nil
    }

    /// Decodes one page of the current chunk: nil for a dictionary or index page.
    private func readPage() throws -> ParquetColumn? {
        guard let start = chunk else { return nil }
        var reader = CompactReader(start, maxDepth: file.limits.maxDepth, maxElements: 1 << 16)
        let header = try PageHeader.decode(&reader)
        var cursor = reader.cursor
        guard let payload = cursor.readBytes(Int(header.compressedPageSize)) else {
            throw ClipSafetyError.truncated("page of column '\(leaf.name)' is longer than its column chunk")
        }
        chunk = cursor
        guard Int(header.uncompressedPageSize) <= file.limits.maxUncompressedBytes else {
            throw ClipSafetyError.limitExceeded("page of \(header.uncompressedPageSize) bytes is above the \(file.limits.maxUncompressedBytes)-byte limit")
        }
        switch PageType(rawValue: header.type) {
        case .dictionaryPage:
            try readDictionary(header, payload)
            return nil
        case .dataPage:
            guard let d = header.dataPage else { throw ClipSafetyError.malformed("data page without its header") }
            return try consume(try readDataPageV1(d, header, payload))
        case .dataPageV2:
            guard let d = header.dataPageV2 else { throw ClipSafetyError.malformed("data page v2 without its header") }
            return try consume(try readDataPageV2(d, header, payload))
        case .indexPage:
            return nil
        case nil:
            throw ClipSafetyError.malformed("page of unknown type \(header.type)")
        }
    }

    private func consume(_ rows: ParquetColumn) throws -> ParquetColumn {
        guard Int64(rows.count) <= valuesLeft else {
            throw ClipSafetyError.malformed("column '\(leaf.name)' has more values in its pages than its metadata says")
        }
        valuesLeft -= Int64(rows.count)
        return rows
    }

    private func checkCount(_ n: Int32) throws -> Int {
        guard Int(n) <= file.limits.maxTensorElements else {
            throw ClipSafetyError.limitExceeded("page of \(n) values is above the \(file.limits.maxTensorElements)-element limit")
        }
        return Int(n)
    }

    private func readDictionary(_ header: PageHeader, _ payload: Data) throws {
        guard let d = header.dictionaryPage else { throw ClipSafetyError.malformed("dictionary page without its header") }
        guard d.encoding == Encoding.plain.rawValue || d.encoding == Encoding.plainDictionary.rawValue else {
            throw ClipSafetyError.unsupported("dictionary of column '\(leaf.name)' is \(Encoding.name(d.encoding))-encoded")
        }
        let bytes = try PageCompression.decompress(payload, codec: codec, size: Int(header.uncompressedPageSize))
        var cursor = ByteCursor(bytes)
        dictionary = try PlainEncoding.decode(&cursor, type: leaf.field.type, count: try checkCount(d.numValues))
    }

    private func readDataPageV1(_ d: DataPageHeader, _ header: PageHeader, _ payload: Data) throws -> ParquetColumn {
        let count = try checkCount(d.numValues)
        let bytes = try PageCompression.decompress(payload, codec: codec, size: Int(header.uncompressedPageSize))
        var cursor = ByteCursor(bytes)
        var levels: [UInt32]?
        if leaf.maxDefinitionLevel > 0 {
            guard d.definitionLevelEncoding == Encoding.rle.rawValue else {
                throw ClipSafetyError.unsupported("definition levels of column '\(leaf.name)' are \(Encoding.name(d.definitionLevelEncoding))-encoded")
            }
            guard let n = cursor.readInteger(UInt32.self, endianness: .little), var slice = cursor.readSlice(Int(n)) else {
                throw ClipSafetyError.truncated("definition levels longer than their page")
            }
            levels = try RLEHybrid.decode(&slice, width: RLEHybrid.bitWidth(leaf.maxDefinitionLevel), count: count)
        }
        return try assemble(count: count, levels: levels, encoding: d.encoding, values: &cursor)
    }

    private func readDataPageV2(_ d: DataPageHeaderV2, _ header: PageHeader, _ payload: Data) throws -> ParquetColumn {
        let count = try checkCount(d.numValues)
        guard d.repetitionLevelsByteLength == 0 else { throw ClipSafetyError.unsupported("column '\(leaf.name)' has repetition levels") }
        let levelBytes = Int(d.definitionLevelsByteLength)
        guard levelBytes <= payload.count, levelBytes <= Int(header.uncompressedPageSize) else {
            throw ClipSafetyError.truncated("definition levels longer than their page")
        }
        var levels: [UInt32]?
        if leaf.maxDefinitionLevel > 0 {
            var slice = ByteCursor(payload.prefix(levelBytes))
            levels = try RLEHybrid.decode(&slice, width: RLEHybrid.bitWidth(leaf.maxDefinitionLevel), count: count)
        }
        let rest = payload.dropFirst(levelBytes)
        let size = Int(header.uncompressedPageSize) - levelBytes
        let values = d.isCompressed ? try PageCompression.decompress(Data(rest), codec: codec, size: size) : Data(rest)
        var cursor = ByteCursor(values)
        return try assemble(count: count, levels: levels, encoding: d.encoding, values: &cursor)
    }

    /// Decodes the present values and spreads them over the rows the levels mark present.
    private func assemble(count: Int, levels: [UInt32]?, encoding: Int32, values cursor: inout ByteCursor) throws -> ParquetColumn {
        let maxDef = UInt32(leaf.maxDefinitionLevel)
        let valid = levels.map { $0.map { $0 == maxDef } }
        let present = valid.map { $0.lazy.filter { $0 }.count } ?? count
        let dense = try decodeValues(encoding: encoding, count: present, &cursor)
        guard let valid, present < count else { return ParquetColumn(dense, valid: valid) }
        return ParquetColumn(Self.spread(dense, valid: valid), valid: valid)
    }

    private func decodeValues(encoding: Int32, count: Int, _ cursor: inout ByteCursor) throws -> ParquetValues {
        switch Encoding(rawValue: encoding) {
        case .plain:
            return try PlainEncoding.decode(&cursor, type: leaf.field.type, count: count)
        case .plainDictionary, .rleDictionary:
            guard let dictionary else { throw ClipSafetyError.malformed("column '\(leaf.name)' uses a dictionary it does not have") }
            guard let width = cursor.readInteger(UInt8.self, endianness: .little) else { throw ClipSafetyError.truncated("dictionary indices missing") }
            let indices = try RLEHybrid.decode(&cursor, width: Int(width), count: count)
            return try Self.gather(dictionary, indices)
        case .rle where leaf.field.type == .boolean:
            guard let n = cursor.readInteger(UInt32.self, endianness: .little), var slice = cursor.readSlice(Int(n)) else {
                throw ClipSafetyError.truncated("RLE booleans longer than their page")
            }
            return .boolean(try RLEHybrid.decode(&slice, width: 1, count: count).map { $0 == 1 })
        default:
            throw ClipSafetyError.unsupported("column '\(leaf.name)' is \(Encoding.name(encoding))-encoded; clipsafety reads PLAIN and dictionary encodings (pyarrow's defaults)")
        }
    }

    static func gather(_ dictionary: ParquetValues, _ indices: [UInt32]) throws -> ParquetValues {
        let n = dictionary.count
        guard indices.allSatisfy({ Int($0) < n }) else { throw ClipSafetyError.malformed("dictionary index beyond the dictionary's \(n) values") }
        switch dictionary {
        case .boolean(let d): return .boolean(indices.map { d[Int($0)] })
        case .int32(let d): return .int32(indices.map { d[Int($0)] })
        case .int64(let d): return .int64(indices.map { d[Int($0)] })
        case .float(let d): return .float(indices.map { d[Int($0)] })
        case .double(let d): return .double(indices.map { d[Int($0)] })
        case .byteArray(let d): return .byteArray(indices.map { d[Int($0)] })
        }
    }

    /// Dense present values placed at the valid rows, placeholders elsewhere.
    static func spread(_ dense: ParquetValues, valid: [Bool]) -> ParquetValues {
        func place<T>(_ v: [T], _ zero: T) -> [T] {
            var out: [T] = []
            out.reserveCapacity(valid.count)
            var i = 0
            for ok in valid {
                if ok { out.append(v[i]); i += 1 } else { out.append(zero) }
            }
            return out
        }
        switch dense {
        case .boolean(let v): return .boolean(place(v, false))
        case .int32(let v): return .int32(place(v, 0))
        case .int64(let v): return .int64(place(v, 0))
        case .float(let v): return .float(place(v, 0))
        case .double(let v): return .double(place(v, 0))
        case .byteArray(let v): return .byteArray(place(v, Data()))
        }
    }
}
