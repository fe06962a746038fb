import ArgumentParser
import Runtime

/// `--normalize` and `--strict`, shared by the commands that score inputs.
struct InputCheckOptions: ParsableArguments {
    @Flag(help: "L2-normalise every input row before scoring.")
    var normalize = false

    @Flag(help: "Refuse (exit 65) inputs that break the model's precondition or hold NaN/infinity, instead of warning.")
    var strict = false
}

/// Checks each batch against the model's input precondition, and reports once: a warning line
/// at the end, or (with --strict) an error at the first bad batch, whose scores are never
/// returned. The measurement shares the scorer's pass over the input (`scoreMeasuring`).
struct InputChecker {
    let precondition: String
    let options: InputCheckOptions
    private(set) var statistics = InputStatistics()

    init(card: ModelCard, options: InputCheckOptions) {
        self.init(precondition: card.inputPrecondition, options: options)
    }

    init(precondition: String, options: InputCheckOptions) {
        self.precondition = precondition
        self.options = options
    }

    /// Scores `batch`, measuring it in the same pass (or, with --normalize, measuring it and
    /// scoring a normalised copy); with --strict, throws instead of returning scores of a
    /// batch that breaks the precondition.
    mutating func score(_ batch: EmbeddingBatch, with scorer: Scorer, workspace: ScoreWorkspace? = nil) throws -> ScoreResult {
        let workspace = workspace ?? scorer.makeWorkspace(rows: batch.rows)
        if options.normalize {
            try check(InputStatistics(batch))
            let normalized = NormalizedBatch(batch)
            return try scorer.score(normalized.batch, workspace: workspace)
        }
        let (result, statistics) = try scorer.scoreMeasuring(batch, workspace: workspace)
        try check(statistics)
        return result
    }

    /// Scores `batch` with every model, measuring it once (in the first model's pass) and
    /// normalising it once with --normalize: the folder form reads each batch once for all heads.
    mutating func score(_ batch: EmbeddingBatch, with scorers: [Scorer], workspaces: [ScoreWorkspace]) throws -> [ScoreResult] {
        guard let first = scorers.first, !options.normalize else {
            try check(InputStatistics(batch))
            let normalized = options.normalize ? NormalizedBatch(batch) : nil
            let input = normalized?.batch ?? batch
            return try zip(scorers, workspaces).map { try $0.score(input, workspace: $1) }
        }
        let (result, statistics) = try first.scoreMeasuring(batch, workspace: workspaces[0])
        try check(statistics)
        return try [result] + zip(scorers.dropFirst(), workspaces.dropFirst()).map { try $0.score(batch, workspace: $1) }
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
    var warning: String? {
        var stats = statistics
        if options.normalize { stats.offNormRows = 0 }
        guard let text = stats.warning(precondition: precondition) else { return nil }
        let advice = options.normalize ? "" : (precondition == "l2-normalized" && statistics.offNormRows > 0 ? "; scores of such rows are not meaningful: use --normalize, or --strict to refuse them" : "")
        return text + advice
    }
}
