import Core
import Foundation

/// The values of one column, one per row. Null rows hold a placeholder (0, false, empty)
/// and are marked in `ParquetColumn.valid`.
public enum ParquetValues: Sendable, Equatable {
    case boolean([Bool])
    case int32([Int32])
    case int64([Int64])
    case float([Float])
    case double([Double])
    case byteArray([Data])

    public var count: Int {
        switch self {
        case .boolean(let v): return v.count
        case .int32(let v): return v.count
        case .int64(let v): return v.count
        case .float(let v): return v.count
        case .double(let v): return v.count
        case .byteArray(let v): return v.count
        }
    }

    /// The physical type these values are stored as.
    public var physicalType: PhysicalType {
        switch self {
        case .boolean: return .boolean
        case .int32: return .int32
        case .int64: return .int64
        case .float: return .float
        case .double: return .double
        case .byteArray: return .byteArray
        }
    }

    /// An empty list of values of `type` (which must be one clipsafety stores).
    static func empty(_ type: PhysicalType) -> ParquetValues {
        switch type {
        case .boolean: return .boolean([])
        case .int32: return .int32([])
        case .int64: return .int64([])
        case .float: return .float([])
        case .double: return .double([])
        case .byteArray, .fixedLenByteArray, .int96: return .byteArray([])
        }
    }

    /// Appends `other`, which must hold the same type.
    mutating func append(_ other: ParquetValues) {
        switch (self, other) {
        case (.boolean(var a), .boolean(let b)): self = .empty(.boolean); a += b; self = .boolean(a)
        case (.int32(var a), .int32(let b)): self = .empty(.boolean); a += b; self = .int32(a)
        case (.int64(var a), .int64(let b)): self = .empty(.boolean); a += b; self = .int64(a)
        case (.float(var a), .float(let b)): self = .empty(.boolean); a += b; self = .float(a)
        case (.double(var a), .double(let b)): self = .empty(.boolean); a += b; self = .double(a)
        case (.byteArray(var a), .byteArray(let b)): self = .empty(.boolean); a += b; self = .byteArray(a)
        default: break
        }
    }

    /// Rows `range`.
    func slice(_ range: Range<Int>) -> ParquetValues {
        switch self {
        case .boolean(let v): return .boolean(Array(v[range]))
        case .int32(let v): return .int32(Array(v[range]))
        case .int64(let v): return .int64(Array(v[range]))
        case .float(let v): return .float(Array(v[range]))
        case .double(let v): return .double(Array(v[range]))
        case .byteArray(let v): return .byteArray(Array(v[range]))
        }
    }

    /// The value of `row` as a Double (numbers and booleans), for comparisons.
    public func number(at row: Int) -> Double? {
        switch self {
        case .boolean(let v): return v[row] ? 1 : 0
        case .int32(let v): return Double(v[row])
        case .int64(let v): return Double(v[row])
        case .float(let v): return Double(v[row])
        case .double(let v): return v[row]
        case .byteArray: return nil
        }
    }
}

/// One column's rows: the values and which of them are present (nil: all are).
public struct ParquetColumn: Sendable, Equatable {
    public var values: ParquetValues
    public var valid: [Bool]?

    public init(_ values: ParquetValues, valid: [Bool]? = nil) {
        self.values = values
        self.valid = valid
    }

    public var count: Int { values.count }

    public func isNull(_ row: Int) -> Bool { valid.map { !$0[row] } ?? false }

    /// Appends `other` (same type); keeps `valid` nil while neither has a null.
    mutating func append(_ other: ParquetColumn) {
        if valid != nil || other.valid != nil {
            var v = valid ?? Array(repeating: true, count: count)
            v += other.valid ?? Array(repeating: true, count: other.count)
            valid = v
        }
        values.append(other.values)
    }

    func slice(_ range: Range<Int>) -> ParquetColumn {
        ParquetColumn(values.slice(range), valid: valid.map { Array($0[range]) })
    }

    /// Rows `rows` (in that order), as an optional column (nulls kept).
    public func picking(_ rows: [Int]) -> ParquetColumn {
        let v: ParquetValues
        switch values {
        case .boolean(let a): v = .boolean(rows.map { a[$0] })
        case .int32(let a): v = .int32(rows.map { a[$0] })
        case .int64(let a): v = .int64(rows.map { a[$0] })
        case .float(let a): v = .float(rows.map { a[$0] })
        case .double(let a): v = .double(rows.map { a[$0] })
        case .byteArray(let a): v = .byteArray(rows.map { a[$0] })
        }
        return ParquetColumn(v, valid: rows.map { !isNull($0) })
    }

    /// The text of a byte-array row (UTF-8, replacing invalid bytes); nil when null or not text.
    public func string(at row: Int) -> String? {
        guard !isNull(row), case .byteArray(let v) = values else { return nil }
        return String(decoding: v[row], as: UTF8.self)
    }
}

/// A flat column of a file: its name, how it is stored, and whether it may hold nulls.
public struct ParquetField: Sendable, Equatable {
    public var name: String
    public var type: PhysicalType
    /// A UTF-8 string (byte array with the STRING logical type).
    public var isString: Bool
    public var isOptional: Bool

    public init(name: String, type: PhysicalType, isString: Bool = false, isOptional: Bool = false) {
        self.name = name
        self.type = type
        self.isString = isString && type == .byteArray
        self.isOptional = isOptional
    }
}
