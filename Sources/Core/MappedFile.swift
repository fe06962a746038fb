import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Read-only bytes of a file, memory-mapped so that large inputs cost address space, not RAM.
///
/// `data` does not copy: it points into the mapping, which lives as long as any `Data` made
/// from it (the deallocator unmaps).
public enum MappedFile {
    /// Maps `path` read-only after checking its size against `limits.maxFileBytes`.
    public static func map(_ path: String, limits: ReaderLimits) throws -> Data {
        try map(path, maxBytes: limits.maxFileBytes)
    }

    /// Maps `path` read-only. Missing files throw `.missingFile`; files above `maxBytes`
    /// `.limitExceeded`; other failures `.io`.
    public static func map(_ path: String, maxBytes: Int = .max) throws -> Data {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            if e == ENOENT || e == ENOTDIR {
                throw ClipSafetyError(.missingFile, "no such file")
            }
            throw ClipSafetyError.io("cannot open: \(String(cString: strerror(e)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ClipSafetyError.io("cannot stat: \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw ClipSafetyError.io("not a regular file") }
        let size = Int(st.st_size)
        guard size <= maxBytes else {
            throw ClipSafetyError.limitExceeded("file of \(size) bytes exceeds the limit of \(maxBytes) (raise with --max-file-bytes)")
        }
        if size == 0 { return Data() }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw ClipSafetyError.io("cannot map: \(String(cString: strerror(errno)))")
        }
        return Data(bytesNoCopy: p, count: size, deallocator: .custom { ptr, n in munmap(ptr, n) })
    }

    /// `madvise(MADV_DONTNEED)` on the whole pages of `data[0..<end]`; `data` must be part of a
    /// read-only private file mapping made by `map`.
    public static func releasePages(of data: Data, upTo end: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        data.withUnsafeBytes { raw in
            guard let base = raw.baseAddress, end > 0 else { return }
            let start = (Int(bitPattern: base) + page - 1) / page * page
            let stop = (Int(bitPattern: base) + Swift.min(end, raw.count)) / page * page
            guard stop > start, let p = UnsafeMutableRawPointer(bitPattern: start) else { return }
            madvise(p, stop - start, MADV_DONTNEED)
        }
    }
}
