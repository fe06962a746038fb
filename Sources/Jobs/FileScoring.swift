import Converters
import Foundation
import Runtime

/// `score MODEL INPUT -o OUTPUT`: one embedding matrix scored batch by batch into one output
/// file (`.npy`, `.csv`, `.jsonl`, `.parquet`), which appears whole or not at all.
public struct FileScoring: Sendable {
    public var model: String
    public var input: String
    public var output: String
    public var batch: Int
    /// The decision threshold for `.csv`/`.jsonl`/`.parquet`; nil takes the card's.
    public var threshold: Double?
    public var threads: Int?
    public var checks: InputCheckSettings
    public var limits: ReaderLimits

    public init(model: String, input: String, output: String, batch: Int = 4096, threshold: Double? = nil,
                threads: Int? = nil, checks: InputCheckSettings = .init(), limits: ReaderLimits = .init()) {
        self.model = model
        self.input = input
        self.output = output
        self.batch = batch
        self.threshold = threshold
        self.threads = threads
        self.checks = checks
        self.limits = limits
    }

    /// What a finished run found in its input.
    public struct Outcome: Sendable {
        /// The input check's warning (norms, NaN), if any.
        public var warning: String?
        /// Rows that got no score and no decision.
        public var invalidRows: InvalidRows
    }

    /// Scores every row; `progress` gets (rows done, rows in all) after each batch. On any
    /// failure the output path is left as it was. An output that is the input or the model
    /// is refused before any work.
    public func run(progress: (Int, Int) -> Void = { _, _ in }) throws -> Outcome {
        guard let format = ScoreOutputFormat(path: output) else {
            throw ClipSafetyError.usage("--output must end in .npy, .csv, .jsonl or .parquet")
        }
        try OutputSafety.refuseClobbering(output, inputs: [("input", input), ("model", model)])
        let scorer = try ScorerLoader.open(model, limits: limits, threads: threads)
        let embeddings = try withFile(input) { try NpyArray(contentsOf: input) }
        try withFile(input) { try InputChecker.checkShape(embeddings, scorer: scorer) }
        let rows = embeddings.shape[0]
        let writer = try withFile(output) { try openWriter(format, scorer: scorer, rows: rows) }
        var checker = InputChecker(card: scorer.card, options: checks, blanksInvalidRows: true)
        do {
            try score(embeddings, with: scorer, checker: &checker, into: writer, progress: progress)
            try withFile(output) { try writer.finishFile() }
        } catch {
            writer.abandon()
            throw error
        }
        return Outcome(warning: checker.warning, invalidRows: checker.invalidRows)
    }

    private func openWriter(_ format: ScoreOutputFormat, scorer: Scorer, rows: Int) throws -> ScoreSink {
        let threshold = threshold ?? scorer.card.threshold
        guard format == .parquet else {
            return try ScoreWriter(path: output, format: format, card: scorer.card, threshold: threshold, rows: rows, columns: scorer.outputWidth)
        }
        let file = (model as NSString).lastPathComponent
        let sha = try withFile(model) { sha256Hex(try MappedFile.map(model, limits: limits)) }
        let head = ParquetScoreLayout.Head(prefix: FolderColumns.stem(file), file: file, sha256: sha, card: scorer.card, threshold: threshold)
        return try ParquetScoreFile(path: output, layout: ParquetScoreLayout(heads: [head]), rows: rows,
                                    rowGroupRows: ParquetScoreFile.rowGroupRows(batch: batch))
    }

    private func score(_ embeddings: NpyArray, with scorer: Scorer, checker: inout InputChecker, into writer: ScoreSink,
                       progress: (Int, Int) -> Void) throws {
        let rows = embeddings.shape[0]
        let batch = scorer.rowsPerBatch(self.batch)
        let workspace = scorer.makeWorkspace(rows: min(batch, rows))
        var start = 0
        while start < rows {
            let count = min(batch, rows - start)
            let result = try withFile(input) { try embeddings.withRows(start, count) { try checker.score($0, with: scorer, workspace: workspace) } }
            try withFile(output) { try writer.write(result, firstRow: start) }
            start += count
            embeddings.releaseRows(before: start)
            progress(start, rows)
        }
    }
}
