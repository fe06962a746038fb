import Core
import Foundation

// The Thrift compact protocol, as Parquet uses it for its footer and page headers (Apache
// Thrift, doc/specs/thrift-compact-protocol.md): structs are field headers (a 4-bit id delta
// or a zigzag i16 id, and a 4-bit type) ending in a zero byte; integers are zigzag varints;
// binary is a varint length and the bytes; lists are a size/type byte (and a varint size when
// 15 or more). Only what the Parquet structures use is here; unknown fields are skipped.

/// Compact-protocol type codes of a field or list element.
enum ThriftType: UInt8 {
    case stop = 0, boolTrue = 1, boolFalse = 2, byte = 3, i16 = 4, i32 = 5, i64 = 6, double = 7
    case binary = 8, list = 9, set = 10, map = 11, structure = 12, uuid = 13
}

/// Writes compact-protocol structs into a byte buffer.
struct CompactWriter {
    private(set) var bytes = Data()
    /// The last field id of each open struct.
    private var lastField: [Int16] = [0]

    mutating func beginStruct() { lastField.append(0) }

    mutating func endStruct() {
        bytes.append(ThriftType.stop.rawValue)
        lastField.removeLast()
    }

    /// A struct written by `body` (which writes its fields).
    mutating func structure(_ body: (inout CompactWriter) -> Void) {
        beginStruct()
        body(&self)
        endStruct()
    }

    private mutating func fieldHeader(_ id: Int16, _ type: ThriftType) {
        let last = lastField[lastField.count - 1]
        let delta = Int(id) - Int(last)
        if delta > 0 && delta <= 15 {
            bytes.append(UInt8(delta) << 4 | type.rawValue)
        } else {
            bytes.append(type.rawValue)
            varint(zigzag(Int64(id)))
        }
        lastField[lastField.count - 1] = id
    }

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    func zigzag(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v << 1) ^ (v >> 63)) }

    mutating func field(_ id: Int16, i32 value: Int32) {
        fieldHeader(id, .i32)
        varint(zigzag(Int64(value)))
    }

    mutating func field(_ id: Int16, i64 value: Int64) {
        fieldHeader(id, .i64)
        varint(zigzag(value))
    }

    mutating func field(_ id: Int16, bool value: Bool) {
        fieldHeader(id, value ? .boolTrue : .boolFalse)
    }

    mutating func field(_ id: Int16, binary value: Data) {
        fieldHeader(id, .binary)
        varint(UInt64(value.count))
        bytes.append(value)
    }

    mutating func field(_ id: Int16, string value: String) {
        field(id, binary: Data(value.utf8))
    }

    mutating func field(_ id: Int16, struct body: (inout CompactWriter) -> Void) {
        fieldHeader(id, .structure)
        structure(body)
    }

    private mutating func listHeader(_ count: Int, _ type: ThriftType) {
        if count < 15 {
            bytes.append(UInt8(count) << 4 | type.rawValue)
        } else {
            bytes.append(0xf0 | type.rawValue)
            varint(UInt64(count))
        }
    }

    mutating func field(_ id: Int16, i32List values: [Int32]) {
        fieldHeader(id, .list)
        listHeader(values.count, .i32)
        for v in values { varint(zigzag(Int64(v))) }
    }

    mutating func field(_ id: Int16, stringList values: [String]) {
        fieldHeader(id, .list)
        listHeader(values.count, .binary)
        for v in values {
            let d = Data(v.utf8)
            varint(UInt64(d.count))
            bytes.append(d)
        }
    }

    /// A list of structs, each written by `body`.
    mutating func field<T>(_ id: Int16, structList values: [T], _ body: (inout CompactWriter, T) -> Void) {
        fieldHeader(id, .list)
        listHeader(values.count, .structure)
        for v in values { structure { body(&$0, v) } }
    }
}

/// Reads compact-protocol structs from untrusted bytes: every length is checked against the
/// bytes left, nesting is limited, and every element read is counted against a budget, so a
/// hostile footer can neither overrun, recurse without end nor make the reader allocate more
/// than its own size allows.
struct CompactReader {
    private(set) var cursor: ByteCursor
    let maxDepth: Int
    private var depth = 0
    /// Elements (fields and list items) that may still be read.
    private var budget: Int

    init(_ cursor: ByteCursor, maxDepth: Int, maxElements: Int) {
        self.cursor = cursor
        self.maxDepth = maxDepth
        self.budget = maxElements
    }

    var offset: Int { cursor.offset }

    private mutating func spend() throws {
        budget -= 1
        guard budget >= 0 else { throw ClipSafetyError.limitExceeded("Thrift structure holds too many elements") }
    }

    /// Reads a struct; `body` gets each field's id and type and must read its value (or call
    /// `skip`). Field values of unknown ids should be skipped by the body.
    mutating func readStruct(_ body: (inout CompactReader, Int16, ThriftType) throws -> Void) throws {
        depth += 1
        defer { depth -= 1 }
        guard depth <= maxDepth else { throw ClipSafetyError.limitExceeded("Thrift structures nest deeper than \(maxDepth)") }
        var last: Int16 = 0
        while true {
            guard let header = cursor.readInteger(UInt8.self, endianness: .little) else { throw truncated }
            if header == 0 { return }
            try spend()
            guard let type = ThriftType(rawValue: header & 0x0f), type != .stop else {
                throw ClipSafetyError.malformed("Thrift field of unknown type \(header & 0x0f)")
            }
            let delta = header >> 4
            let id: Int16
            if delta != 0 {
                let next = Int(last) + Int(delta)
                guard next <= Int(Int16.max) else { throw ClipSafetyError.malformed("Thrift field id out of range") }
                id = Int16(next)
            } else {
                let raw = try readZigzag()
                guard let v = Int16(exactly: raw) else { throw ClipSafetyError.malformed("Thrift field id out of range") }
                id = v
            }
            last = id
            try body(&self, id, type)
        }
    }

    private var truncated: ClipSafetyError { .truncated("Thrift structure ends early") }

    mutating func readVarint() throws -> UInt64 {
        guard let v = cursor.readVarint() else { throw truncated }
        return v
    }

    mutating func readZigzag() throws -> Int64 {
        let u = try readVarint()
        return Int64(bitPattern: u >> 1) ^ -Int64(bitPattern: u & 1)
    }

    mutating func readI32(_ type: ThriftType) throws -> Int32 {
        guard type == .i32 || type == .i16 || type == .byte else { throw wrongType("i32", type) }
        if type == .byte {
            guard let b = cursor.readInteger(Int8.self, endianness: .little) else { throw truncated }
            return Int32(b)
        }
        guard let v = Int32(exactly: try readZigzag()) else { throw ClipSafetyError.malformed("Thrift i32 out of range") }
        return v
    }

    mutating func readI64(_ type: ThriftType) throws -> Int64 {
        guard type == .i64 || type == .i32 || type == .i16 else { throw wrongType("i64", type) }
        return try readZigzag()
    }

    func readBool(_ type: ThriftType) throws -> Bool {
        switch type {
        case .boolTrue: return true
        case .boolFalse: return false
        default: throw wrongType("bool", type)
        }
    }

    mutating func readBinary(_ type: ThriftType) throws -> Data {
        guard type == .binary else { throw wrongType("binary", type) }
        return try readBinaryValue()
    }

    private mutating func readBinaryValue() throws -> Data {
        let n = try readVarint()
        guard n <= UInt64(cursor.remaining), let d = cursor.readBytes(Int(n)) else { throw truncated }
        return d
    }

    mutating func readString(_ type: ThriftType) throws -> String {
        String(decoding: try readBinary(type), as: UTF8.self)
    }

    /// Reads a list header; returns the element type and count (checked: every element
    /// takes at least one byte, bools and structs included).
    mutating func readListHeader(_ type: ThriftType) throws -> (ThriftType, Int) {
        guard type == .list || type == .set else { throw wrongType("list", type) }
        guard let header = cursor.readInteger(UInt8.self, endianness: .little) else { throw truncated }
        var count = Int(header >> 4)
        if count == 15 {
            let n = try readVarint()
            guard n <= UInt64(Int32.max) else { throw ClipSafetyError.malformed("Thrift list size out of range") }
            count = Int(n)
        }
        guard let element = ThriftType(rawValue: header & 0x0f) else {
            throw ClipSafetyError.malformed("Thrift list of unknown type \(header & 0x0f)")
        }
        guard count <= cursor.remaining else { throw truncated }
        return (element, count)
    }

    /// A list whose elements `element` reads one by one.
    mutating func readList<T>(_ type: ThriftType, _ element: (inout CompactReader, ThriftType) throws -> T) throws -> [T] {
        let (elementType, count) = try readListHeader(type)
        var out: [T] = []
        out.reserveCapacity(min(count, 1024))  // elements can be far larger than their one byte
        for _ in 0..<count {
            try spend()
            out.append(try element(&self, elementType))
        }
        return out
    }

    mutating func readI32List(_ type: ThriftType) throws -> [Int32] {
        try readList(type) { r, t in try r.readI32(t) }
    }

    mutating func readStringList(_ type: ThriftType) throws -> [String] {
        try readList(type) { r, t in try r.readString(t) }
    }

    /// Skips a value of `type` (nested values within the depth limit).
    mutating func skip(_ type: ThriftType) throws {
        switch type {
        case .boolTrue, .boolFalse: return
        case .byte: guard cursor.skip(1) else { throw truncated }
        case .i16, .i32, .i64: _ = try readVarint()
        case .double: guard cursor.skip(8) else { throw truncated }
        case .uuid: guard cursor.skip(16) else { throw truncated }
        case .binary: _ = try readBinaryValue()
        case .list, .set:
            let (element, count) = try readListHeader(type)
            try nested {
                for _ in 0..<count {
                    try $0.spend()
                    try $0.skipElement(element)
                }
            }
        case .map:
            let count = try readVarint()
            guard count <= UInt64(cursor.remaining) else { throw truncated }
            guard count > 0 else { return }
            guard let kinds = cursor.readInteger(UInt8.self, endianness: .little),
                  let k = ThriftType(rawValue: kinds >> 4), let v = ThriftType(rawValue: kinds & 0x0f) else { throw truncated }
            try nested {
                for _ in 0..<count {
                    try $0.spend()
                    try $0.skipElement(k)
                    try $0.skipElement(v)
                }
            }
        case .structure: try readStruct { r, _, t in try r.skip(t) }
        case .stop: throw ClipSafetyError.malformed("Thrift value of type stop")
        }
    }

    /// A list element: bools are one byte there, not part of a header.
    private mutating func skipElement(_ type: ThriftType) throws {
        if type == .boolTrue || type == .boolFalse {
            guard cursor.skip(1) else { throw truncated }
        } else {
            try skip(type)
        }
    }

    private mutating func nested(_ body: (inout CompactReader) throws -> Void) throws {
        depth += 1
        defer { depth -= 1 }
        guard depth <= maxDepth else { throw ClipSafetyError.limitExceeded("Thrift structures nest deeper than \(maxDepth)") }
        try body(&self)
    }

    private func wrongType(_ expected: String, _ got: ThriftType) -> ClipSafetyError {
        .malformed("Thrift field holds \(got) where \(expected) belongs")
    }
}
