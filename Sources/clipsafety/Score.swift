import ArgumentParser
import Foundation
import Runtime

struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score an embedding matrix (.npy, f16/f32/f64) with a model.",
        discussion: "Output columns come from the model card; .csv and .jsonl add the decision at the threshold. Memory is bounded by --batch, not by the input size.")

    @Argument(help: "Model: a native .safetensors file or any upstream file clipsafety converts.")
    var model: String

    @Argument(help: "Embeddings: a 2-D .npy matrix, one row per image.")
    var input: String

    @Option(name: .shortAndLong, help: "Output file: .npy (raw scores), .csv or .jsonl.")
    var output: String

    @Option(help: "Rows scored at a time.")
    var batch: Int = 4096

    @Option(help: "Decision threshold (default: the model card's).")
    var threshold: Double?

    @OptionGroup var checkOptions: InputCheckOptions

    @OptionGroup var limitOptions: LimitOptions

    func validate() throws {
        guard batch > 0, batch <= 1 << 20 else { throw ValidationError("--batch must be between 1 and 1048576") }
        guard ScoreOutputFormat(path: output) != nil else {
            throw ValidationError("--output must end in .npy, .csv or .jsonl")
        }
    }

    func run() throws {
        try ExitStatus.run {
            let scorer = try openScorer(model, limits: limitOptions.limits)
            let embeddings = try withFile(input) { try NpyArray(contentsOf: input) }
            try withFile(input) { try checkShape(embeddings, scorer: scorer) }
            let rows = embeddings.shape[0]
            let writer = try withFile(output) {
                try ScoreWriter(path: output, format: ScoreOutputFormat(path: output)!, card: scorer.card,
                                threshold: threshold ?? scorer.card.threshold, rows: rows, columns: scorer.outputWidth)
            }
            let progress = ProgressBar(total: rows, label: "scoring")
            var checker = InputChecker(card: scorer.card, options: checkOptions)
            let workspace = scorer.makeWorkspace(rows: min(batch, rows))
            do {
                var start = 0
                while start < rows {
                    let count = min(batch, rows - start)
                    let result = try withFile(input) { try embeddings.withRows(start, count) { try checker.score($0, with: scorer, workspace: workspace) } }
                    try withFile(output) { try writer.write(result, firstRow: start) }
                    start += count
                    embeddings.releaseRows(before: start)
                    progress.update(start)
                }
                progress.finish()
                try withFile(output) { try writer.finish() }
                if let warning = checker.warning { printError("clipsafety: warning: \(input): \(warning)") }
            } catch {
                progress.finish()
                writer.abandon()
                throw error
            }
        }
    }
}

/// Checks that an input matrix can be scored by the model: 2-D, float, right width.
func checkShape(_ embeddings: NpyArray, scorer: Scorer) throws {
    guard embeddings.shape.count == 2, embeddings.dtype.embeddingElementType != nil else {
        throw ClipSafetyError.mismatch("expected a 2-D float16/float32/float64 matrix, found \(embeddings.dtype.descr) with shape \(embeddings.shape)")
    }
    guard embeddings.shape[1] == scorer.inputWidth else {
        throw ClipSafetyError.mismatch("rows have \(embeddings.shape[1]) values; the model expects \(scorer.inputWidth) (\(scorer.card.backbone) embeddings)")
    }
}
