import CZlib
import Foundation
import Runtime

/// Deflated chunks, inflated here before libhdf5 sees them: libhdf5 1.10's deflate filter
/// doubles its output buffer for as long as the stream produces bytes, with no cap, so a chunk
/// of a few kilobytes could make it allocate gigabytes. Each stream is inflated with zlib into a
/// buffer one byte larger than the chunk's declared bytes, and must end exactly at them.
extension HDF5Preflight {
    /// Checks the deflate stream of a chunk stored as `size` bytes at `address`, whose active
    /// filters (pipeline order) are `active`, for a chunk of `chunkBytes` bytes.
    func checkDeflatedChunk(size: UInt64, address: UInt64, active: [UInt16], chunkBytes: UInt64, _ s: HDF5DatasetShape) throws {
        guard let deflate = active.firstIndex(of: HDF5Filter.deflate) else { return }
        guard active.filter({ $0 == HDF5Filter.deflate }).count == 1 else {
            throw ClipSafetyError.unsupported("HDF5: \(s.what) deflates its chunks twice")
        }
        // Fletcher32 after deflate checksums the stream (its 4 bytes follow it); before deflate,
        // the checksum is inside what the stream inflates to.
        let fletcher = active.firstIndex(of: HDF5Filter.fletcher32)
        let streamBytes = fletcher.map { $0 > deflate } == true ? size - 4 : size
        let expected = chunkBytes + (fletcher.map { $0 < deflate } == true ? 4 : 0)
        guard let start = geometry.offset(of: address) else {
            throw ClipSafetyError.malformed("HDF5: a chunk of \(s.what) lies outside the file")
        }
        let stream = geometry.image[(geometry.image.startIndex + start)...].prefix(Int(streamBytes))
        let produced = try Self.inflatedCount(stream, cap: Int(expected) + 1, what: s.what)
        guard produced == Int(expected) else {
            throw ClipSafetyError.malformed(produced > Int(expected)
                ? "HDF5: a deflated chunk of \(s.what) inflates past its \(expected) bytes (a deflate bomb; libhdf5 would keep doubling its buffer)"
                : "HDF5: a deflated chunk of \(s.what) inflates to \(produced) bytes, not its \(expected)")
        }
    }

    /// Inflates a zlib stream into at most `cap` bytes; returns how many it produced (`cap` when
    /// it would produce more). Throws when the stream is corrupt or ends early.
    static func inflatedCount(_ stream: Data, cap: Int, what: String) throws -> Int {
        var z = z_stream()
        guard inflateInit_(&z, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw ClipSafetyError.io("HDF5: zlib cannot start inflating")
        }
        defer { inflateEnd(&z) }
        let out = UnsafeMutablePointer<UInt8>.allocate(capacity: cap)
        defer { out.deallocate() }
        let status: Int32 = stream.withUnsafeBytes { raw in
            guard let base = raw.bindMemory(to: UInt8.self).baseAddress else { return Z_BUF_ERROR }
            z.next_in = UnsafeMutablePointer(mutating: base)
            z.avail_in = uInt(raw.count)
            z.next_out = out
            z.avail_out = uInt(cap)
            return inflate(&z, Z_FINISH)
        }
        let produced = cap - Int(z.avail_out)
        switch status {
        case Z_STREAM_END: return produced
        case Z_BUF_ERROR where z.avail_out == 0: return cap  // more to come: past the cap
        case Z_BUF_ERROR, Z_OK:
            throw ClipSafetyError.malformed("HDF5: a deflated chunk of \(what) ends before its stream does")
        default:
            throw ClipSafetyError.malformed("HDF5: a deflated chunk of \(what) is not a valid zlib stream")
        }
    }
}
