import CZip
import Foundation
import Runtime

/// A zip archive read in memory through libzip: nothing is extracted to disk.
///
/// Entry names are checked like untrusted paths (no absolute names, no `..` components), and
/// the uncompressed bytes read across all entries are capped by `ReaderLimits`, whatever sizes
/// the central directory declares.
public final class ZipArchive {
    public struct Entry: Sendable {
        public var index: Int
        public var name: String
        public var uncompressedSize: Int
        public var compressedSize: Int
    }

    public let entries: [Entry]
    /// Entry index by name (names are unique: a second entry of one name is refused).
    private let byName: [String: Int]
    private let archive: OpaquePointer
    private let buffer: UnsafeMutableRawPointer
    private let limits: ReaderLimits
    private var bytesRead = 0

    /// Opens an archive held in memory. With `refusingUnsafeNames` false (for `scan`, which
    /// reports such names), absolute, `..` and drive-letter names are listed, not refused;
    /// nothing is ever extracted, so listing them is harmless.
    public init(bytes: Data, limits: ReaderLimits = .init(), refusingUnsafeNames: Bool = true) throws {
        self.limits = limits
        // The end-of-central-directory record alone is 22 bytes; libzip treats less as empty.
        guard bytes.count >= 22 else {
            throw ClipSafetyError.truncated("zip: \(bytes.count) bytes is too short for a zip archive")
        }
        let count = Swift.max(bytes.count, 1)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 16)
        bytes.withUnsafeBytes { if let b = $0.baseAddress { buffer.copyMemory(from: b, byteCount: bytes.count) } }
        self.buffer = buffer
        var error = zip_error_t()
        zip_error_init(&error)
        defer { zip_error_fini(&error) }
        guard let source = zip_source_buffer_create(buffer, zip_uint64_t(bytes.count), 0, &error) else {
            buffer.deallocate()
            throw ClipSafetyError.io("zip: cannot create a memory source")
        }
        guard let za = zip_open_from_source(source, ZIP_RDONLY | ZIP_CHECKCONS, &error) else {
            // libzip refuses a second entry of one name as "file already exists": say what it means.
            let message = zip_error_code_zip(&error) == ZIP_ER_EXISTS
                ? "two entries have the same name (readers disagree on which one counts)"
                : String(cString: zip_error_strerror(&error))
            zip_source_free(source)
            buffer.deallocate()
            throw ClipSafetyError.malformed("zip: \(message)")
        }
        archive = za
        var list: [Entry] = []
        var byName: [String: Int] = [:]
        let n = zip_get_num_entries(za, 0)
        for i in 0..<Swift.max(n, 0) {
            var st = zip_stat_t()
            zip_stat_init(&st)
            guard zip_stat_index(za, zip_uint64_t(i), 0, &st) == 0, let cname = st.name else {
                zip_discard(za)
                buffer.deallocate()
                throw ClipSafetyError.malformed("zip: cannot read entry \(i)")
            }
            let name = String(cString: cname)
            if refusingUnsafeNames, let reason = Self.unsafeNameReason(name) {
                zip_discard(za)
                buffer.deallocate()
                throw ClipSafetyError.unsafe("zip: entry '\(name)' \(reason)")
            }
            if refusingUnsafeNames, let reason = Self.unsafeEntryReason(za, index: i, name: name, seen: byName) {
                zip_discard(za)
                buffer.deallocate()
                throw ClipSafetyError.unsafe("zip: entry '\(name)' \(reason)")
            }
            if byName[name] == nil { byName[name] = list.count }
            list.append(Entry(index: Int(i), name: name,
                              uncompressedSize: Int(clamping: st.size),
                              compressedSize: Int(clamping: st.comp_size)))
        }
        entries = list
        self.byName = byName
    }

    /// Why an entry is refused besides its name: a second entry of one name (Python's zipfile
    /// reads the last, libzip the first, so two readers would see two models), or a symbolic
    /// link (an extractor would follow it out of the folder).
    private static func unsafeEntryReason(_ za: OpaquePointer, index: Int64, name: String, seen: [String: Int]) -> String? {
        if seen[name] != nil { return "appears twice in the archive" }
        var system: zip_uint8_t = 0
        var attributes: zip_uint32_t = 0
        if zip_file_get_external_attributes(za, zip_uint64_t(index), 0, &system, &attributes) == 0,
           system == zip_uint8_t(ZIP_OPSYS_UNIX), (attributes >> 16) & 0o170000 == 0o120000 {
            return "is a symbolic link"
        }
        return nil
    }

    deinit {
        zip_discard(archive)
        buffer.deallocate()
    }

    /// Why an entry name is refused, or nil when it is a plain relative path.
    static func unsafeNameReason(_ name: String) -> String? {
        if name.hasPrefix("/") || name.hasPrefix("\\") { return "has an absolute path" }
        if name.count >= 2, name.dropFirst().first == ":" { return "has a drive-letter path" }
        let parts = name.split(whereSeparator: { $0 == "/" || $0 == "\\" })
        if parts.contains("..") { return "has a '..' component" }
        if name.utf8.contains(0) { return "has a NUL byte" }
        return nil
    }

    public func entry(named name: String) -> Entry? { byName[name].map { entries[$0] } }

    /// The Unix mode bits an entry's external attributes hold, when a Unix system wrote it
    /// (`0o120000` in the file-type bits is a symbolic link); nil otherwise.
    public func unixMode(of entry: Entry) -> UInt32? {
        var system: zip_uint8_t = 0
        var attributes: zip_uint32_t = 0
        guard zip_file_get_external_attributes(archive, zip_uint64_t(entry.index), 0, &system, &attributes) == 0,
              system == zip_uint8_t(ZIP_OPSYS_UNIX) else { return nil }
        return attributes >> 16
    }

    /// The first `count` bytes of an entry (fewer when it is shorter), counted against the
    /// uncompressed limit like a whole read.
    public func readPrefix(_ entry: Entry, count: Int) throws -> Data {
        let want = Swift.min(count, entry.uncompressedSize)
        guard want <= limits.maxUncompressedBytes - bytesRead else {
            throw ClipSafetyError.limitExceeded("zip: reading '\(entry.name)' goes over the uncompressed limit of \(limits.maxUncompressedBytes) bytes")
        }
        guard want > 0 else { return Data() }
        guard let file = zip_fopen_index(archive, zip_uint64_t(entry.index), 0) else {
            throw ClipSafetyError.malformed("zip: cannot open entry '\(entry.name)': \(String(cString: zip_strerror(archive)))")
        }
        defer { zip_fclose(file) }
        var scratch = [UInt8](repeating: 0, count: want)
        let n = scratch.withUnsafeMutableBytes { zip_fread(file, $0.baseAddress, zip_uint64_t(want)) }
        guard n >= 0 else {
            throw ClipSafetyError.malformed("zip: entry '\(entry.name)' is corrupt: \(String(cString: zip_file_strerror(file)))")
        }
        bytesRead += Int(n)
        return Data(scratch[0..<Int(n)])
    }

    /// Reads a whole entry. The read stops at the limit even if the header understates the size.
    public func read(_ entry: Entry) throws -> Data {
        let budget = limits.maxUncompressedBytes - bytesRead
        guard entry.uncompressedSize <= budget else {
            throw ClipSafetyError.limitExceeded("zip: entry '\(entry.name)' declares \(entry.uncompressedSize) bytes, over the remaining uncompressed limit of \(budget) (raise with --max-uncompressed-bytes)")
        }
        guard let file = zip_fopen_index(archive, zip_uint64_t(entry.index), 0) else {
            throw ClipSafetyError.malformed("zip: cannot open entry '\(entry.name)': \(String(cString: zip_strerror(archive)))")
        }
        defer { zip_fclose(file) }
        var out = Data()
        out.reserveCapacity(entry.uncompressedSize)
        // Never ask for more than one byte past the declared size.
        let chunk = Swift.min(1 << 16, entry.uncompressedSize + 1)
        var scratch = [UInt8](repeating: 0, count: chunk)
        while true {
            let n = scratch.withUnsafeMutableBytes { zip_fread(file, $0.baseAddress, zip_uint64_t(chunk)) }
            if n < 0 {
                throw ClipSafetyError.malformed("zip: entry '\(entry.name)' is corrupt: \(String(cString: zip_file_strerror(file)))")
            }
            if n == 0 { break }
            // A member that inflates past the size its headers declare is a bomb or corrupt:
            // stop at the first byte over, instead of inflating on up to the limit.
            guard out.count + Int(n) <= entry.uncompressedSize else {
                throw ClipSafetyError.malformed("zip: entry '\(entry.name)' inflates past the \(entry.uncompressedSize) bytes its header declares")
            }
            guard out.count + Int(n) <= budget else {
                throw ClipSafetyError.limitExceeded("zip: entry '\(entry.name)' inflates past the uncompressed limit of \(limits.maxUncompressedBytes) bytes")
            }
            out.append(contentsOf: scratch[0..<Int(n)])
        }
        guard out.count == entry.uncompressedSize else {
            throw ClipSafetyError.malformed("zip: entry '\(entry.name)' inflates to \(out.count) bytes, not the \(entry.uncompressedSize) its header declares")
        }
        bytesRead += out.count
        return out
    }

    public func read(named name: String) throws -> Data? {
        guard let e = entry(named: name) else { return nil }
        return try read(e)
    }

    /// Writes a zip of stored (uncompressed) members to `path` through an `AtomicFile`.
    public static func write(members: [(name: String, data: Data)], to path: String) throws {
        try AtomicFile.write(try archive(members), to: path)
    }

    /// The bytes of a zip of stored members, built by libzip in memory.
    static func archive(_ members: [(name: String, data: Data)]) throws -> Data {
        var error = zip_error_t()
        zip_error_init(&error)
        defer { zip_error_fini(&error) }
        guard let sink = zip_source_buffer_create(nil, 0, 0, &error) else { throw ClipSafetyError.io("zip: cannot create a buffer") }
        defer { zip_source_free(sink) }
        zip_source_keep(sink)
        guard let za = zip_open_from_source(sink, ZIP_TRUNCATE, &error) else {
            throw ClipSafetyError.io("zip: cannot start an archive")
        }
        // libzip reads the member buffers at zip_close; keep them alive until then.
        var buffers: [UnsafeMutableRawPointer] = []
        defer { buffers.forEach { $0.deallocate() } }
        for m in members {
            let p = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(m.data.count, 1), alignment: 16)
            buffers.append(p)
            m.data.withUnsafeBytes { if let b = $0.baseAddress { p.copyMemory(from: b, byteCount: m.data.count) } }
            try add(m.name, bytes: p, count: m.data.count, to: za)
        }
        guard zip_close(za) == 0 else {
            let message = String(cString: zip_strerror(za))
            zip_discard(za)
            throw ClipSafetyError.io("zip: cannot write: \(message)")
        }
        return try contents(of: sink)
    }

    private static func add(_ name: String, bytes: UnsafeMutableRawPointer, count: Int, to za: OpaquePointer) throws {
        guard let src = zip_source_buffer(za, bytes, zip_uint64_t(count), 0) else {
            zip_discard(za)
            throw ClipSafetyError.io("zip: cannot add \(name)")
        }
        let idx = zip_file_add(za, name, src, zip_flags_t(ZIP_FL_ENC_UTF_8 | ZIP_FL_OVERWRITE))
        guard idx >= 0 else {
            zip_source_free(src)
            zip_discard(za)
            throw ClipSafetyError.io("zip: cannot add \(name)")
        }
        zip_set_file_compression(za, zip_uint64_t(idx), ZIP_CM_STORE, 0)
    }

    /// Everything written to an in-memory libzip source.
    private static func contents(of source: OpaquePointer) throws -> Data {
        var st = zip_stat_t()
        zip_stat_init(&st)
        guard zip_source_stat(source, &st) == 0, zip_source_open(source) == 0 else {
            throw ClipSafetyError.io("zip: cannot read the built archive")
        }
        defer { zip_source_close(source) }
        var data = Data(count: Int(st.size))
        let read = data.withUnsafeMutableBytes { raw in
            raw.baseAddress.map { zip_source_read(source, $0, st.size) } ?? 0
        }
        guard read == Int64(st.size) else { throw ClipSafetyError.io("zip: short read of the built archive") }
        return data
    }
}
