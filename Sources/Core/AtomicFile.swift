import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An output file that appears whole or not at all.
///
/// The bytes go to a temporary created with `O_EXCL` in the target's own folder (so the final
/// rename never crosses file systems); `commit` syncs the file, renames it over the target and
/// syncs the folder. A temporary is removed on any failure, when the value is dropped without
/// a commit, and, once `Interrupts.install()` has run, on SIGINT or SIGTERM.
public final class AtomicFile {
    /// The path the file will have once committed.
    public let path: String
    /// The temporary being written.
    public let temporaryPath: String
    /// Writes go here until `commit`.
    public let handle: FileHandle
    private var finished = false

    /// Creates the temporary beside `path`. Throws `.cannotCreate` when its folder is missing
    /// or not writable.
    public init(path: String) throws {
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
            throw ClipSafetyError.cannotCreate("output folder \(folder) does not exist")
        }
        let name = "." + url.lastPathComponent + Self.marker + "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let temporary = (folder as NSString).appendingPathComponent(name)
        let fd = TemporaryFiles.shared.create(temporary)
        guard fd >= 0 else {
            throw ClipSafetyError.cannotCreate("cannot create \(temporary): \(String(cString: strerror(errno)))")
        }
        self.path = path
        self.temporaryPath = temporary
        self.handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    deinit { discard() }

    /// Appends `data` to the temporary, retrying short and interrupted writes.
    public func write(_ data: Data) throws {
        let fd = handle.fileDescriptor
        try data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw ClipSafetyError.io("cannot write \(temporaryPath): \(String(cString: strerror(errno)))") }
                offset += n
            }
        }
    }

    /// Syncs the temporary, renames it to `path` and syncs the folder. On failure the
    /// temporary is removed and `path` is left as it was.
    public func commit() throws {
        guard !finished else { return }
        finished = true
        do {
            try handle.synchronize()
            try handle.close()
        } catch {
            try? handle.close()
            TemporaryFiles.shared.remove(temporaryPath)
            throw ClipSafetyError.io("cannot write \(temporaryPath): \(error.localizedDescription)")
        }
        try TemporaryFiles.shared.rename(temporaryPath, to: path)
        Self.syncFolder(of: path)
    }

    /// Like `commit`, but never replaces an existing `path` (a hard link, atomic against other
    /// writers). Returns false, and removes the temporary, when `path` already existed.
    public func commitIfAbsent() throws -> Bool {
        guard !finished else { return true }
        finished = true
        defer { TemporaryFiles.shared.remove(temporaryPath) }
        do {
            try handle.synchronize()
            try handle.close()
        } catch {
            try? handle.close()
            throw ClipSafetyError.io("cannot write \(temporaryPath): \(error.localizedDescription)")
        }
        if link(temporaryPath, path) == 0 {
            Self.syncFolder(of: path)
            return true
        }
        if errno == EEXIST { return false }
        throw ClipSafetyError.io("cannot link \(temporaryPath) into place: \(String(cString: strerror(errno)))")
    }

    /// Removes the temporary; `path` is left as it was. Does nothing after `commit`.
    public func discard() {
        guard !finished else { return }
        finished = true
        try? handle.close()
        TemporaryFiles.shared.remove(temporaryPath)
    }

    /// Writes `data` to `path` atomically.
    public static func write(_ data: Data, to path: String) throws {
        try write(to: path) { try $0.write(contentsOf: data) }
    }

    /// Runs `body` on the temporary's handle and commits when it returns; any error discards.
    public static func write(to path: String, _ body: (FileHandle) throws -> Void) throws {
        let file = try AtomicFile(path: path)
        do {
            try body(file.handle)
        } catch {
            file.discard()
            if let e = error as? ClipSafetyError { throw e }
            throw ClipSafetyError.io("cannot write \(file.temporaryPath): \(error.localizedDescription)")
        }
        try file.commit()
    }

    /// `.tmp-HOST-`: temporaries are `.NAME.tmp-HOST-PID-RANDOM`, so a rerun can tell its own
    /// host's leftovers of dead processes from those of live writers.
    static let marker = ".tmp-\(HostName.current)-"

    /// Removes temporaries in `folder` left by processes of this host that no longer run (a
    /// kill -9, a power cut). Returns how many were removed.
    @discardableResult
    public static func removeStale(in folder: String) -> Int {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return 0 }
        var removed = 0
        for name in names where name.hasPrefix(".") {
            guard let range = name.range(of: marker, options: .backwards),
                  let pid = Int32(name[range.upperBound...].prefix { $0 != "-" }), pid > 0 else { continue }
            if pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH { continue }
            if unlink(folder + "/" + name) == 0 { removed += 1 }
        }
        return removed
    }

    /// fsync of the folder holding `path`, so the rename itself survives a crash.
    static func syncFolder(of path: String) {
        let folder = (path as NSString).deletingLastPathComponent
        let fd = open(folder.isEmpty ? "." : folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}

/// This machine's name, made safe for a file name.
enum HostName {
    static let current: String = {
        var buf = [CChar](repeating: 0, count: 256)
        let name = gethostname(&buf, 255) == 0 ? String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "host"
        let safe = String(name.unicodeScalars.map { CharacterSet.alphanumerics.contains($0) || $0 == "-" || $0 == "." ? Character($0) : "_" })
        return safe.isEmpty ? "host" : safe
    }()
}

/// The temporaries not yet committed, so an interrupt can remove them. Creating, renaming and
/// removing hold one lock, so a signal never races a rename.
final class TemporaryFiles: @unchecked Sendable {
    static let shared = TemporaryFiles()
    private let lock = NSLock()
    private var paths: Set<String> = []

    func create(_ path: String) -> Int32 {
        lock.lock(); defer { lock.unlock() }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd >= 0 { paths.insert(path) }
        return fd
    }

    func rename(_ temporary: String, to path: String) throws {
        lock.lock(); defer { lock.unlock() }
        paths.remove(temporary)
        guard Glibc.rename(temporary, path) == 0 else {
            let message = String(cString: strerror(errno))
            unlink(temporary)
            throw ClipSafetyError.io("cannot rename \(temporary) into place: \(message)")
        }
    }

    func remove(_ path: String) {
        lock.lock(); defer { lock.unlock() }
        if paths.remove(path) != nil { unlink(path) }
    }

    /// Removes every temporary and never returns the lock: the process is about to exit.
    func removeAllForExit() {
        lock.lock()
        for p in paths { unlink(p) }
        paths.removeAll()
    }
}

/// SIGINT and SIGTERM handling for the command-line tool: remove every uncommitted temporary,
/// then exit 130 or 143. Libraries never install it; a process calls `install()` once.
public enum Interrupts {
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []

    public static func install() {
        guard sources.isEmpty else { return }
        let queue = DispatchQueue(label: "clipsafety.interrupts")
        for (signo, code) in [(SIGINT, ExitStatus.interrupted), (SIGTERM, ExitStatus.terminated)] {
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: queue)
            source.setEventHandler {
                TemporaryFiles.shared.removeAllForExit()
                _exit(code.rawValue)
            }
            source.resume()
            sources.append(source)
        }
    }
}
