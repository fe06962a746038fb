import Foundation
import Runtime

/// A reader of TensorFlow tensor bundles (`variables.index` + `variables.data-*`), the
/// checkpoint format of a SavedModel.
///
/// The index is an SSTable mapping tensor names to `BundleEntryProto`s (dtype, shape, shard,
/// offset, size, masked CRC-32C); the empty key holds the `BundleHeaderProto`. Every entry is
/// checked when the reader is made: its bytes lie inside its shard, their size fits dtype and
/// shape, and their checksum matches. A mismatch is reported as corruption naming the tensor.
public struct TensorBundleReader: Sendable {
    public struct Entry: Sendable, Equatable {
        public var name: String
        /// The numeric dtype, or nil for strings and other non-numeric TensorFlow types.
        public var dtype: DType?
        /// TensorFlow's name of the dtype (`float32`, `string`, …), for messages.
        public var typeName: String
        public var shape: [Int]
        public var shard: Int
        public var offset: Int
        public var size: Int
        /// The masked CRC-32C the index records for the entry's bytes.
        public var crc32c: UInt32
    }

    public let entries: [Entry]
    private let shards: [Data]

    /// Reads the index and checks every entry against `shards` (the data files, in shard order).
    public init(index: Data, shards: [Data], limits: ReaderLimits) throws {
        let table = try SSTableReader(bytes: index, limits: limits)
        guard let headerBytes = table.value(forKey: Data()) else {
            throw ClipSafetyError.malformed("variables.index: no bundle header (empty key)")
        }
        let header = try SavedModelProtobuf.decode(Tensorflow_BundleHeaderProto.self, from: headerBytes,
                                                   what: "variables.index header", limits: limits)
        guard header.endianness == .little else {
            throw ClipSafetyError.unsupported("variables.index: big-endian tensor bundles are not supported")
        }
        guard Int(header.numShards) == shards.count else {
            throw ClipSafetyError.mismatch("variables.index: header declares \(header.numShards) data shards, \(shards.count) given")
        }
        var list: [Entry] = []
        // Entries may point at the same bytes; without a cap, many small index entries over
        // one large shard would make the checksums take hours.
        var checked = 0
        for e in table.entries where !e.key.isEmpty {
            guard let name = String(data: e.key, encoding: .utf8) else {
                throw ClipSafetyError.malformed("variables.index: a tensor name is not UTF-8")
            }
            let entry = try Self.entry(name: name, value: e.value, limits: limits)
            guard entry.shard < shards.count else {
                throw ClipSafetyError.malformed("variables: tensor '\(name)' is in shard \(entry.shard) of \(shards.count)")
            }
            let shard = shards[entry.shard]
            guard entry.offset <= shard.count, entry.size <= shard.count - entry.offset else {
                throw ClipSafetyError.truncated("variables: tensor '\(name)' (\(entry.size) bytes at \(entry.offset)) lies past the end of its \(shard.count)-byte data file")
            }
            checked += entry.size  // each size ≤ its shard's length: no overflow
            guard checked <= limits.maxUncompressedBytes else {
                throw ClipSafetyError.limitExceeded("variables: tensors up to '\(name)' cover more than \(limits.maxUncompressedBytes) bytes (raise with --max-uncompressed-bytes)")
            }
            try Self.verify(entry, bytes: Self.slice(shard, entry))
            list.append(entry)
        }
        entries = list
        self.shards = shards
    }

    public func entry(named name: String) -> Entry? { entries.first { $0.name == name } }

    /// A numeric tensor of the bundle, stored under `name` in the native model.
    public func tensor(_ key: String, as name: String) throws -> Tensor {
        guard let e = entry(named: key) else {
            throw ClipSafetyError.mismatch("variables: no tensor '\(key)'")
        }
        guard let dtype = e.dtype else {
            throw ClipSafetyError.unsupported("variables: tensor '\(key)' is \(e.typeName), not numeric")
        }
        return try Tensor(name: name, dtype: dtype, shape: e.shape, data: Self.slice(shards[e.shard], e))
    }

    static func slice(_ shard: Data, _ e: Entry) -> Data {
        shard[(shard.startIndex + e.offset)..<(shard.startIndex + e.offset + e.size)]
    }

    static func entry(name: String, value: Data, limits: ReaderLimits) throws -> Entry {
        let proto = try SavedModelProtobuf.decode(Tensorflow_BundleEntryProto.self, from: value,
                                                  what: "variables.index entry '\(name)'", limits: limits)
        guard proto.slices.isEmpty else {
            throw ClipSafetyError.unsupported("variables: tensor '\(name)' is partitioned into slices; not supported")
        }
        guard let shape = proto.shape.knownDims else {
            throw ClipSafetyError.malformed("variables: tensor '\(name)' has an unknown or negative dimension")
        }
        guard proto.shardID >= 0, proto.offset >= 0, proto.size >= 0 else {
            throw ClipSafetyError.malformed("variables: tensor '\(name)' has a negative shard, offset or size")
        }
        let dtype = proto.dtype.nativeDType
        guard let (elements, bytes) = checkedByteCount(shape: shape, dtype: dtype?.byteSize ?? 1) else {
            throw ClipSafetyError.malformed("variables: tensor '\(name)' shape \(shape) overflows")
        }
        guard elements <= limits.maxTensorElements else {
            throw ClipSafetyError.limitExceeded("variables: tensor '\(name)' has \(elements) elements, over the limit of \(limits.maxTensorElements)")
        }
        if dtype != nil, Int64(bytes) != proto.size {
            throw ClipSafetyError.malformed("variables: tensor '\(name)' is \(proto.dtype.tfName) \(shape), \(bytes) bytes, but its entry says \(proto.size)")
        }
        if dtype == nil && proto.dtype != .dtString {
            throw ClipSafetyError.unsupported("variables: tensor '\(name)' has unsupported \(proto.dtype.tfName)")
        }
        return Entry(name: name, dtype: dtype, typeName: proto.dtype.tfName, shape: shape, shard: Int(proto.shardID),
                     offset: Int(proto.offset), size: Int(proto.size), crc32c: proto.crc32C)
    }

    /// Checks the entry's bytes against its checksum (and, for strings, their internal layout).
    static func verify(_ e: Entry, bytes: Data) throws {
        let crc: UInt32
        if e.dtype != nil {
            crc = CRC32C.checksum(bytes)
        } else {
            crc = try stringChecksum(e, bytes: bytes)
        }
        guard CRC32C.mask(crc) == e.crc32c else {
            throw ClipSafetyError.malformed("variables: tensor '\(e.name)' is corrupt: crc32c of its bytes is \(hex(CRC32C.mask(crc))), the index records \(hex(e.crc32c))")
        }
    }

    static func hex(_ v: UInt32) -> String {
        let digits = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }

    /// A string tensor is stored as one varint length per element, a masked CRC-32C of those
    /// lengths (each fed as a little-endian uint32), then the string bytes. The entry checksum
    /// covers the lengths (as uint32), the stored length checksum and the string bytes.
    static func stringChecksum(_ e: Entry, bytes: Data) throws -> UInt32 {
        let elements = e.shape.reduce(1, *)
        var cursor = ByteCursor(bytes)
        var crc: UInt32 = 0
        var total = 0
        for _ in 0..<elements {
            guard let n = cursor.readVarint() else {
                throw ClipSafetyError.truncated("variables: string tensor '\(e.name)' lengths are cut short")
            }
            guard n <= UInt64(UInt32.max), Int(n) <= bytes.count - total else {
                throw ClipSafetyError.malformed("variables: string tensor '\(e.name)' declares a string longer than its data")
            }
            total += Int(n)
            withUnsafeBytes(of: UInt32(n).littleEndian) { crc = CRC32C.checksum($0, extending: crc) }
        }
        guard let lengthCRC = cursor.readInteger(UInt32.self, endianness: .little) else {
            throw ClipSafetyError.truncated("variables: string tensor '\(e.name)' has no length checksum")
        }
        guard lengthCRC == CRC32C.mask(crc) else {
            throw ClipSafetyError.malformed("variables: tensor '\(e.name)' is corrupt: its string lengths do not match their checksum")
        }
        withUnsafeBytes(of: lengthCRC.littleEndian) { crc = CRC32C.checksum($0, extending: crc) }
        guard cursor.remaining == total, let strings = cursor.readBytes(total) else {
            throw ClipSafetyError.malformed("variables: string tensor '\(e.name)' holds \(cursor.remaining) string bytes, its lengths add up to \(total)")
        }
        return CRC32C.checksum(strings, extending: crc)
    }
}
