import ArgumentParser
import Converters
import Foundation
import Jobs
import Runtime

/// `score MODEL [--model MODEL2 …] --input-dir DIR --output-dir OUT`: every `.npy` shard of a
/// folder, each read once for all the models, each written as `OUT/<shard>.npy` and recorded
/// in `OUT/manifest.jsonl` so that a rerun skips what is done (README, "Scoring a folder").
struct FolderScoring {
    var modelPaths: [String]
    var inputDir: String
    var outputDir: String
    var partition: ShardPartition?
    var glob: String
    var batch: Int
    var checkOptions: InputCheckOptions
    var limits: ReaderLimits
    var threads: Int?

    static let defaultGlob = "*.npy"

    /// Checks the argument values that need no file: model names give distinct column
    /// prefixes, `--shard` parses, the pattern is not empty.
    static func validate(models: [String], shard: String?, glob: String?) throws {
        var stems: [String: String] = [:]
        for path in models {
            let stem = FolderColumns.stem((path as NSString).lastPathComponent)
            if let other = stems.updateValue(path, forKey: stem) {
                throw ValidationError("models '\(other)' and '\(path)' would both name their columns '\(stem)/…'; give one another file name")
            }
        }
        if let shard {
            do { _ = try ShardPartition(parsing: shard) } catch let e as ClipSafetyError { throw ValidationError(e.message) }
        }
        if let glob, glob.isEmpty || glob.contains("/") { throw ValidationError("--glob is a file-name pattern (no '/')") }
    }

    struct Head {
        var path: String
        var scorer: Scorer
        var workspace: ScoreWorkspace
    }

    struct Tally {
        var scored = 0
        var skipped = 0
        var failed = 0
        var rows = 0
    }

    func run() throws {
        let heads = try modelPaths.map { path -> Head in
            let scorer = try openScorer(path, limits: limits, threads: threads)
            return Head(path: path, scorer: scorer, workspace: scorer.makeWorkspace(rows: batch))
        }
        try checkWidths(heads)
        let columns = FolderColumns(models: try heads.map { h in
            let sha = try withFile(h.path) { sha256Hex(try MappedFile.map(h.path)) }
            return FolderColumns.Model(file: (h.path as NSString).lastPathComponent, sha256: sha,
                                       name: h.scorer.card.name, columns: h.scorer.card.outputColumns)
        }, normalize: checkOptions.normalize)

        try prepareFolders()
        let names = try withFile(inputDir) { try ShardPlan.list(directory: inputDir, glob: glob) }
        let plan = try withFile(inputDir) { try ShardPlan(names: names, partition: partition) }
        try withFile(outputDir + "/columns.json") { try columns.writeOrCheck(at: outputDir + "/columns.json") }
        TemporaryOutput.removeStale(in: outputDir)
        let manifestPath = outputDir + "/manifest.jsonl"
        let manifest = try withFile(manifestPath) { try ShardManifest(contentsOf: manifestPath) }
        if let line = manifest.damagedLines.first {
            printError("clipsafety: warning: \(manifestPath): line \(line) is not a manifest entry; ignored")
        }
        let appender = try withFile(manifestPath) { try ManifestAppender(path: manifestPath, endsWithNewline: manifest.endsWithNewline) }

        if plan.all.isEmpty { printError("clipsafety: warning: \(inputDir): no file matches \(glob)") }
        var tally = Tally()
        var todo: [(name: String, bytes: Int)] = []
        for name in plan.selected {
            let bytes = fileSize(inputDir + "/" + name)
            if manifest.completed(name, inputBytes: bytes, outputDirectory: outputDir) != nil {
                tally.skipped += 1
            } else {
                todo.append((name, bytes))
            }
        }
        let progress = FolderProgress(shards: todo.count, bytes: todo.reduce(0) { $0 + $1.bytes })
        for shard in todo {
            let entry = try score(shard.name, bytes: shard.bytes, heads: heads, columns: columns.columns.count, progress: progress)
            try withFile(manifestPath) { try appender.append(entry) }
            switch entry.status {
            case .done:
                tally.scored += 1
                tally.rows += entry.rows ?? 0
            case .failed:
                tally.failed += 1
            }
            progress.finishShard(entry.bytes)
        }
        progress.finish()
        let selection = partition.map { " (partition \($0) of \(plan.all.count))" } ?? ""
        let count = plan.selected.count
        printError("clipsafety: \(count) shard\(count == 1 ? "" : "s")\(selection): \(tally.scored) scored (\(tally.rows) rows), \(tally.skipped) already done, \(tally.failed) failed; manifest \(manifestPath)")
        if tally.failed > 0 { throw ExitCode(ExitStatus.dataError.rawValue) }
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
            printError("clipsafety: \(outputDir): cannot create the output folder: \(error.localizedDescription)")
            throw ExitCode(ExitStatus.cannotCreate.rawValue)
        }
        if let a = realpath(inputDir, nil), let b = realpath(outputDir, nil) {
            defer { free(a); free(b) }
            if strcmp(a, b) == 0 { throw ValidationError("--output-dir must not be --input-dir: outputs would overwrite the shards") }
        }
    }

    private func fileSize(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : -1
    }

    /// Scores one shard. Problems with the shard give a `failed` entry; problems writing the
    /// output throw (they would hit every shard).
    private func score(_ name: String, bytes: Int, heads: [Head], columns: Int, progress: FolderProgress) throws -> ManifestEntry {
        let start = DispatchTime.now().uptimeNanoseconds
        func seconds() -> Double { (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 * 1000).rounded() / 1000 }
        let path = inputDir + "/" + name
        let outputName = ShardPlan.outputName(for: name)
        let outputPath = outputDir + "/" + outputName
        do {
            let embeddings = try NpyArray(contentsOf: path)
            for h in heads { try checkShape(embeddings, scorer: h.scorer) }
            let rows = embeddings.shape[0]
            let rowBytes = bytes > 0 && rows > 0 ? Swift.max(1, embeddings.data.count / rows) : 0
            let output = try withFile(outputPath) { try ShardOutputFile(path: outputPath, rows: rows, columns: columns) }
            var checker = InputChecker(precondition: Self.precondition(heads), options: checkOptions)
            var buffer = [Float](repeating: 0, count: Swift.min(batch, rows) * columns)
            let halves = HalfWidening(rows: Swift.min(batch, rows), columns: embeddings.shape[1])
            var first = 0
            while first < rows {
                let count = Swift.min(batch, rows - first)
                if first + count < rows { embeddings.willNeed(rows: first + count, count: Swift.min(batch, rows - first - count)) }
                let results = try embeddings.withRows(first, count) { b in
                    try checker.score(halves.widened(b), with: heads.map(\.scorer), workspaces: heads.map(\.workspace))
                }
                Self.interleave(results, rows: count, into: &buffer)
                try withFile(outputPath) { try buffer.withUnsafeBufferPointer { try output.append(UnsafeBufferPointer(rebasing: $0[0..<(count * columns)])) } }
                first += count
                embeddings.releaseRows(before: first)
                progress.advance(rows: count, bytes: count * rowBytes)
            }
            let sha = try withFile(outputPath) { try output.finish() }
            let warning = checker.warning
            if let warning { progress.print("clipsafety: warning: \(path): \(warning)") }
            return ManifestEntry(shard: name, status: .done, bytes: bytes, rows: rows, output: outputName, sha256: sha,
                                 seconds: seconds(), warning: warning)
        } catch let e as ClipSafetyError {
            unlink(outputPath)  // an older output of this shard no longer stands
            progress.print("clipsafety: \(path): \(e.message) (shard recorded as failed)")
            return ManifestEntry(shard: name, status: .failed, bytes: bytes, seconds: seconds(), reason: e.message)
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

/// One progress line over the whole folder on a terminal: shards done, rows/s, ETA (by bytes).
final class FolderProgress {
    private let shards: Int
    private let bytes: Int
    private let enabled: Bool
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var shardsDone = 0
    private var bytesDone = 0
    private var bytesInShard = 0
    private var rows = 0

    init(shards: Int, bytes: Int) {
        self.shards = shards
        self.bytes = Swift.max(bytes, 1)
        enabled = isatty(2) == 1 && shards > 0
    }

    func advance(rows count: Int, bytes b: Int) {
        rows += count
        bytesInShard += b
        draw()
    }

    func finishShard(_ shardBytes: Int) {
        shardsDone += 1
        bytesDone += Swift.max(shardBytes, 0)
        bytesInShard = 0
        draw(force: true)
    }

    /// Prints a line above the progress line.
    func print(_ line: String) {
        clear()
        printError(line)
        draw(force: true)
    }

    func finish() { clear() }

    private func clear() {
        if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }

    private func draw(force: Bool = false) {
        guard enabled else { return }
        let now = Date()
        guard force || now.timeIntervalSince(lastDraw) > 0.1 else { return }
        lastDraw = now
        let done = Swift.min(bytesDone + bytesInShard, bytes)
        let fraction = Double(done) / Double(bytes)
        let elapsed = now.timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(rows) / elapsed : 0
        let eta = fraction > 0 ? elapsed * (1 - fraction) / fraction : 0
        let width = 24
        let filled = Swift.min(width, Int(fraction * Double(width)))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let line = String(format: "\rshards %d/%d [%@] %3.0f%% %@ rows/s ETA %@", shardsDone, shards, bar, fraction * 100, compact(rate), duration(eta))
        FileHandle.standardError.write(Data(line.utf8))
    }

    private func compact(_ v: Double) -> String {
        v >= 1e6 ? String(format: "%.2fM", v / 1e6) : v >= 1e3 ? String(format: "%.1fk", v / 1e3) : String(format: "%.0f", v)
    }

    private func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t % 3600 / 60) : String(format: "%dm%02ds", t / 60, t % 60)
    }
}

extension Score {
    /// The folder form's entry point, from `run()`.
    func runFolder(inputDir: String, outputDir: String) throws {
        try ExitStatus.run {
            let partition = try shard.map { try ShardPartition(parsing: $0) }
            try FolderScoring(modelPaths: [model] + moreModels, inputDir: inputDir, outputDir: outputDir, partition: partition,
                              glob: glob ?? FolderScoring.defaultGlob, batch: batch, checkOptions: checkOptions,
                              limits: limitOptions.limits, threads: threads).run()
        }
    }
}
