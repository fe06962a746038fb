import Foundation
import Runtime

/// Bounds-checked walk of object headers (HDF5 File Format Specification 3.0, section IV.A):
/// version 1 and 2 headers, their messages and continuation blocks, loops refused.
extension HDF5Geometry {
    private static let maxContinuations = 64

    /// One block of object-header messages: the header's first chunk or a continuation.
    private struct HeaderBlock {
        var cursor: ByteCursor
        var version: Int
        /// Version 2 headers that track creation order add two bytes to each message prefix.
        var creationOrder: Bool
    }

    /// Calls `visit(type, flags, body)` on every message of the object header at
    /// `headerAddress` (version 1 or 2, following continuation blocks) until it returns false.
    /// Continuation messages are followed, not visited.
    func forEachMessage(headerAddress: UInt64, _ visit: (Int, UInt8, Data) throws -> Bool) throws {
        var blocks = [try firstBlock(ofHeaderAt: headerAddress)]
        var visited = Set<UInt64>([headerAddress])
        var b = 0
        while b < blocks.count {
            var block = blocks[b]
            b += 1
            while let (type, flags, body) = try nextMessage(in: &block, headerAddress: headerAddress) {
                if type == 0x0010 {
                    blocks.append(try continuation(body, of: block, headerAddress: headerAddress, visited: &visited))
                } else {
                    guard try visit(type, flags, body) else { return }
                }
            }
        }
    }

    /// True when the header keeps its attributes in dense storage (a fractal heap named by
    /// its attribute info message).
    func hasDenseAttributes(headerAddress: UInt64) throws -> Bool {
        var dense = false
        try forEachMessage(headerAddress: headerAddress) { type, _, body in
            guard type == 0x0015 else { return true }
            var m = ByteCursor(body)
            guard m.skip(1), let flags = m.readInteger(UInt8.self, endianness: .little), m.skip(flags & 0x01 != 0 ? 2 : 0),
                  let heap = readAddress(&m) else {
                throw ClipSafetyError.malformed("HDF5: the attribute info message of the object header at \(headerAddress) is cut short")
            }
            dense = heap != undefinedAddress
            return false
        }
        return dense
    }

    /// The first message block of the header at `headerAddress`, after its version 1 or 2 prefix.
    private func firstBlock(ofHeaderAt headerAddress: UInt64) throws -> HeaderBlock {
        var prefix = try cursor(at: headerAddress, length: 16, what: "object header")
        guard prefix.peekBytes(4) == Data("OHDR".utf8) else {
            guard prefix.readInteger(UInt8.self, endianness: .little) == 1, prefix.skip(7),
                  let size = prefix.readInteger(UInt32.self, endianness: .little) else {
                throw ClipSafetyError.malformed("HDF5: object header at \(headerAddress) has an unknown version")
            }
            return HeaderBlock(cursor: try cursor(at: headerAddress + 16, length: Int(size), what: "object header"), version: 1, creationOrder: false)
        }
        _ = prefix.skip(4)
        guard prefix.readInteger(UInt8.self, endianness: .little) == 2, let flags = prefix.readInteger(UInt8.self, endianness: .little) else {
            throw ClipSafetyError.malformed("HDF5: object header at \(headerAddress) has an unknown version")
        }
        var skip = 6
        if flags & 0x20 != 0 { skip += 16 }
        if flags & 0x10 != 0 { skip += 4 }
        let sizeWidth = [1, 2, 4, 8][Int(flags & 0x03)]
        var c = try cursor(at: headerAddress, length: skip + sizeWidth, what: "object header")
        _ = c.skip(skip)
        guard let chunkSize = c.readUnsigned(width: sizeWidth), chunkSize <= UInt64(fileSize) else {
            throw ClipSafetyError.malformed("HDF5: object header at \(headerAddress) is larger than the file")
        }
        return HeaderBlock(cursor: try cursor(at: headerAddress + UInt64(skip + sizeWidth), length: Int(chunkSize), what: "object header"),
                           version: 2, creationOrder: flags & 0x04 != 0)
    }

    /// The next message of `block` as (type, flags, body), or nil where the block ends (or
    /// only gap bytes remain).
    private func nextMessage(in block: inout HeaderBlock, headerAddress: UInt64) throws -> (Int, UInt8, Data)? {
        var c = block.cursor
        defer { block.cursor = c }
        let type: Int, size: Int, flags: UInt8
        if block.version == 1 {
            guard c.remaining >= 8, let t = c.readInteger(UInt16.self, endianness: .little),
                  let s = c.readInteger(UInt16.self, endianness: .little),
                  let f = c.readInteger(UInt8.self, endianness: .little), c.skip(3) else { return nil }
            (type, size, flags) = (Int(t), Int(s), f)
        } else {
            guard c.remaining >= 4 + 4, let t = c.readInteger(UInt8.self, endianness: .little),
                  let s = c.readInteger(UInt16.self, endianness: .little),
                  let f = c.readInteger(UInt8.self, endianness: .little) else { return nil }
            if block.creationOrder { guard c.skip(2) else { return nil } }
            (type, size, flags) = (Int(t), Int(s), f)
        }
        guard let body = c.readBytes(size) else {
            throw ClipSafetyError.malformed("HDF5: a message of the object header at \(headerAddress) runs past its block")
        }
        return (type, flags, body)
    }

    /// The block a continuation message points to; refuses loops and too many continuations.
    private func continuation(_ body: Data, of block: HeaderBlock, headerAddress: UInt64, visited: inout Set<UInt64>) throws -> HeaderBlock {
        var m = ByteCursor(body)
        guard let address = readAddress(&m), let length = readLength(&m), length <= UInt64(fileSize) else {
            throw ClipSafetyError.malformed("HDF5: bad continuation in the object header at \(headerAddress)")
        }
        guard visited.insert(address).inserted, visited.count <= Self.maxContinuations else {
            throw ClipSafetyError.malformed("HDF5: the object header at \(headerAddress) loops or has too many continuations")
        }
        var next = try cursor(at: address, length: Int(length), what: "object header continuation")
        if block.version == 2 {
            guard next.readBytes(4) == Data("OCHK".utf8), let inner = next.readSlice(Swift.max(next.remaining - 4, 0)) else {
                throw ClipSafetyError.malformed("HDF5: bad continuation block at address \(address)")
            }
            next = inner
        }
        return HeaderBlock(cursor: next, version: block.version, creationOrder: block.creationOrder)
    }
}
