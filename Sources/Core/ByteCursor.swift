import Foundation

/// The byte order of a multi-byte read; every read names one (there is no default).
public enum Endianness: Sendable { case little, big }

/// A bounds-checked read position over untrusted bytes.
///
/// `peek…` only looks, `read…` moves on success; both return `nil` when too few bytes remain
/// and leave the position unchanged. Range checks compare by subtraction, so a hostile length
/// can never overflow an index. Nested structures are parsed from `readSlice`, which cannot
/// see past its own end.
public struct ByteCursor: Sendable {
    public let bytes: Data
    /// Absolute index of the first byte of this cursor's range within `bytes`.
    public let start: Int
    /// Absolute index one past the last byte this cursor may read.
    public let end: Int
    /// Absolute read position.
    public private(set) var position: Int

    public init(_ bytes: Data) {
        self.bytes = bytes
        self.start = bytes.startIndex
        self.end = bytes.endIndex
        self.position = bytes.startIndex
    }

    private init(bytes: Data, start: Int, end: Int) {
        self.bytes = bytes
        self.start = start
        self.end = end
        self.position = start
    }

    /// Bytes read so far, relative to this cursor's start.
    public var offset: Int { position - start }
    public var remaining: Int { end - position }
    public var isAtEnd: Bool { position == end }

    /// True when `count` bytes starting `skip` bytes from the position are inside the range.
    @inlinable
    public func hasBytes(_ count: Int, skip: Int = 0) -> Bool {
        count >= 0 && skip >= 0 && skip <= remaining && count <= remaining - skip
    }

    public mutating func skip(_ count: Int) -> Bool {
        guard hasBytes(count) else { return false }
        position += count
        return true
    }

    /// Moves to `offset` bytes from this cursor's start; false if that is outside the range.
    public mutating func seek(toOffset offset: Int) -> Bool {
        guard offset >= 0, offset <= end - start else { return false }
        position = start + offset
        return true
    }

    public func peekBytes(_ count: Int) -> Data? {
        guard hasBytes(count) else { return nil }
        return bytes[position..<(position + count)]
    }

    public mutating func readBytes(_ count: Int) -> Data? {
        guard let d = peekBytes(count) else { return nil }
        position += count
        return d
    }

    /// A cursor over the next `count` bytes; this cursor moves past them.
    public mutating func readSlice(_ count: Int) -> ByteCursor? {
        guard hasBytes(count) else { return nil }
        let slice = ByteCursor(bytes: bytes, start: position, end: position + count)
        position += count
        return slice
    }

    public func peekInteger<T: FixedWidthInteger>(_: T.Type = T.self, endianness: Endianness, skip: Int = 0) -> T? {
        let size = MemoryLayout<T>.size
        guard hasBytes(size, skip: skip) else { return nil }
        var value: T = 0
        bytes.withUnsafeBytes { raw in
            let base = raw.baseAddress!.advanced(by: position + skip - bytes.startIndex)
            value = withUnsafeMutableBytes(of: &value) { dst in
                dst.copyMemory(from: UnsafeRawBufferPointer(start: base, count: size))
                return dst.load(as: T.self)
            }
        }
        return endianness == .little ? T(littleEndian: value) : T(bigEndian: value)
    }

    public mutating func readInteger<T: FixedWidthInteger>(_: T.Type = T.self, endianness: Endianness) -> T? {
        guard let v = peekInteger(T.self, endianness: endianness) else { return nil }
        position += MemoryLayout<T>.size
        return v
    }

    public mutating func readFloat64(endianness: Endianness) -> Double? {
        guard let bits = readInteger(UInt64.self, endianness: endianness) else { return nil }
        return Double(bitPattern: bits)
    }

    /// A base-128 varint of at most 10 bytes (protobuf, LevelDB); nil if short or longer.
    public mutating func readVarint() -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var p = position
        while p < end, shift < 64 {
            let byte = bytes[p]
            p += 1
            result |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 {
                position = p
                return result
            }
            shift += 7
        }
        return nil
    }

    /// A varint followed by that many bytes.
    public mutating func readLengthPrefixed() -> Data? {
        let saved = position
        guard let n = readVarint(), n <= UInt64(Int.max), let d = readBytes(Int(n)) else {
            position = saved
            return nil
        }
        return d
    }
}
