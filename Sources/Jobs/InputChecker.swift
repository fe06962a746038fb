import Converters
import Runtime

/// What to do with inputs that break a model's precondition (`--normalize`, `--strict`).
public struct InputCheckSettings: Sendable {
    /// L2-normalise every row before scoring.
    public var normalize: Bool
    /// Refuse a batch that breaks the precondition or holds NaN/infinity, instead of warning.
    public var strict: Bool

    public init(normalize: Bool = false, strict: Bool = false) {
        self.normalize = normalize
        self.strict = strict
    }
}

/// Checks each batch against the model's input precondition, and reports once: a warning line
/// at the end, or (with --strict) an error at the first bad batch, whose scores are never
/// returned. The measurement shares the scorer's pass over the input (`scoreMeasuring`).
public struct InputChecker {
    public let precondition: String
    public let options: InputCheckSettings
    public private(set) var statistics = InputStatistics()
    /// When true (scoring), rows holding NaN or infinity get no score and no decision; when
    /// false (verify, compare), every row keeps the model's own output.
    public let blanksInvalidRows: Bool
    /// The rows blanked so far.
    public private(set) var invalidRows = InvalidRows()

    public init(card: ModelCard, options: InputCheckSettings, blanksInvalidRows: Bool = false) {
        self.init(precondition: card.inputPrecondition, options: options, blanksInvalidRows: blanksInvalidRows)
    }

    public init(precondition: String, options: InputCheckSettings, blanksInvalidRows: Bool = false) {
        self.precondition = precondition
        self.options = options
        self.blanksInvalidRows = blanksInvalidRows
    }

    /// Scores `batch`, measuring it in the same pass (or, with --normalize, measuring it and
    /// scoring a normalised copy); with --strict, throws instead of returning scores of a
    /// batch that breaks the precondition.
    public mutating func score(_ batch: EmbeddingBatch, with scorer: Scorer, workspace: ScoreWorkspace? = nil) throws -> ScoreResult {
        let workspace = workspace ?? scorer.makeWorkspace(rows: batch.rows)
        var results: [ScoreResult]
        let stats: InputStatistics
        if options.normalize {
            stats = InputStatistics(batch)
            try check(stats)
            let normalized = NormalizedBatch(batch)
            results = [try withExtendedLifetime(normalized) { try scorer.score(normalized.batch, workspace: workspace) }]
        } else {
            let (result, measured) = try scorer.scoreMeasuring(batch, workspace: workspace)
            stats = measured
            try check(stats)
            results = [result]
        }
        blankInvalidRows(&results, of: batch, stats: stats)
        return results[0]
    }

    /// Scores `batch` with every model, measuring it once (in the first model's pass) and
    /// normalising it once with --normalize: the folder form reads each batch once for all heads.
    public mutating func score(_ batch: EmbeddingBatch, with scorers: [Scorer], workspaces: [ScoreWorkspace]) throws -> [ScoreResult] {
        var results: [ScoreResult]
        let stats: InputStatistics
        if let first = scorers.first, !options.normalize {
            let (result, measured) = try first.scoreMeasuring(batch, workspace: workspaces[0])
            stats = measured
            try check(stats)
            results = try [result] + zip(scorers.dropFirst(), workspaces.dropFirst()).map { try $0.score(batch, workspace: $1) }
        } else {
            stats = InputStatistics(batch)
            try check(stats)
            let normalized = options.normalize ? NormalizedBatch(batch) : nil
            let input = normalized?.batch ?? batch
            results = try withExtendedLifetime(normalized) { try zip(scorers, workspaces).map { try $0.score(input, workspace: $1) } }
        }
        blankInvalidRows(&results, of: batch, stats: stats)
        return results
    }

    /// Looks for the non-finite rows only in a batch whose statistics counted some.
    private mutating func blankInvalidRows(_ results: inout [ScoreResult], of batch: EmbeddingBatch, stats: InputStatistics) {
        guard blanksInvalidRows, stats.nonFiniteRows > 0 else { return }
        invalidRows.blank(&results, batch: batch, firstRow: statistics.rows - stats.rows)
    }

    /// Adds a batch's statistics; with --strict, throws at a batch that breaks the precondition.
    private mutating func check(_ stats: InputStatistics) throws {
        statistics.merge(stats)
        if options.strict {
            // With --normalize only non-finite rows are fatal: norms are fixed before scoring.
            var fatal = stats
            if options.normalize { fatal.offNormRows = 0 }
            if let problem = fatal.warning(precondition: precondition) {
                throw ClipSafetyError.mismatch("--strict: \(problem) in rows \(statistics.rows - stats.rows)..<\(statistics.rows); the model expects \(precondition) rows")
            }
        }
    }

    /// The warning to print after scoring, or nil.
    public var warning: String? {
        var stats = statistics
        if options.normalize { stats.offNormRows = 0 }
        guard let text = stats.warning(precondition: precondition) else { return nil }
        let advice = options.normalize ? "" : (precondition == "l2-normalized" && statistics.offNormRows > 0 ? "; scores of such rows are not meaningful: use --normalize, or --strict to refuse them" : "")
        return text + advice
    }

    /// Checks that an input matrix can be scored by `scorer`: 2-D, float, the model's width.
    public static func checkShape(_ embeddings: NpyArray, scorer: Scorer) throws {
        guard embeddings.shape.count == 2, embeddings.dtype.embeddingElementType != nil else {
            throw ClipSafetyError.mismatch("expected a 2-D float16/float32/float64 matrix, found \(embeddings.dtype.descr) with shape \(embeddings.shape)")
        }
        guard embeddings.shape[1] == scorer.inputWidth else {
            throw ClipSafetyError.mismatch("rows have \(embeddings.shape[1]) values; the model expects \(scorer.inputWidth) (\(scorer.card.backbone) embeddings)")
        }
    }
}

/// Opens models for the jobs that score.
public enum ScorerLoader {
    /// Opens a model (native or any file `convert` reads, converted in memory) for scoring;
    /// `threads` caps the cores one batch uses (nil: all). Errors name the file.
    public static func open(_ path: String, limits: ReaderLimits, threads: Int? = nil) throws -> Scorer {
        try withFile(path) {
            try Scorer(model: try ModelLoader.load(path: path, options: ConversionOptions(fileName: path, limits: limits)),
                       parallelism: threads)
        }
    }
}
