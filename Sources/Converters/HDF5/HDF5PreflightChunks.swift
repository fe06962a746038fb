import Foundation
import Runtime

/// Chunked datasets (sections III.A.1 and IV.A.2.i): the chunk shape against the extent, the
/// file and the limits, then every chunk. Layout version 3 indexes chunks with a version 1
/// B-tree; version 4 (`libver="latest"`) is read for its single-chunk and implicit indexes.
extension HDF5Preflight {
    /// A version 3 chunked layout: rank, B-tree address, chunk dimensions (4 bytes each).
    mutating func checkChunked(_ m: inout ByteCursor, _ s: HDF5DatasetShape) throws {
        guard let rank = m.readInteger(UInt8.self, endianness: .little), let btree = geometry.readAddress(&m),
              let chunk = Optional((0..<Int(rank)).compactMap { _ in m.readInteger(UInt32.self, endianness: .little).map(UInt64.init) }),
              chunk.count == Int(rank) else {
            throw ClipSafetyError.malformed("HDF5: the chunked layout of \(s.what) is cut short")
        }
        let chunkBytes = try checkChunkShape(chunk, s)
        if btree == geometry.undefinedAddress {
            guard s.bytes == 0 else { throw Self.noData(s) }
            return
        }
        try checkChunks(btree: btree, chunk: Array(chunk.dropLast()), chunkBytes: chunkBytes, s)
    }

    /// A version 4 chunked layout: flags, rank, width of a dimension, dimensions, index type
    /// and its fields, index address.
    mutating func checkChunkedV4(_ m: inout ByteCursor, _ s: HDF5DatasetShape) throws {
        let cut = ClipSafetyError.malformed("HDF5: the chunked layout of \(s.what) is cut short")
        guard let flags = m.readInteger(UInt8.self, endianness: .little), let rank = m.readInteger(UInt8.self, endianness: .little),
              let width = m.readInteger(UInt8.self, endianness: .little), (1...8).contains(width),
              let chunk = Optional((0..<Int(rank)).compactMap { _ in m.readUnsigned(width: Int(width)) }), chunk.count == Int(rank),
              let index = m.readInteger(UInt8.self, endianness: .little) else { throw cut }
        let chunkBytes = try checkChunkShape(chunk, s)
        switch index {
        case 1: try checkSingleChunk(&m, filtered: flags & 0x02 != 0, chunk: Array(chunk.dropLast()), chunkBytes: chunkBytes, s)
        case 2: try checkImplicitChunks(&m, chunk: Array(chunk.dropLast()), chunkBytes: chunkBytes, s)
        default:
            throw ClipSafetyError.unsupported("HDF5: \(s.what) indexes its chunks with a fixed array, extensible array or version 2 B-tree (index type \(index)), which is not read")
        }
    }

    /// libhdf5 allocates a whole chunk to read one: the chunk must match the dataset's rank and
    /// element size, and its bytes pass checkChunkSize. Returns the chunk's bytes.
    private func checkChunkShape(_ chunk: [UInt64], _ s: HDF5DatasetShape) throws -> UInt64 {
        guard chunk.count == s.dims.count + 1, chunk.last == s.elementSize, !chunk.contains(0) else {
            throw ClipSafetyError.malformed("HDF5: the chunks of \(s.what) (\(chunk)) do not match its \(s.dims.count) dimensions of \(s.elementSize)-byte elements")
        }
        let chunkBytes = try Self.chunkBytes(chunk, s)
        try checkChunkSize(chunkBytes, s)
        return chunkBytes
    }

    /// One chunk covering the whole extent, its size and filter mask in the layout when filtered.
    private func checkSingleChunk(_ m: inout ByteCursor, filtered: Bool, chunk: [UInt64], chunkBytes: UInt64, _ s: HDF5DatasetShape) throws {
        var size = chunkBytes, mask: UInt32 = 0
        if filtered {
            guard let sz = geometry.readLength(&m), let mk = m.readInteger(UInt32.self, endianness: .little) else {
                throw ClipSafetyError.malformed("HDF5: the single-chunk index of \(s.what) is cut short")
            }
            (size, mask) = (sz, mk)
        }
        guard let address = geometry.readAddress(&m) else { throw ClipSafetyError.malformed("HDF5: the single-chunk index of \(s.what) is cut short") }
        if address == geometry.undefinedAddress {
            guard s.bytes == 0 else { throw Self.noData(s) }
            return
        }
        guard chunk == s.dims else { throw ClipSafetyError.malformed("HDF5: the single chunk of \(s.what) (\(chunk)) is not its extent \(s.dims)") }
        try checkChunkStorage(size: size, mask: mask, address: address, chunkBytes: chunkBytes, s)
    }

    /// Unfiltered chunks stored one after another from the index address, all of them.
    private func checkImplicitChunks(_ m: inout ByteCursor, chunk: [UInt64], chunkBytes: UInt64, _ s: HDF5DatasetShape) throws {
        guard s.filters.isEmpty, let address = geometry.readAddress(&m) else {
            throw ClipSafetyError.malformed("HDF5: the implicit chunk index of \(s.what) is cut short or filtered")
        }
        if address == geometry.undefinedAddress {
            guard s.bytes == 0 else { throw Self.noData(s) }
            return
        }
        let (total, overflow) = try Self.gridCount(chunk, s).multipliedReportingOverflow(by: chunkBytes)
        guard !overflow, geometry.contains(address, length: total) else {
            throw ClipSafetyError.malformed("HDF5: the chunks of \(s.what) at address \(address) run past the end of the file")
        }
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

    /// Checks the declared chunk size against the limits, the dataset and the file. A chunk may
    /// take a quarter of the limit on uncompressed bytes: while libhdf5 inflates one, it holds
    /// the chunk and a buffer it doubles as needed, beside the values read so far.
    private func checkChunkSize(_ chunkBytes: UInt64, _ s: HDF5DatasetShape) throws {
        let limit = UInt64(limits.maxUncompressedBytes / 4)
        guard chunkBytes <= limit else {
            throw ClipSafetyError.limitExceeded("HDF5: \(s.what) declares chunks of \(chunkBytes) bytes, over the \(limit) a chunk may take (a quarter of --max-uncompressed-bytes)")
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

    /// One chunk's B-tree key and address, placed on the grid inside the extent, its bytes
    /// checked by checkChunkStorage; returns the chunk's origin.
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
        try checkChunkStorage(size: UInt64(size), mask: mask, address: address, chunkBytes: chunkBytes, s)
        return Array(origin.dropLast())
    }

    /// A chunk of `size` bytes at `address` with filter `mask`, inside the file. When its
    /// Fletcher32 checksum is not skipped it must hold at least the 4 checksum bytes (libhdf5
    /// 1.10 subtracts 4 from the size unchecked and reads far out of bounds: SIGSEGV); when not
    /// deflated it must hold exactly the chunk's bytes (and checksum); when deflated its stream
    /// must inflate to exactly them (checkDeflatedChunk).
    private func checkChunkStorage(size: UInt64, mask: UInt32, address: UInt64, chunkBytes: UInt64, _ s: HDF5DatasetShape) throws {
        guard size > 0, geometry.contains(address, length: size) else {
            throw ClipSafetyError.malformed("HDF5: a chunk of \(s.what) (\(size) bytes at address \(address)) lies outside the file")
        }
        let active = s.filters.enumerated().filter { mask & (1 << UInt32($0.offset)) == 0 }.map(\.element)
        let checksum: UInt64 = active.contains(HDF5Filter.fletcher32) ? 4 : 0
        guard size >= checksum else {
            throw ClipSafetyError.malformed("HDF5: a chunk of \(s.what) holds \(size) bytes, fewer than its 4-byte Fletcher32 checksum")
        }
        // Without deflate, filters keep the size: the chunk is its bytes plus any checksum.
        guard active.contains(HDF5Filter.deflate) || size == chunkBytes + checksum else {
            throw ClipSafetyError.malformed("HDF5: a chunk of \(s.what) stores \(size) bytes, not its \(chunkBytes + checksum)")
        }
        try checkDeflatedChunk(size: size, address: address, active: active, chunkBytes: chunkBytes, s)
    }
}
