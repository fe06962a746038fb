import Foundation
import Runtime

/// Chunked datasets (layout version 3, version 1 B-tree chunk index; sections III.A.1 and
/// IV.A.2.i): the chunk shape against the extent, the file and the limits, then every chunk.
extension HDF5Preflight {
    /// libhdf5 allocates a whole chunk to read one: a declared chunk larger than the limit on
    /// uncompressed bytes, or than both the dataset and the file, is refused.
    mutating func checkChunked(_ m: inout ByteCursor, _ s: HDF5DatasetShape) throws {
        guard let rank = m.readInteger(UInt8.self, endianness: .little), let btree = geometry.readAddress(&m),
              let chunk = Optional((0..<Int(rank)).compactMap { _ in m.readInteger(UInt32.self, endianness: .little).map(UInt64.init) }),
              chunk.count == Int(rank) else {
            throw ClipSafetyError.malformed("HDF5: the chunked layout of \(s.what) is cut short")
        }
        guard chunk.count == s.dims.count + 1, chunk.last == s.elementSize, !chunk.contains(0) else {
            throw ClipSafetyError.malformed("HDF5: the chunks of \(s.what) (\(chunk)) do not match its \(s.dims.count) dimensions of \(s.elementSize)-byte elements")
        }
        let chunkBytes = try Self.chunkBytes(chunk, s)
        try checkChunkSize(chunkBytes, s)
        if btree == geometry.undefinedAddress {
            guard s.bytes == 0 else { throw Self.noData(s) }
            return
        }
        try checkChunks(btree: btree, chunk: Array(chunk.dropLast()), chunkBytes: chunkBytes, s)
    }

    private static func chunkBytes(_ chunk: [UInt64], _ s: HDF5DatasetShape) throws -> UInt64 {
        var bytes: UInt64 = 1
        for d in chunk {
            let (p, o) = bytes.multipliedReportingOverflow(by: d)
            guard !o else { throw ClipSafetyError.limitExceeded("HDF5: \(s.what) declares chunks of \(chunk) (too many bytes to count)") }
            bytes = p
        }
        return bytes
    }

    /// Checks the declared chunk size against the limits, the dataset and the file.
    private func checkChunkSize(_ chunkBytes: UInt64, _ s: HDF5DatasetShape) throws {
        guard chunkBytes <= UInt64(limits.maxUncompressedBytes) else {
            throw ClipSafetyError.limitExceeded("HDF5: \(s.what) declares chunks of \(chunkBytes) bytes, over the limit of \(limits.maxUncompressedBytes) (raise with --max-uncompressed-bytes)")
        }
        guard chunkBytes <= max(s.bytes, UInt64(geometry.fileSize)) else {
            throw ClipSafetyError.malformed("HDF5: \(s.what) declares chunks of \(chunkBytes) bytes, larger than both its \(s.bytes) bytes and the file's \(geometry.fileSize)")
        }
    }

    /// Every chunk in the B-tree: inside the file, placed on the chunk grid inside the extent,
    /// each once, all of them present (a missing one would be made up from the fill value).
    private mutating func checkChunks(btree: UInt64, chunk: [UInt64], chunkBytes: UInt64, _ s: HDF5DatasetShape) throws {
        let grid = try Self.gridCount(chunk, s)
        var found = Set<[UInt64]>()
        let keySize = 8 + 8 * (chunk.count + 1)
        try forEachBTreeLeaf(root: btree, type: 1, keySize: keySize, path: s.what) { walk, key, address in
            let origin = try walk.checkChunk(key: key, address: address, chunk: chunk, chunkBytes: chunkBytes, s)
            guard found.insert(origin).inserted else {
                throw ClipSafetyError.malformed("HDF5: \(s.what) stores the chunk at \(origin) twice")
            }
        }
        guard UInt64(found.count) == grid else {
            throw ClipSafetyError.malformed("HDF5: \(s.what) stores \(found.count) of its \(grid) chunks (the rest would be the fill value)")
        }
    }

    /// Chunks needed to cover the extent.
    private static func gridCount(_ chunk: [UInt64], _ s: HDF5DatasetShape) throws -> UInt64 {
        var n: UInt64 = 1
        for (d, c) in zip(s.dims, chunk) {
            let (p, o) = n.multipliedReportingOverflow(by: (d + c - 1) / c)
            guard !o else { throw ClipSafetyError.limitExceeded("HDF5: \(s.what) needs too many chunks to count") }
            n = p
        }
        return n
    }

    /// One chunk's key and address; returns the chunk's origin. A chunk whose Fletcher32
    /// checksum is not skipped must hold at least its 4 checksum bytes (libhdf5 1.10 subtracts 4
    /// from the size unchecked and reads far out of bounds: SIGSEGV); a chunk not deflated must
    /// hold exactly the chunk's bytes (and checksum).
    private func checkChunk(key: ByteCursor, address: UInt64, chunk: [UInt64], chunkBytes: UInt64, _ s: HDF5DatasetShape) throws -> [UInt64] {
        var k = key
        guard let size = k.readInteger(UInt32.self, endianness: .little), let mask = k.readInteger(UInt32.self, endianness: .little),
              let origin = Optional((0...chunk.count).compactMap { _ in k.readInteger(UInt64.self, endianness: .little) }),
              origin.count == chunk.count + 1 else {
            throw ClipSafetyError.malformed("HDF5: a chunk key of \(s.what) is cut short")
        }
        guard origin.last == 0, zip(origin, zip(chunk, s.dims)).allSatisfy({ o, cd in o % cd.0 == 0 && o < cd.1 }) else {
            throw ClipSafetyError.malformed("HDF5: \(s.what) stores a chunk at \(origin.dropLast()), off its chunk grid or outside its extent")
        }
        guard size > 0, geometry.contains(address, length: UInt64(size)) else {
            throw ClipSafetyError.malformed("HDF5: a chunk of \(s.what) (\(size) bytes at address \(address)) lies outside the file")
        }
        let active = s.filters.enumerated().filter { mask & (1 << UInt32($0.offset)) == 0 }.map(\.element)
        let checksum: UInt64 = active.contains(HDF5Filter.fletcher32) ? 4 : 0
        guard UInt64(size) >= checksum else {
            throw ClipSafetyError.malformed("HDF5: a chunk of \(s.what) holds \(size) bytes, fewer than its 4-byte Fletcher32 checksum")
        }
        // Without deflate, filters keep the size: the chunk is its bytes plus any checksum.
        guard active.contains(HDF5Filter.deflate) || UInt64(size) == chunkBytes + checksum else {
            throw ClipSafetyError.malformed("HDF5: a chunk of \(s.what) stores \(size) bytes, not its \(chunkBytes + checksum)")
        }
        return Array(origin.dropLast())
    }
}
