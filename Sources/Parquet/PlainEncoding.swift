import Core
import Foundation

/// PLAIN encoding (Encodings.md): booleans bit-packed from the least significant bit,
/// numbers little-endian, byte arrays as a 4-byte little-endian length and the bytes. Only
/// present (non-null) values are stored.
enum PlainEncoding {
    static func encode(_ column: ParquetColumn) -> Data {
        let keep: (Int) -> Bool = { column.valid?[$0] ?? true }
        var out = Data()
        switch column.values {
        case .boolean(let v):
            var byte: UInt8 = 0, bit = 0
            for (i, b) in v.enumerated() where keep(i) {
                if b { byte |= 1 << bit }
                bit += 1
                if bit == 8 { out.append(byte); byte = 0; bit = 0 }
            }
            if bit > 0 { out.append(byte) }
        case .int32(let v): appendFixed(v, keep: keep, column.valid == nil, to: &out)
        case .int64(let v): appendFixed(v, keep: keep, column.valid == nil, to: &out)
        case .float(let v): appendFixed(v.map(\.bitPattern), keep: keep, column.valid == nil, to: &out)
        case .double(let v): appendFixed(v.map(\.bitPattern), keep: keep, column.valid == nil, to: &out)
        case .byteArray(let v):
            for (i, d) in v.enumerated() where keep(i) {
                withUnsafeBytes(of: UInt32(d.count).littleEndian) { out.append(contentsOf: $0) }
                out.append(d)
            }
        }
        return out
    }

    private static func appendFixed<T: FixedWidthInteger>(_ v: [T], keep: (Int) -> Bool, _ all: Bool, to out: inout Data) {
        if all {
            let le = v.map(\.littleEndian)
            le.withUnsafeBytes { out.append(contentsOf: $0) }
            return
        }
        var le: [T] = []
        le.reserveCapacity(v.count)
        for (i, x) in v.enumerated() where keep(i) { le.append(x.littleEndian) }
        le.withUnsafeBytes { out.append(contentsOf: $0) }
    }

    /// Decodes `count` PLAIN values of `type` from `cursor`.
    static func decode(_ cursor: inout ByteCursor, type: PhysicalType, count: Int) throws -> ParquetValues {
        let short = ClipSafetyError.truncated("PLAIN values end before their \(count) values")
        switch type {
        case .boolean:
            guard let bytes = cursor.readBytes((count + 7) / 8) else { throw short }
            let b = Array(bytes)
            return .boolean((0..<count).map { b[$0 / 8] >> ($0 % 8) & 1 == 1 })
        case .int32:
            return .int32(try fixed(&cursor, count: count, short).map { (x: UInt32) in Int32(bitPattern: x) })
        case .int64:
            return .int64(try fixed(&cursor, count: count, short).map { (x: UInt64) in Int64(bitPattern: x) })
        case .float:
            return .float(try fixed(&cursor, count: count, short).map { (x: UInt32) in Float(bitPattern: x) })
        case .double:
            return .double(try fixed(&cursor, count: count, short).map { (x: UInt64) in Double(bitPattern: x) })
        case .byteArray:
            var out: [Data] = []
            out.reserveCapacity(min(count, cursor.remaining / 4))
            for _ in 0..<count {
                guard let n = cursor.readInteger(UInt32.self, endianness: .little), let d = cursor.readBytes(Int(n)) else { throw short }
                out.append(d)
            }
            return .byteArray(out)
        case .int96, .fixedLenByteArray:
            throw ClipSafetyError.unsupported("\(type) columns are not supported")
        }
    }

    private static func fixed<T: FixedWidthInteger>(_ cursor: inout ByteCursor, count: Int, _ short: ClipSafetyError) throws -> [T] {
        let size = MemoryLayout<T>.size
        guard count <= cursor.remaining / size, let bytes = cursor.readBytes(count * size) else { throw short }
        var out = [T](repeating: 0, count: count)
        out.withUnsafeMutableBytes { dst in _ = bytes.copyBytes(to: dst) }
        return out.map { T(littleEndian: $0) }
    }
}

/// Column-chunk statistics: null count, and min/max of the present values (NaN left out,
/// zeros signed as the spec asks: min -0, max +0), PLAIN-encoded without a length.
enum ColumnStatistics {
    static func of(_ column: ParquetColumn, maxBytes: Int) -> Statistics {
        let present: (Int) -> Bool = { column.valid?[$0] ?? true }
        let nulls = column.valid.map { $0.lazy.filter { !$0 }.count } ?? 0
        var s = Statistics(nullCount: Int64(nulls))
        func set<T>(_ values: [T], _ less: (T, T) -> Bool, _ bytes: (T) -> Data, skip: (T) -> Bool = { _ in false }) {
            var lo: T?, hi: T?
            for (i, v) in values.enumerated() where present(i) && !skip(v) {
                if lo.map({ less(v, $0) }) ?? true { lo = v }
                if hi.map({ less($0, v) }) ?? true { hi = v }
            }
            if let lo, let hi { s.minValue = bytes(lo); s.maxValue = bytes(hi) }
        }
        switch column.values {
        case .boolean(let v): set(v, { !$0 && $1 }, { Data([$0 ? 1 : 0]) })
        case .int32(let v): set(v, <, { x in withUnsafeBytes(of: x.littleEndian) { Data($0) } })
        case .int64(let v): set(v, <, { x in withUnsafeBytes(of: x.littleEndian) { Data($0) } })
        case .float(let v):
            set(v, <, { x in withUnsafeBytes(of: x.bitPattern.littleEndian) { Data($0) } }, skip: { $0.isNaN })
            signZeros(&s, negativeZero: withUnsafeBytes(of: (-Float(0)).bitPattern.littleEndian) { Data($0) }, positiveZero: Data(count: 4))
        case .double(let v):
            set(v, <, { x in withUnsafeBytes(of: x.bitPattern.littleEndian) { Data($0) } }, skip: { $0.isNaN })
            signZeros(&s, negativeZero: withUnsafeBytes(of: (-Double(0)).bitPattern.littleEndian) { Data($0) }, positiveZero: Data(count: 8))
        case .byteArray(let v):
            set(v, { $0.lexicographicallyPrecedes($1) }, { $0 })
            if (s.minValue?.count ?? 0) > maxBytes || (s.maxValue?.count ?? 0) > maxBytes { s.minValue = nil; s.maxValue = nil }
        }
        return s
    }

    private static func signZeros(_ s: inout Statistics, negativeZero: Data, positiveZero: Data) {
        if s.minValue == positiveZero { s.minValue = negativeZero }
        if s.maxValue == negativeZero { s.maxValue = positiveZero }
    }
}
