import Converters
import Foundation
import Runtime

/// What a folder run tells its caller while it works: progress and one-line messages
/// (warnings, failed shards). The CLI draws a progress line; tests collect the messages.
public protocol FolderObserver: AnyObject {
    func started(shards: Int, bytes: Int)
    func scored(rows: Int, bytes: Int)
    func finishedShard(bytes: Int)
    func message(_ line: String)
    func finished()
}

/// How a folder run ended.
public struct FolderSummary: Sendable, Equatable {
    /// Shards the glob matched, and those of them this run's partition selected.
    public var matched = 0
    public var selected = 0
    public var scored = 0
    public var skipped = 0
    public var failed = 0
    public var rows = 0
    /// Rows of the shards scored in this run that got no score (NaN or infinity in the input).
    public var invalidRows = 0

    public init(matched: Int = 0, selected: Int = 0, scored: Int = 0, skipped: Int = 0, failed: Int = 0, rows: Int = 0) {
        self.matched = matched
        self.selected = selected
        self.scored = scored
        self.skipped = skipped
        self.failed = failed
        self.rows = rows
    }
}

/// `score MODEL [--model MODEL2 …] --input-dir DIR --output-dir OUT`: every `.npy` shard of a
/// folder, each read once for all the models, each written as `OUT/<shard>.npy` and recorded
/// in `OUT/manifest.jsonl` so that a rerun skips what is done (README, "Scoring a folder").
public struct FolderScoring {
    public var modelPaths: [String]
    public var inputDir: String
    public var outputDir: String
    public var partition: ShardPartition?
    public var glob: String
    public var batch: Int
    public var checks: InputCheckSettings
    public var limits: ReaderLimits
    public var threads: Int?
    /// `.npy` (a float32 matrix per shard) or `.parquet` (README, "Parquet output").
    public var outputFormat: ScoreOutputFormat = .npy
    /// Where each shard's metadata is, to copy columns of it into Parquet outputs.
    public var metadata: MetadataJoin?

    public static let defaultGlob = "*.npy"

    public init(modelPaths: [String], inputDir: String, outputDir: String, partition: ShardPartition? = nil,
                glob: String = FolderScoring.defaultGlob, batch: Int = 4096, checks: InputCheckSettings = .init(),
                limits: ReaderLimits = .init(), threads: Int? = nil) {
        self.modelPaths = modelPaths
        self.inputDir = inputDir
        self.outputDir = outputDir
        self.partition = partition
        self.glob = glob
        self.batch = batch
        self.checks = checks
        self.limits = limits
        self.threads = threads
    }

    /// Checks the argument values that need no file: model names give distinct column
    /// prefixes, `--shard` parses, the pattern is not empty, the format is one a folder holds.
    public static func validate(models: [String], shard: String?, glob: String?, format: ScoreOutputFormat = .npy,
                                metadata: Bool = false) throws {
        guard format == .npy || format == .parquet else { throw ClipSafetyError.usage("--format is npy or parquet") }
        if metadata && format != .parquet { throw ClipSafetyError.usage("--metadata-dir needs --format parquet") }
        var stems: [String: String] = [:]
        for path in models {
            let stem = FolderColumns.stem((path as NSString).lastPathComponent)
            if let other = stems.updateValue(path, forKey: stem) {
                throw ClipSafetyError.usage("models '\(other)' and '\(path)' would both name their columns '\(stem)/…'; give one another file name")
            }
        }
        if let shard {
            do { _ = try ShardPartition(parsing: shard) } catch let e as ClipSafetyError { throw ClipSafetyError.usage(e.message) }
        }
        if let glob, glob.isEmpty || glob.contains("/") { throw ClipSafetyError.usage("--glob is a file-name pattern (no '/')") }
    }

    struct Head {
        var path: String
        var scorer: Scorer
        var workspace: ScoreWorkspace
    }

    /// Scores every selected shard not yet recorded as done. A shard that cannot be scored is
    /// recorded as failed and counted; problems that would hit every shard (models, folders,
    /// the manifest, writing) throw.
    public func run(observer: FolderObserver) throws -> FolderSummary {
        let heads = try openHeads()
        let columns = try folderColumns(heads)
        try prepareFolders()
        let names = try withFile(inputDir) { try ShardPlan.list(directory: inputDir, glob: glob) }
        let plan = try withFile(inputDir) { try ShardPlan(names: names, partition: partition) }
        try withFile(outputDir + "/columns.json") { try columns.writeOrCheck(at: outputDir + "/columns.json") }
        AtomicFile.removeStale(in: outputDir)
        let manifestPath = outputDir + "/manifest.jsonl"
        let manifest = try withFile(manifestPath) { try ShardManifest(contentsOf: manifestPath) }
        if let line = manifest.damagedLines.first {
            observer.message("clipsafety: warning: \(manifestPath): line \(line) is not a manifest entry; ignored")
        }
        let appender = try withFile(manifestPath) { try ManifestAppender(path: manifestPath, endsWithNewline: manifest.endsWithNewline) }
        guard !plan.all.isEmpty else { throw FileError(path: inputDir, underlying: ClipSafetyError(.missingFile, "no file matches \(glob)")) }

        var summary = FolderSummary(matched: plan.all.count, selected: plan.selected.count)
        let todo = pending(plan.selected, manifest: manifest, summary: &summary)
        observer.started(shards: todo.count, bytes: todo.reduce(0) { $0 + $1.bytes })
        for shard in todo {
            let entry = try score(shard, heads: heads, columns: columns, observer: observer)
            try withFile(manifestPath) { try appender.append(entry) }
            summary.add(entry)
            observer.finishedShard(bytes: entry.bytes)
        }
        observer.finished()
        return summary
    }

    private func openHeads() throws -> [Head] {
        let heads = try modelPaths.map { path -> Head in
            let scorer = try ScorerLoader.open(path, limits: limits, threads: threads)
            return Head(path: path, scorer: scorer, workspace: scorer.makeWorkspace(rows: scorer.rowsPerBatch(batch)))
        }
        try checkWidths(heads)
        return heads
    }

    private func folderColumns(_ heads: [Head]) throws -> FolderColumns {
        var columns = FolderColumns(models: try heads.map { h in
            let sha = try withFile(h.path) { sha256Hex(try MappedFile.map(h.path, limits: limits)) }
            return FolderColumns.Model(file: (h.path as NSString).lastPathComponent, sha256: sha,
                                       name: h.scorer.card.name, columns: h.scorer.card.outputColumns)
        }, normalize: checks.normalize)
        if outputFormat == .parquet { columns.output = "parquet" }
        return columns
    }

    /// The selected shards the manifest does not record as done for their present content,
    /// with their sizes and fingerprints.
    private func pending(_ selected: [String], manifest: ShardManifest, summary: inout FolderSummary) -> [PendingShard] {
        var todo: [PendingShard] = []
        for name in selected {
            let path = inputDir + "/" + name
            let shard = PendingShard(name: name, bytes: fileSize(path), fingerprint: ShardFingerprint.of(path))
            if manifest.completed(name, inputBytes: shard.bytes, fingerprint: shard.fingerprint, outputDirectory: outputDir,
                                  format: outputFormat) != nil {
                summary.skipped += 1
            } else {
                todo.append(shard)
            }
        }
        return todo
    }

    struct PendingShard {
        var name: String
        var bytes: Int
        var fingerprint: String?
    }

    /// All heads must read the same rows: one folder holds one embedding width.
    private func checkWidths(_ heads: [Head]) throws {
        guard let first = heads.first else { return }
        for h in heads.dropFirst() where h.scorer.inputWidth != first.scorer.inputWidth {
            throw ClipSafetyError.mismatch("\(first.path) takes \(first.scorer.inputWidth)-wide rows but \(h.path) takes \(h.scorer.inputWidth); score them in separate runs")
        }
    }

    private func prepareFolders() throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: inputDir, isDirectory: &isDir), isDir.boolValue else {
            throw FileError(path: inputDir, underlying: ClipSafetyError(.missingFile, "no such folder"))
        }
        do {
            try FileManager.default.createDirectory(atPath: outputDir, withIntermediateDirectories: true)
        } catch {
            throw FileError(path: outputDir, underlying: .cannotCreate("cannot create the output folder: \(error.localizedDescription)"))
        }
        if let a = realpath(inputDir, nil), let b = realpath(outputDir, nil) {
            defer { free(a); free(b) }
            if strcmp(a, b) == 0 { throw ClipSafetyError.usage("--output-dir must not be --input-dir: outputs would overwrite the shards") }
        }
    }

    private func fileSize(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : -1
    }

    /// Scores one shard. Problems with the shard give a `failed` entry; problems writing the
    /// output throw (they would hit every shard).
    private func score(_ shard: PendingShard, heads: [Head], columns: FolderColumns, observer: FolderObserver) throws -> ManifestEntry {
        let (name, bytes) = (shard.name, shard.bytes)
        let start = DispatchTime.now().uptimeNanoseconds
        func seconds() -> Double { (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 * 1000).rounded() / 1000 }
        let path = inputDir + "/" + name
        let outputName = ShardPlan.outputName(for: name, format: outputFormat)
        let outputPath = outputDir + "/" + outputName
        do {
            let embeddings = try NpyArray(contentsOf: path)
            for h in heads { try InputChecker.checkShape(embeddings, scorer: h.scorer) }
            let rows = embeddings.shape[0]
            let rowBytes = bytes > 0 && rows > 0 ? Swift.max(1, embeddings.data.count / rows) : 0
            let output = try openOutput(outputPath, shard: name, rows: rows, heads: heads, columns: columns)
            var checker = InputChecker(precondition: Self.precondition(heads), options: checks, blanksInvalidRows: true)
            let sha: String
            do {
                try scoreRows(of: embeddings, heads: heads, checker: &checker, into: output, rowBytes: rowBytes, observer: observer)
                sha = try withFile(outputPath) { try output.finish() }
            } catch {
                output.abandon()
                throw error
            }
            let warning = checker.warning
            if let warning { observer.message("clipsafety: warning: \(path): \(warning)") }
            if let invalid = checker.invalidRows.summary { observer.message("clipsafety: \(path): \(invalid)") }
            let invalidCount = checker.invalidRows.count
            return ManifestEntry(shard: name, status: .done, bytes: bytes, rows: rows, output: outputName, sha256: sha,
                                 seconds: seconds(), warning: warning, invalidRows: invalidCount > 0 ? invalidCount : nil,
                                 fingerprint: shard.fingerprint)
        } catch let e as ClipSafetyError {
            unlink(outputPath)  // an older output of this shard no longer stands
            observer.message("clipsafety: \(path): \(e.message) (shard recorded as failed)")
            return ManifestEntry(shard: name, status: .failed, bytes: bytes, seconds: seconds(), reason: e.message)
        }
    }

    /// The shard's output file: a `.npy` matrix, or a Parquet score file with the shard's
    /// metadata columns (whose file must exist and hold the shard's row count).
    private func openOutput(_ path: String, shard: String, rows: Int, heads: [Head], columns: FolderColumns) throws -> ShardOutput {
        guard outputFormat == .parquet else {
            return .npy(try withFile(path) { try ShardOutputFile(path: path, rows: rows, columns: columns.columns.count) })
        }
        let source = try metadata?.open(forShard: shard, rows: rows)
        let layout = ParquetScoreLayout(heads: zip(heads, columns.models).map { h, m in
            ParquetScoreLayout.Head(prefix: FolderColumns.stem(m.file), file: m.file, sha256: m.sha256, card: h.scorer.card,
                                    threshold: h.scorer.card.threshold)
        }, metadata: source?.fields ?? [])
        try layout.checkNames()
        let file = try withFile(path) {
            try ParquetScoreFile(path: path, layout: layout, rows: rows, rowGroupRows: ParquetScoreFile.rowGroupRows(batch: batch))
        }
        return .parquet(file, source)
    }

    /// Scores `embeddings` batch by batch with every head into `output`, reading ahead and
    /// releasing pages behind so memory stays bounded by `batch`.
    private func scoreRows(of embeddings: NpyArray, heads: [Head], checker: inout InputChecker, into output: ShardOutput,
                           rowBytes: Int, observer: FolderObserver) throws {
        let rows = embeddings.shape[0]
        let batch = heads.map(\.workspace.rows).min() ?? self.batch  // fitted to the widest head
        let columns = heads.reduce(0) { $0 + $1.scorer.outputWidth }
        var buffer = [Float](repeating: 0, count: output.isNpy ? Swift.min(batch, rows) * columns : 0)
        let halves = HalfWidening(rows: Swift.min(batch, rows), columns: embeddings.shape[1])
        var first = 0
        while first < rows {
            let count = Swift.min(batch, rows - first)
            if first + count < rows { embeddings.willNeed(rows: first + count, count: Swift.min(batch, rows - first - count)) }
            let results = try embeddings.withRows(first, count) { b in
                try checker.score(halves.widened(b), with: heads.map(\.scorer), workspaces: heads.map(\.workspace))
            }
            switch output {
            case .npy(let file):
                Self.interleave(results, rows: count, into: &buffer)
                try withFile(file.path) { try buffer.withUnsafeBufferPointer { try file.append(UnsafeBufferPointer(rebasing: $0[0..<(count * columns)])) } }
            case .parquet(let file, let source):
                let copied = try source?.next(count) ?? []
                try withFile(file.path) { try file.append(results, firstRow: first, count: count, metadata: copied) }
            }
            first += count
            embeddings.releaseRows(before: first)
            observer.scored(rows: count, bytes: count * rowBytes)
        }
    }

    /// The check to run once for all heads: `l2-normalized` when any head asks for it.
    static func precondition(_ heads: [Head]) -> String {
        heads.contains { $0.scorer.card.inputPrecondition == "l2-normalized" } ? "l2-normalized" : (heads.first?.scorer.card.inputPrecondition ?? "")
    }

    /// Row r of the output is row r of each head's scores, side by side in model order.
    static func interleave(_ results: [ScoreResult], rows: Int, into buffer: inout [Float]) {
        let width = results.reduce(0) { $0 + $1.columns }
        var offset = 0
        for result in results {
            let w = result.columns
            result.scores.withUnsafeBufferPointer { src in
                buffer.withUnsafeMutableBufferPointer { dst in
                    for r in 0..<rows {
                        for c in 0..<w { dst[r * width + offset + c] = src[r * w + c] }
                    }
                }
            }
            offset += w
        }
    }
}

/// A shard's output being written.
enum ShardOutput {
    case npy(ShardOutputFile)
    case parquet(ParquetScoreFile, MetadataSource?)

    var isNpy: Bool {
        if case .npy = self { return true }
        return false
    }

    func finish() throws -> String {
        switch self {
        case .npy(let f): return try f.finish()
        case .parquet(let f, _): return try f.finish()
        }
    }

    func abandon() {
        switch self {
        case .npy(let f): f.abandon()
        case .parquet(let f, _): f.abandon()
        }
    }
}

/// Widens float16 batches to float32 once, so that the input check and every head read
/// float32 (exact: each float16 value is a float32 value) instead of converting per head.
final class HalfWidening {
    private let storage: UnsafeMutablePointer<Float>

    init(rows: Int, columns: Int) {
        storage = .allocate(capacity: Swift.max(rows * columns, 1))
    }

    deinit { storage.deallocate() }

    func widened(_ batch: EmbeddingBatch) -> EmbeddingBatch {
        guard batch.elementType == .float16 else { return batch }
        batch.copyAsFloat32(into: storage)
        return EmbeddingBatch(base: UnsafeRawPointer(storage), rows: batch.rows, columns: batch.columns, elementType: .float32)
    }
}

extension NpyArray {
    /// Asks the kernel to start reading rows ahead (a hint; memory-mapped input only).
    func willNeed(rows start: Int, count: Int) {
        guard shape.count == 2, count > 0 else { return }
        let rowBytes = shape[1] * dtype.byteSize
        data.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            let from = Int(bitPattern: base) + start * rowBytes
            let to = Swift.min(from + count * rowBytes, Int(bitPattern: base) + raw.count)
            let aligned = from - from % page
            guard to > aligned, let p = UnsafeMutableRawPointer(bitPattern: aligned) else { return }
            _ = madvise(p, to - aligned, Int32(MADV_WILLNEED))
        }
    }
}


extension FolderSummary {
    mutating func add(_ entry: ManifestEntry) {
        switch entry.status {
        case .done:
            scored += 1
            rows += entry.rows ?? 0
            invalidRows += entry.invalidRows ?? 0
        case .failed:
            failed += 1
        }
    }
}
