import Foundation
import Runtime

/// A reader of LevelDB-format tables (SSTables), the container of TensorFlow's
/// `variables.index`.
///
/// Layout: data blocks, a meta-index block and an index block, each followed by a 5-byte
/// trailer (compression type, masked CRC-32C of block and type), then a 48-byte footer (two
/// block handles as varints, zero padding, the magic number). A block is a run of entries
/// `shared, unshared, value length (varints), key suffix, value` with keys prefix-compressed
/// against the previous key, then an array of restart offsets (entries whose `shared` is 0)
/// and its count. Only uncompressed blocks are supported (TensorFlow writes bundle indexes
/// without compression). Every block's checksum is verified; keys must be strictly increasing.
/// Prefix compression lets a small table decode to far more bytes, so the decoded keys and
/// values together are held to `limits.maxUncompressedBytes`.
public struct SSTableReader {
    public struct Entry: Sendable, Equatable {
        public var key: Data
        public var value: Data
    }

    /// LevelDB's table magic number, stored little-endian at the end of the footer.
    public static let magic: UInt64 = 0xdb47_7524_8b80_fb57
    public static let footerSize = 48
    static let trailerSize = 5

    /// Every key/value pair of the table, in key order.
    public let entries: [Entry]

    public init(bytes: Data, limits: ReaderLimits) throws {
        let (_, index) = try Self.footer(bytes)
        var decoded = 0
        let indexEntries = try Self.block(bytes, handle: index, what: "index block", limits: limits, decoded: &decoded)
        var all: [Entry] = []
        for (i, e) in indexEntries.enumerated() {
            var cursor = ByteCursor(e.value)
            guard let handle = Self.readHandle(&cursor), cursor.isAtEnd else {
                throw ClipSafetyError.malformed("SSTable: index entry \(i) is not a block handle")
            }
            let blockEntries = try Self.block(bytes, handle: handle, what: "data block \(i)", limits: limits, decoded: &decoded)
            // The index key of a block is >= every key in it and < every key of the next block.
            if let last = blockEntries.last, Self.compare(last.key, e.key) > 0 {
                throw ClipSafetyError.malformed("SSTable: data block \(i) holds keys past its index key")
            }
            if let prev = all.last, let first = blockEntries.first, Self.compare(prev.key, first.key) >= 0 {
                throw ClipSafetyError.malformed("SSTable: keys of data block \(i) are not after those of the previous block")
            }
            all.append(contentsOf: blockEntries)
        }
        entries = all
    }

    /// The value stored under `key`, if any.
    public func value(forKey key: Data) -> Data? {
        entries.first { $0.key == key }?.value
    }

    struct BlockHandle: Equatable {
        var offset: Int
        var size: Int
    }

    /// Parses the footer: (meta-index handle, index handle).
    static func footer(_ bytes: Data) throws -> (BlockHandle, BlockHandle) {
        var file = ByteCursor(bytes)
        guard file.remaining >= footerSize else {
            throw ClipSafetyError.truncated("SSTable: \(file.remaining) bytes, shorter than the \(footerSize)-byte footer")
        }
        _ = file.seek(toOffset: file.remaining - footerSize)
        guard var footer = file.readSlice(footerSize) else {
            throw ClipSafetyError.truncated("SSTable: footer missing")
        }
        guard footer.peekInteger(UInt64.self, endianness: .little, skip: footerSize - 8) == magic else {
            throw ClipSafetyError.malformed("SSTable: bad magic number (not a LevelDB table)")
        }
        guard let meta = readHandle(&footer), let index = readHandle(&footer) else {
            throw ClipSafetyError.malformed("SSTable: footer block handles are not valid varints")
        }
        guard footer.offset <= footerSize - 8 else {
            throw ClipSafetyError.malformed("SSTable: footer block handles run into the magic number")
        }
        return (meta, index)
    }

    static func readHandle(_ cursor: inout ByteCursor) -> BlockHandle? {
        guard let offset = cursor.readVarint(), let size = cursor.readVarint(),
              offset <= UInt64(Int.max), size <= UInt64(Int.max) else { return nil }
        return BlockHandle(offset: Int(offset), size: Int(size))
    }

    /// The entries of the block at `handle`, after checking its bounds, trailer and checksum.
    static func block(_ bytes: Data, handle: BlockHandle, what: String, limits: ReaderLimits, decoded: inout Int) throws -> [Entry] {
        var file = ByteCursor(bytes)
        let contentEnd = bytes.count - footerSize
        guard handle.offset <= contentEnd, handle.size <= contentEnd - handle.offset,
              trailerSize <= contentEnd - handle.offset - handle.size,
              file.seek(toOffset: handle.offset), let block = file.readBytes(handle.size),
              let type = file.readInteger(UInt8.self, endianness: .little),
              let storedCRC = file.readInteger(UInt32.self, endianness: .little) else {
            throw ClipSafetyError.malformed("SSTable: \(what) at \(handle.offset) (\(handle.size) bytes) lies outside the table")
        }
        guard type == 0 else {
            throw ClipSafetyError.unsupported("SSTable: \(what) uses compression type \(type); only uncompressed tables are supported")
        }
        let actual = CRC32C.checksum([type], extending: CRC32C.checksum(block))
        guard CRC32C.mask(actual) == storedCRC else {
            throw ClipSafetyError.malformed("SSTable: \(what) is corrupt (crc32c mismatch)")
        }
        return try entries(ofBlock: block, what: what, limits: limits, decoded: &decoded)
    }

    /// Decodes the entries of one block's contents (without its trailer); `decoded` counts the
    /// bytes of keys and values decoded so far.
    static func entries(ofBlock block: Data, what: String, limits: ReaderLimits, decoded: inout Int) throws -> [Entry] {
        var cursor = ByteCursor(block)
        let (restarts, dataEnd) = try restartPoints(of: cursor, what: what)
        guard var data = cursor.readSlice(dataEnd) else {
            throw ClipSafetyError.truncated("SSTable: \(what) entries are cut short")
        }
        var result: [Entry] = []
        var key = Data()
        var restartIndex = 0
        while !data.isAtEnd {
            let entryOffset = data.offset
            guard let shared = data.readVarint(), let unshared = data.readVarint(), let valueLength = data.readVarint() else {
                throw ClipSafetyError.truncated("SSTable: \(what) entry at \(entryOffset) has a cut-short header")
            }
            let isRestart = restartIndex < restarts.count && restarts[restartIndex] == entryOffset
            if isRestart { restartIndex += 1 }
            if isRestart && shared != 0 {
                throw ClipSafetyError.malformed("SSTable: \(what) restart entry at \(entryOffset) shares a key prefix")
            }
            guard shared <= UInt64(key.count) else {
                throw ClipSafetyError.malformed("SSTable: \(what) entry at \(entryOffset) shares \(shared) bytes of a \(key.count)-byte previous key")
            }
            guard unshared <= UInt64(data.remaining), valueLength <= UInt64(data.remaining),
                  let suffix = data.readBytes(Int(unshared)), let value = data.readBytes(Int(valueLength)) else {
                throw ClipSafetyError.truncated("SSTable: \(what) entry at \(entryOffset) runs past the block")
            }
            decoded += Int(shared) + suffix.count + value.count
            guard decoded <= limits.maxUncompressedBytes else {
                throw ClipSafetyError.limitExceeded("SSTable: keys and values decode to more than \(limits.maxUncompressedBytes) bytes (raise with --max-uncompressed-bytes)")
            }
            var next = Data(key.prefix(Int(shared)))
            next.append(suffix)
            if let prev = result.last, compare(prev.key, next) >= 0 {
                throw ClipSafetyError.malformed("SSTable: \(what) keys are not strictly increasing at \(entryOffset)")
            }
            key = next
            result.append(Entry(key: next, value: Data(value)))
        }
        guard restartIndex == restarts.count || result.isEmpty else {
            throw ClipSafetyError.malformed("SSTable: \(what) has restart points that are not at entry boundaries")
        }
        return result
    }

    /// The block's restart offsets (ascending, the first at 0) and where its entries end.
    static func restartPoints(of cursor: ByteCursor, what: String) throws -> (restarts: [Int], dataEnd: Int) {
        guard cursor.remaining >= 4,
              let restartCount = cursor.peekInteger(UInt32.self, endianness: .little, skip: cursor.remaining - 4) else {
            throw ClipSafetyError.truncated("SSTable: \(what) is shorter than its restart count")
        }
        let maxRestarts = (cursor.remaining - 4) / 4
        guard Int(restartCount) <= maxRestarts else {
            throw ClipSafetyError.malformed("SSTable: \(what) declares \(restartCount) restart points, more than fit in it")
        }
        let dataEnd = cursor.remaining - 4 - 4 * Int(restartCount)
        var restarts: [Int] = []
        restarts.reserveCapacity(Int(restartCount))
        for i in 0..<Int(restartCount) {
            guard let r = cursor.peekInteger(UInt32.self, endianness: .little, skip: dataEnd + 4 * i) else {
                throw ClipSafetyError.truncated("SSTable: \(what) restart array is cut short")
            }
            guard Int(r) < Swift.max(dataEnd, 1), restarts.last.map({ Int(r) > $0 }) ?? true else {
                throw ClipSafetyError.malformed("SSTable: \(what) restart point \(i) (\(r)) is out of order or past the entries")
            }
            restarts.append(Int(r))
        }
        guard dataEnd == 0 || restarts.first == 0 else {
            throw ClipSafetyError.malformed("SSTable: \(what) does not start with a restart point")
        }
        return (restarts, dataEnd)
    }

    /// Bytewise comparison (LevelDB's default comparator).
    static func compare(_ a: Data, _ b: Data) -> Int {
        let common = Swift.min(a.count, b.count)
        let order = a.withUnsafeBytes { x in
            b.withUnsafeBytes { y in common == 0 ? 0 : memcmp(x.baseAddress!, y.baseAddress!, common) }
        }
        if order != 0 { return order < 0 ? -1 : 1 }
        return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
    }
}
