import ArgumentParser
import Foundation
import Jobs
import Runtime

struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score an embedding matrix (.npy, f16/f32/f64), or a folder of them, with a model.",
        discussion: """
            Output columns come from the model card; .csv and .jsonl add the decision at the threshold. Memory is bounded by --batch, not by the input size.

            Folder form: score MODEL [--model MODEL2 …] --input-dir DIR --output-dir OUT [--shard I/N] [--glob PATTERN] \
            scores every shard of DIR in natural order, reading each once for all the models, into OUT/<shard>.npy \
            (float32, columns in model order, named in OUT/columns.json). OUT/manifest.jsonl records each finished or \
            failed shard; a rerun skips the finished ones. Exit 65 when any shard failed.

            Parquet: -o scores.parquet, or --format parquet in folder form (OUT/<shard>.parquet), writes `row`,             `<model>/<column>` (float32), `<model>/is_<label>` (nullable boolean; null where a row could not be             scored) and the model cards in the file's key-value metadata. --metadata-dir DIR copies columns of each             shard's metadata Parquet (DIR/<shard>.parquet or DIR/metadata_<N>.parquet, as clip-retrieval writes)             after checking that its row count is the shard's: --keep names them (default: whichever of key, uid,             url, caption it has).
            """)

    @Argument(help: "Model: a native .safetensors file or any upstream file clipsafety converts.")
    var model: String

    @Argument(help: "Embeddings: a 2-D .npy matrix, one row per image (single-file form).")
    var input: String?

    @Option(name: .shortAndLong, help: "Output file: .npy (raw scores), .csv, .jsonl or .parquet (single-file form).")
    var output: String?

    @Option(name: .customLong("model"), help: "Another model scored in the same pass (folder form; repeatable).")
    var moreModels: [String] = []

    @Option(help: "Folder of .npy shards to score (folder form).")
    var inputDir: String?

    @Option(help: "Folder for the outputs, columns.json and manifest.jsonl (folder form; created if missing).")
    var outputDir: String?

    @Option(help: "Score only shard k with k mod N = I of the naturally sorted shards (I/N, for array jobs).")
    var shard: String?

    @Option(help: "Which files of --input-dir are shards (shell pattern, default *.npy).")
    var glob: String?

    @Option(help: "Output files of the folder form: npy (default) or parquet.")
    var format: String?

    @Option(help: "Folder of each shard's metadata Parquet, whose columns are copied into Parquet outputs (folder form).")
    var metadataDir: String?

    @Option(help: "Metadata columns to copy, comma-separated (default: whichever of key, uid, url, caption exist).")
    var keep: String?

    @Option(help: "Rows scored at a time.")
    var batch: Int = 4096

    @Option(help: "Decision threshold (default: the model card's).")
    var threshold: Double?

    @Option(help: "Threads per batch (default: every core; 1 when many processes share the machine, e.g. one per Spark core).")
    var threads: Int?

    @Flag(help: "Exit 0 even when rows holding NaN or infinity got no score and no decision.")
    var allowInvalidRows = false

    @OptionGroup var checkOptions: InputCheckOptions

    @OptionGroup var limitOptions: LimitOptions

    func validate() throws {
        guard batch > 0, batch <= 1 << 20 else { throw ValidationError("--batch must be between 1 and 1048576") }
        if let threads, !(1...1024).contains(threads) { throw ValidationError("--threads must be between 1 and 1024") }
        if inputDir != nil || outputDir != nil {
            guard inputDir != nil, outputDir != nil else { throw ValidationError("--input-dir and --output-dir go together") }
            guard input == nil, output == nil else { throw ValidationError("give either INPUT -o OUTPUT or --input-dir and --output-dir, not both") }
            guard threshold == nil else { throw ValidationError("--threshold is for .csv/.jsonl output; folder outputs hold raw scores") }
            if keep != nil && metadataDir == nil { throw ValidationError("--keep goes with --metadata-dir") }
            if let keep, keepColumns(keep).isEmpty { throw ValidationError("--keep names no column") }
            do {
                return try FolderScoring.validate(models: [model] + moreModels, shard: shard, glob: glob,
                                                  format: folderFormat ?? .npy, metadata: metadataDir != nil)
            } catch let e as ClipSafetyError {
                throw ValidationError(e.message)
            }
        }
        guard moreModels.isEmpty, shard == nil, glob == nil, format == nil, metadataDir == nil, keep == nil else {
            throw ValidationError("--model, --shard, --glob, --format, --metadata-dir and --keep work with --input-dir and --output-dir")
        }
        guard let output, input != nil else { throw ValidationError("missing INPUT and -o OUTPUT (or --input-dir and --output-dir)") }
        guard ScoreOutputFormat(path: output) != nil else {
            throw ValidationError("--output must end in .npy, .csv, .jsonl or .parquet")
        }
    }

    /// `--format` of the folder form (nil when not given); a name other than npy or parquet
    /// is refused by `FolderScoring.validate`.
    var folderFormat: ScoreOutputFormat? {
        format.map { ScoreOutputFormat(rawValue: $0.lowercased()) ?? .csv }
    }

    func keepColumns(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func run() throws {
        if let inputDir, let outputDir { return try runFolder(inputDir: inputDir, outputDir: outputDir) }
        guard let input, let output else { throw ValidationError("missing INPUT and -o OUTPUT") }
        try ExitStatus.run {
            let job = FileScoring(model: model, input: input, output: output, batch: batch, threshold: threshold,
                                  threads: threads, checks: checkOptions.settings, limits: limitOptions.limits)
            var bar: ProgressBar?
            defer { bar?.finish() }
            let outcome = try job.run { done, total in
                if bar == nil { bar = ProgressBar(total: total, label: "scoring") }
                bar?.update(done)
            }
            if let warning = outcome.warning { printError("clipsafety: warning: \(input): \(warning)") }
            if let invalid = outcome.invalidRows.summary, !allowInvalidRows {
                throw FileError(path: input, underlying: .mismatch(invalid + "; the scores are written, --allow-invalid-rows accepts this"))
            }
        }
    }

    /// The folder form's entry point, from `run()`.
    func runFolder(inputDir: String, outputDir: String) throws {
        var failed = false
        try ExitStatus.run {
            let partition = try shard.map { try ShardPartition(parsing: $0) }
            var job = FolderScoring(modelPaths: [model] + moreModels, inputDir: inputDir, outputDir: outputDir, partition: partition,
                                    glob: glob ?? FolderScoring.defaultGlob, batch: batch, checks: checkOptions.settings,
                                    limits: limitOptions.limits, threads: threads)
            job.outputFormat = folderFormat ?? .npy
            job.metadata = metadataDir.map { MetadataJoin(directory: $0, keep: keep.map(keepColumns), limits: limitOptions.limits) }
            let summary = try job.run(observer: FolderProgress())
            printError(summary.line(partition: partition, manifest: outputDir + "/manifest.jsonl"))
            failed = summary.failed > 0 || (summary.invalidRows > 0 && !allowInvalidRows)
        }
        if failed { throw ExitCode(ExitStatus.dataError.rawValue) }
    }
}

extension FolderSummary {
    /// The closing line of a folder run.
    func line(partition: ShardPartition?, manifest: String) -> String {
        let selection = partition.map { " (partition \($0) of \(matched))" } ?? ""
        return "clipsafety: \(selected) shard\(selected == 1 ? "" : "s")\(selection): \(scored) scored (\(rows) rows), \(skipped) already done, \(failed) failed\(invalidRows > 0 ? ", \(invalidRows) rows without a score (NaN or infinity)" : ""); manifest \(manifest)"
    }
}
