import Foundation
import XCTest
@testable import Converters
import Runtime

// Builders for hostile inputs that no well-behaved writer produces: zip archives assembled
// byte by byte (with deflate streams written by hand), protobuf wire bytes and LevelDB tables.

/// Little-endian byte appends.
extension Data {
    mutating func le16(_ v: UInt16) { Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) } }
    mutating func le32(_ v: UInt32) { Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) } }
    mutating func le64(_ v: UInt64) { Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) } }
    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 { append(UInt8(v & 0x7f) | 0x80); v >>= 7 }
        append(UInt8(v))
    }
}

/// Zip archives written field by field, so that sizes, checksums and names can lie.
enum HostileZip {
    struct Member {
        var name: String
        /// 0 stored, 8 deflated.
        var method: UInt16 = 0
        var payload: Data
        /// What the headers declare; defaults to the truth for stored members.
        var uncompressedSize: UInt32?
        var crc: UInt32?
    }

    static func archive(_ members: [Member]) -> Data {
        var out = Data()
        var central = Data()
        for m in members {
            let offset = UInt32(out.count)
            let name = Data(m.name.utf8)
            let size = m.uncompressedSize ?? UInt32(m.payload.count)
            let crc = m.crc ?? crc32(m.payload)
            func common(_ d: inout Data) {
                d.le16(20); d.le16(0); d.le16(m.method); d.le16(0); d.le16(0x21)
                d.le32(crc); d.le32(UInt32(m.payload.count)); d.le32(size)
                d.le16(UInt16(name.count)); d.le16(0)
            }
            out.le32(0x0403_4b50)
            common(&out)
            out.append(name)
            out.append(m.payload)
            central.le32(0x0201_4b50)
            central.le16(20)
            common(&central)
            central.le16(0); central.le16(0); central.le16(0); central.le32(0); central.le32(offset)
            central.append(name)
        }
        let cdOffset = UInt32(out.count)
        out.append(central)
        out.le32(0x0605_4b50)
        out.le16(0); out.le16(0)
        out.le16(UInt16(members.count)); out.le16(UInt16(members.count))
        out.le32(UInt32(central.count)); out.le32(cdOffset); out.le16(0)
        return out
    }

    /// IEEE CRC-32 (zip's), bit by bit: only used on small payloads.
    static func crc32(_ data: Data) -> UInt32 {
        var c: UInt32 = 0xffff_ffff
        for b in data {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0xedb8_8320 : c >> 1 }
        }
        return ~c
    }

    /// A raw deflate stream (one fixed-Huffman block) of `1 + 258 × matches` zero bytes: a
    /// literal 0, then back-references of length 258 at distance 1. 13 bits per 258 bytes.
    static func deflatedZeros(matches: Int) -> Data {
        var out = Data()
        out.reserveCapacity(matches * 13 / 8 + 16)
        var acc: UInt64 = 0
        var bits = 0
        func put(_ value: UInt64, _ count: Int) {  // LSB first
            acc |= value << UInt64(bits)
            bits += count
            while bits >= 8 { out.append(UInt8(acc & 0xff)); acc >>= 8; bits -= 8 }
        }
        func huffman(_ code: UInt64, _ count: Int) {  // Huffman codes go most significant bit first
            var reversed: UInt64 = 0
            for i in 0..<count where code & (1 << UInt64(i)) != 0 { reversed |= 1 << UInt64(count - 1 - i) }
            put(reversed, count)
        }
        put(1, 1)  // BFINAL
        put(1, 2)  // BTYPE 01: fixed Huffman
        huffman(0x30, 8)  // literal 0
        for _ in 0..<matches {
            huffman(0xC5, 8)  // length code 285: 258 bytes
            huffman(0, 5)  // distance code 0: distance 1
        }
        huffman(0, 7)  // end of block (256)
        if bits > 0 { out.append(UInt8(acc & 0xff)) }
        return out
    }
}

/// Protobuf wire bytes by hand (fields in any order, any length, any varint width).
struct ProtoBytes {
    var data = Data()
    mutating func varintField(_ field: UInt64, _ v: UInt64) { data.varint(field << 3); data.varint(v) }
    mutating func bytesField(_ field: UInt64, _ d: Data) { data.varint(field << 3 | 2); data.varint(UInt64(d.count)); data.append(d) }
    mutating func fixed32Field(_ field: UInt64, _ v: UInt32) { data.varint(field << 3 | 5); data.le32(v) }

    /// A `BundleEntryProto`: dtype, shape, shard, offset, size, crc32c.
    static func bundleEntry(dtype: UInt64 = 1, shape: [Int64], shard: UInt64 = 0, offset: UInt64, size: UInt64, crc: UInt32) -> Data {
        var shapeProto = ProtoBytes()
        for d in shape {
            var dim = ProtoBytes()
            dim.varintField(1, UInt64(bitPattern: d))
            shapeProto.bytesField(2, dim.data)
        }
        var p = ProtoBytes()
        p.varintField(1, dtype)
        p.bytesField(2, shapeProto.data)
        if shard != 0 { p.varintField(3, shard) }
        p.varintField(4, offset)
        p.varintField(5, size)
        p.fixed32Field(6, crc)
        return p.data
    }

    /// A little-endian `BundleHeaderProto` with `shards` shards.
    static func bundleHeader(shards: UInt64 = 1) -> Data {
        var p = ProtoBytes()
        p.varintField(1, shards)
        return p.data
    }
}

/// LevelDB tables (one data block, empty meta-index, index block, footer) with every part
/// open to tampering.
enum SSTableFixture {
    /// A block whose every entry is a restart point.
    static func block(_ entries: [(Data, Data)]) -> Data {
        var b = Data()
        var restarts: [UInt32] = []
        for (k, v) in entries {
            restarts.append(UInt32(b.count))
            b.varint(0); b.varint(UInt64(k.count)); b.varint(UInt64(v.count))
            b.append(k); b.append(v)
        }
        if restarts.isEmpty { restarts = [0] }
        for r in restarts { b.le32(r) }
        b.le32(UInt32(restarts.count))
        return b
    }

    static func trailer(_ block: Data) -> Data {
        var t = Data([0])
        t.le32(CRC32C.mask(CRC32C.checksum([0], extending: CRC32C.checksum(block))))
        return t
    }

    static func handle(_ offset: UInt64, _ size: UInt64) -> Data {
        var d = Data()
        d.varint(offset); d.varint(size)
        return d
    }

    static func footer(meta: Data, index: Data) -> Data {
        var f = meta + index
        f.append(Data(count: 40 - f.count))
        f.le64(SSTableReader.magic)
        return f
    }

    /// A well-formed table of `entries` (keys sorted), and the handles it uses.
    static func table(_ entries: [(Data, Data)], indexValue: ((UInt64, UInt64)) -> Data = { handle($0.0, $0.1) },
                      footerHandles: ((meta: (UInt64, UInt64), index: (UInt64, UInt64))) -> Data = { footer(meta: handle($0.meta.0, $0.meta.1), index: handle($0.index.0, $0.index.1)) }) -> Data {
        var out = Data()
        let data = block(entries)
        let dataHandle = (UInt64(out.count), UInt64(data.count))
        out.append(data); out.append(trailer(data))
        let meta = block([])
        let metaHandle = (UInt64(out.count), UInt64(meta.count))
        out.append(meta); out.append(trailer(meta))
        let lastKey = entries.last?.0 ?? Data([0xff])
        let index = block([(lastKey, indexValue(dataHandle))])
        let indexHandle = (UInt64(out.count), UInt64(index.count))
        out.append(index); out.append(trailer(index))
        out.append(footerHandles((metaHandle, indexHandle)))
        return out
    }
}

/// Asserts that `body` throws a ClipSafetyError (of one of `kinds` when given, whose message
/// contains `text` when given) — a trap would end the test process instead.
@discardableResult
func assertClipSafetyError(_ kinds: Set<ClipSafetyError.Kind> = [], containing text: String? = nil,
                           _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line,
                           _ body: () throws -> Any) -> ClipSafetyError? {
    do {
        _ = try body()
        XCTFail("expected a ClipSafetyError \(message())", file: file, line: line)
    } catch let e as ClipSafetyError {
        if !kinds.isEmpty { XCTAssertTrue(kinds.contains(e.kind), "kind \(e.kind): \(e.message) \(message())", file: file, line: line) }
        if let text { XCTAssertTrue(e.message.contains(text), "message lacks '\(text)': \(e.message) \(message())", file: file, line: line) }
        XCTAssertFalse(e.message.contains("\n"), "multi-line message: \(e.message)", file: file, line: line)
        return e
    } catch {
        XCTFail("not a ClipSafetyError: \(error) \(message())", file: file, line: line)
    }
    return nil
}

/// Converts bytes of any format through the one path every command uses.
func convertModel(bytes: Data, options: ConversionOptions) throws -> NativeModel {
    try ModelLoader.convert(bytes: bytes, options: options).model
}
