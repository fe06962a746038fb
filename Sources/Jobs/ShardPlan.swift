import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Converters
import Runtime

// Folder scoring (`clipsafety score … --input-dir DIR --output-dir OUT`): which shards to
// score, in which order, which are already done, and the files that record it. These types do
// no scoring; they are here (not in the CLI target) so unit tests can import them.

/// Natural order of file names, so that `img_emb_2` comes before `img_emb_10`.
///
/// Names are split into runs of ASCII digits and runs of anything else. Digit runs compare by
/// numeric value (any length: no integer parsing), other runs by Unicode scalar values. Names
/// equal under that rule (`a01`, `a1`) fall back to plain scalar order, so the order is total
/// and the same on every machine.
public enum NaturalOrder {
    public static func sorted(_ names: [String]) -> [String] {
        names.sorted(by: areInIncreasingOrder)
    }

    public static func areInIncreasingOrder(_ a: String, _ b: String) -> Bool {
        switch compare(a, b) {
        case -1: return true
        case 1: return false
        default: return Array(a.unicodeScalars.map(\.value)).lexicographicallyPrecedes(b.unicodeScalars.map(\.value))
        }
    }

    /// -1, 0 or 1 under the natural rule alone (0 for `a01` and `a1`).
    static func compare(_ a: String, _ b: String) -> Int {
        let x = runs(a), y = runs(b)
        for (p, q) in zip(x, y) {
            let c: Int
            if p.isDigits && q.isDigits {
                c = compareNumbers(p.scalars, q.scalars)
            } else {
                c = compareScalars(p.scalars, q.scalars)
            }
            if c != 0 { return c }
        }
        return x.count == y.count ? 0 : (x.count < y.count ? -1 : 1)
    }

    struct Run {
        var isDigits: Bool
        var scalars: [UInt32]
    }

    static func runs(_ s: String) -> [Run] {
        var out: [Run] = []
        for scalar in s.unicodeScalars {
            let digit = scalar.value >= 0x30 && scalar.value <= 0x39
            if var last = out.last, last.isDigits == digit {
                last.scalars.append(scalar.value)
                out[out.count - 1] = last
            } else {
                out.append(Run(isDigits: digit, scalars: [scalar.value]))
            }
        }
        return out
    }

    static func compareNumbers(_ a: [UInt32], _ b: [UInt32]) -> Int {
        let x = a.drop(while: { $0 == 0x30 }), y = b.drop(while: { $0 == 0x30 })
        if x.count != y.count { return x.count < y.count ? -1 : 1 }
        return compareScalars(Array(x), Array(y))
    }

    static func compareScalars(_ a: [UInt32], _ b: [UInt32]) -> Int {
        if a == b { return 0 }
        return a.lexicographicallyPrecedes(b) ? -1 : 1
    }
}

/// `--shard I/N`: shard k of the naturally sorted list belongs to partition k mod N.
/// The N partitions are disjoint and together hold every shard (array jobs: one I per task).
public struct ShardPartition: Equatable, Sendable, CustomStringConvertible {
    public let index: Int
    public let count: Int

    public init(index: Int, count: Int) throws {
        guard count >= 1, index >= 0, index < count else {
            throw ClipSafetyError.mismatch("--shard \(index)/\(count): need N ≥ 1 and 0 ≤ I < N")
        }
        self.index = index
        self.count = count
    }

    /// Parses `I/N` (decimal, no signs or spaces).
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2,
              parts.allSatisfy({ !$0.isEmpty && $0.count <= 9 && $0.allSatisfy { $0.isASCII && $0.isNumber } }),
              let i = Int(parts[0]), let n = Int(parts[1]) else {
            throw ClipSafetyError.mismatch("--shard takes I/N, e.g. 0/8 (got '\(text)')")
        }
        try self.init(index: i, count: n)
    }

    public func contains(position: Int) -> Bool { position % count == index }

    public var description: String { "\(index)/\(count)" }
}

/// The shards of one run: every matching file in natural order, and the ones this run scores.
public struct ShardPlan: Equatable, Sendable {
    /// Every shard in the folder, naturally sorted (file names, not paths).
    public let all: [String]
    /// The shards of this partition (all of them without one), in natural order.
    public let selected: [String]

    /// Orders `names` and picks the partition. Two inputs whose output names would be the
    /// same file (`a.npy`, `a.NPY` on a case-sensitive system) are refused.
    public init(names: [String], partition: ShardPartition? = nil) throws {
        let sorted = NaturalOrder.sorted(Array(Set(names)))
        var outputs: [String: String] = [:]
        for name in sorted {
            let out = Self.outputName(for: name)
            if let other = outputs.updateValue(name, forKey: out) {
                throw ClipSafetyError.mismatch("shards '\(other)' and '\(name)' would both be written to '\(out)'; narrow --glob")
            }
        }
        all = sorted
        selected = partition.map { p in sorted.enumerated().filter { p.contains(position: $0.offset) }.map(\.element) } ?? sorted
    }

    /// The output file of a shard: its name with the extension replaced by `.npy` (or the
    /// extension of `format`).
    public static func outputName(for shard: String, format: ScoreOutputFormat = .npy) -> String {
        let stem = (shard as NSString).deletingPathExtension
        return (stem.isEmpty ? shard : stem) + "." + format.rawValue
    }

    /// Names of the regular files (or links to them) directly in `directory` that match the
    /// shell pattern `glob` (`fnmatch`; a leading dot must be matched explicitly).
    public static func list(directory: String, glob: String) throws -> [String] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw ClipSafetyError.io("cannot list the folder: \(error.localizedDescription)")
        }
        return names.filter { name in
            guard fnmatch(glob, name, FNM_PERIOD) == 0 else { return false }
            var st = stat()
            return stat(directory + "/" + name, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
        }
    }
}

/// One line of `OUT/manifest.jsonl`: a shard that was scored, or that failed and why.
public struct ManifestEntry: Codable, Equatable, Sendable {
    public enum Status: String, Codable, Sendable { case done, failed }

    /// Input file name, relative to the input folder.
    public var shard: String
    public var status: Status
    /// Size of the input file when it was read.
    public var bytes: Int
    /// Rows scored (done only).
    public var rows: Int?
    /// Output file name, relative to the output folder (done only).
    public var output: String?
    /// SHA-256 of the output file (done only).
    public var sha256: String?
    /// Wall time spent on the shard.
    public var seconds: Double
    /// Why the shard failed (failed only).
    public var reason: String?
    /// The input check's finding for a shard that was scored anyway.
    public var warning: String?
    /// Rows holding NaN or infinity, which got no score (done only; absent when none).
    public var invalidRows: Int?
    /// What identifies the input's content: see `ShardFingerprint` (absent in older manifests,
    /// whose entries are then trusted by size alone).
    public var fingerprint: String?

    enum CodingKeys: String, CodingKey {
        case shard, status, bytes, rows, output, sha256, seconds, reason, warning, fingerprint
        case invalidRows = "invalid_rows"
    }

    public init(shard: String, status: Status, bytes: Int, rows: Int? = nil, output: String? = nil, sha256: String? = nil,
                seconds: Double, reason: String? = nil, warning: String? = nil, invalidRows: Int? = nil, fingerprint: String? = nil) {
        self.shard = shard
        self.status = status
        self.bytes = bytes
        self.rows = rows
        self.output = output
        self.sha256 = sha256
        self.seconds = seconds
        self.reason = reason
        self.warning = warning
        self.invalidRows = invalidRows
        self.fingerprint = fingerprint
    }

    /// The entry as one JSON line (keys sorted, ending in a newline).
    public func line() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = (try? encoder.encode(self)) ?? Data()
        data.append(0x0a)
        return data
    }
}

/// What `OUT/manifest.jsonl` says: the latest entry of each shard.
///
/// Lines are appended as shards finish, by one or several processes. A line that does not
/// decode (the torn tail of a killed or crashed run) is skipped; a later line for the same
/// shard replaces an earlier one.
public struct ShardManifest: Sendable {
    public private(set) var latest: [String: ManifestEntry] = [:]
    /// 1-based numbers of the lines that were not entries.
    public private(set) var skippedLines: [Int] = []
    /// False when the text ends inside a line (a torn last line).
    public private(set) var endsWithNewline = true
    private var lineCount = 0

    /// Skipped lines other than a torn last line: damage worth a warning.
    public var damagedLines: [Int] {
        skippedLines.filter { endsWithNewline || $0 != lineCount }
    }

    public init() {}

    public init(text: Data) {
        let decoder = JSONDecoder()
        var number = 0
        for line in text.split(separator: 0x0a, omittingEmptySubsequences: false) {
            number += 1
            if line.isEmpty { continue }
            if let entry = try? decoder.decode(ManifestEntry.self, from: Data(line)), !entry.shard.isEmpty {
                latest[entry.shard] = entry
            } else {
                skippedLines.append(number)
            }
        }
        endsWithNewline = text.isEmpty || text.last == 0x0a
        lineCount = number
    }

    /// Reads `path`; a missing file is an empty manifest.
    public init(contentsOf path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { self.init(); return }
        do {
            self.init(text: try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw ClipSafetyError.io("cannot read the manifest: \(error.localizedDescription)")
        }
    }

    /// The entry that makes `shard` done: its latest line says done for an input of
    /// `inputBytes` bytes with the same fingerprint (when it recorded one), and the output it
    /// names is in `outputDirectory` with that SHA-256.
    public func completed(_ shard: String, inputBytes: Int, fingerprint: String?, outputDirectory: String,
                          format: ScoreOutputFormat = .npy) -> ManifestEntry? {
        guard let e = latest[shard], e.status == .done, e.bytes == inputBytes,
              e.fingerprint == nil || e.fingerprint == fingerprint,
              let output = e.output, output == ShardPlan.outputName(for: shard, format: format), let sha = e.sha256,
              let bytes = try? MappedFile.map(outputDirectory + "/" + output),
              sha256Hex(bytes) == sha else { return nil }
        return e
    }
}

/// Appends manifest lines: one `write` of a whole line on an `O_APPEND` descriptor under an
/// exclusive `flock`, then `fsync`, so lines of concurrent writers never interleave and a
/// finished line survives a crash. A torn last line (a killed writer) is cut off when the
/// manifest is opened, under the same lock, so it does not stay in the file.
public final class ManifestAppender {
    private let fd: Int32

    /// Opens (creating) `path`; when `endsWithNewline` is false, repairs the torn tail.
    public init(path: String, endsWithNewline: Bool) throws {
        fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ClipSafetyError.io("cannot open the manifest: \(String(cString: strerror(errno)))") }
        if !endsWithNewline { try locked { try cutTornTail() } }
    }

    public func append(_ entry: ManifestEntry) throws {
        let line = entry.line()
        try locked {
            try line.withUnsafeBytes { raw in
                let n = Glibc.write(fd, raw.baseAddress, raw.count)
                guard n == raw.count else {
                    throw ClipSafetyError.io("cannot append to the manifest: \(n < 0 ? String(cString: strerror(errno)) : "short write")")
                }
            }
        }
        guard fsync(fd) == 0 else { throw ClipSafetyError.io("cannot sync the manifest: \(String(cString: strerror(errno)))") }
    }

    private func locked(_ body: () throws -> Void) throws {
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw ClipSafetyError.io("cannot lock the manifest: \(String(cString: strerror(errno)))") }
        }
        defer { flock(fd, LOCK_UN) }
        try body()
    }

    /// Truncates the file after its last newline (re-read under the lock: another writer may
    /// have finished a line since the caller looked), searching back 64 KiB at a time.
    private func cutTornTail() throws {
        var end = Int(lseek(fd, 0, SEEK_END))
        let size = end
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var keep = 0
        search: while end > 0 {
            let start = Swift.max(0, end - chunk.count)
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, end - start, off_t(start)) }
            guard n == end - start else { throw ClipSafetyError.io("cannot read the manifest's last line: \(String(cString: strerror(errno)))") }
            for i in stride(from: n - 1, through: 0, by: -1) where chunk[i] == 0x0a {
                keep = start + i + 1
                break search
            }
            end = start
        }
        guard keep < size else { return }
        guard ftruncate(fd, off_t(keep)) == 0 else {
            throw ClipSafetyError.io("cannot repair the manifest's torn last line: \(String(cString: strerror(errno)))")
        }
    }

    deinit { close(fd) }
}

/// What tells a rerun that a shard's content changed, without reading all of it: size,
/// modification time (ns) and the SHA-256 of its first and last MiB. A rewritten shard gets a
/// new mtime; an edit that keeps both size and mtime must also keep both ends to go unseen.
/// Hashing whole shards (1.5 GB each at LAION scale) would cost a rerun as much as scoring.
public enum ShardFingerprint {
    static let edge = 1 << 20

    public static func of(_ path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0, let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let size = Int(st.st_size)
        var hasher = SHA256()
        guard let head = try? handle.read(upToCount: min(edge, size)) else { return nil }
        hasher.update(data: head)
        if size > edge {
            guard (try? handle.seek(toOffset: UInt64(max(size - edge, edge)))) != nil,
                  let tail = try? handle.readToEnd() else { return nil }
            hasher.update(data: tail)
        }
        let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        return "\(size):\(mtime):" + hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

/// `OUT/columns.json`: the column layout of every output file and what produced it (model
/// file names and SHA-256, `--normalize`). A folder holds outputs of one such layout only.
public struct FolderColumns: Codable, Equatable, Sendable {
    public struct Model: Codable, Equatable, Sendable {
        /// The model's file name (no folder: the same model may sit elsewhere on each machine).
        public var file: String
        /// SHA-256 of the model file's bytes.
        public var sha256: String
        /// The model card's name and output columns.
        public var name: String
        public var columns: [String]

        public init(file: String, sha256: String, name: String, columns: [String]) {
            self.file = file
            self.sha256 = sha256
            self.name = name
            self.columns = columns
        }
    }

    public var format = "clipsafety-folder/1"
    /// Every column of an output, in order: `<model file stem>/<card column>`.
    public var columns: [String]
    public var models: [Model]
    public var normalize: Bool
    /// Element type of the outputs.
    public var dtype = "float32"
    /// `parquet` when the outputs are Parquet score files (absent: `.npy` matrices).
    public var output: String?

    public init(models: [Model], normalize: Bool) {
        self.models = models
        self.normalize = normalize
        columns = models.flatMap { m in m.columns.map { Self.stem(m.file) + "/" + $0 } }
    }

    /// A model file's name without its extension: the prefix of its columns.
    public static func stem(_ file: String) -> String {
        let s = (file as NSString).deletingPathExtension
        return s.isEmpty ? file : s
    }

    /// Deterministic bytes: sorted keys, indented, newline-terminated.
    public func encoded() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        var data = (try? encoder.encode(self)) ?? Data()
        data.append(0x0a)
        return data
    }

    /// Writes `path` when it does not exist (atomically: a whole file or none, also against a
    /// concurrent writer), or checks that the one there describes the same layout.
    public func writeOrCheck(at path: String) throws {
        if !FileManager.default.fileExists(atPath: path) {
            let file = try AtomicFile(path: path)
            try file.write(encoded())
            if try file.commitIfAbsent() { return }
        }
        let existing: FolderColumns
        do {
            existing = try JSONDecoder().decode(FolderColumns.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw ClipSafetyError.malformed("columns.json is not a clipsafety column list: \(error.localizedDescription)")
        }
        guard existing == self else {
            throw ClipSafetyError.mismatch("this folder holds scores of \(existing.summary), not \(summary); use another --output-dir")
        }
    }

    var summary: String {
        models.map { "\($0.file) (\($0.sha256.prefix(12)))" }.joined(separator: " + ") + (normalize ? " with --normalize" : "")
            + (output.map { " as \($0)" } ?? "")
    }
}

/// One shard's output: a float32 `.npy` of `rows × columns`, streamed into an `AtomicFile`
/// while its SHA-256 is computed, committed into place by `finish()`.
public final class ShardOutputFile {
    public let path: String
    private let file: AtomicFile
    private var hasher = SHA256()
    private let expectedBytes: Int
    private var writtenBytes = 0

    public init(path: String, rows: Int, columns: Int) throws {
        guard let (_, bytes) = checkedByteCount(shape: [rows, columns], dtype: 4) else {
            throw ClipSafetyError.limitExceeded("an output of \(rows) × \(columns) overflows")
        }
        self.path = path
        file = try AtomicFile(path: path)
        let header = NpyArray.headerBytes(dtype: .f4, shape: [rows, columns])
        expectedBytes = header.count + bytes
        try append(header)
    }

    /// Appends row-major float32 scores.
    public func append(_ scores: UnsafeBufferPointer<Float>) throws {
        try append(Data(buffer: scores))
    }

    private func append(_ data: Data) throws {
        guard writtenBytes + data.count <= expectedBytes else {
            throw ClipSafetyError.mismatch("more scores than the output's \(expectedBytes) bytes")
        }
        try file.write(data)
        hasher.update(data: data)
        writtenBytes += data.count
    }

    /// Commits the file into place; returns its SHA-256.
    public func finish() throws -> String {
        guard writtenBytes == expectedBytes else {
            file.discard()
            throw ClipSafetyError.mismatch("output has \(writtenBytes) of \(expectedBytes) bytes")
        }
        try file.commit()
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// Removes the temporary; `path` is left as it was.
    public func abandon() {
        file.discard()
    }
}
