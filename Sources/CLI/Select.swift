import ArgumentParser
import Foundation
import Jobs
import Runtime

struct Select: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pick the rows of Parquet score files that pass a condition; write their keys (and a drop list) as Parquet.",
        discussion: """
            SCORES are Parquet files (or folders of them) written by `score … -o X.parquet` or `--format parquet`. \
            --where takes comparisons of a column with a number (< <= > >= = == !=; true/false for booleans), \
            joined by and/or, with parentheses: --where '"nsfw/nsfw" < 0.5 and "violence/is_violent" = false'. \
            --keep-fraction F --by COLUMN keeps at most F of all rows, those with the lowest COLUMN (ties in file \
            order). A row with a null or NaN in any column named is never kept. The kept list has `shard` (file \
            name without extension), `row` and the key columns (--key; default whichever of key, uid, url exist); \
            the drop list adds `reason` (null, where, keep-fraction).
            """)

    @Argument(help: "Parquet score files, or folders of them.")
    var scores: [String]

    @Option(name: .customLong("where"), help: "Condition a kept row satisfies, e.g. 'nsfw/nsfw < 0.5'.")
    var condition: String?

    @Option(help: "Keep at most this fraction (0...1) of all rows: those with the lowest --by values.")
    var keepFraction: Double?

    @Option(help: "The column --keep-fraction ranks by.")
    var by: String?

    @Option(help: "Columns copied beside shard and row, comma-separated (default: whichever of key, uid, url exist).")
    var key: String?

    @Option(name: .shortAndLong, help: "Parquet file of the kept rows.")
    var output: String

    @Option(help: "Parquet file of the dropped rows, with the reason.")
    var dropped: String?

    @OptionGroup var limitOptions: LimitOptions

    func validate() throws {
        guard condition != nil || keepFraction != nil else { throw ValidationError("give --where, --keep-fraction, or both") }
        if let keepFraction {
            guard keepFraction >= 0, keepFraction <= 1 else { throw ValidationError("--keep-fraction is between 0 and 1") }
            guard by != nil else { throw ValidationError("--keep-fraction needs --by COLUMN") }
        } else if by != nil {
            throw ValidationError("--by goes with --keep-fraction")
        }
        for path in [output] + (dropped.map { [$0] } ?? []) where !path.lowercased().hasSuffix(".parquet") {
            throw ValidationError("outputs end in .parquet (\(path))")
        }
        if let condition {
            do { _ = try WhereExpression.parse(condition) } catch let e as ClipSafetyError { throw ValidationError(e.message) }
        }
    }

    func run() throws {
        try ExitStatus.run {
            let keys = key.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
            let job = Selection(inputs: scores, condition: try condition.map(WhereExpression.parse), keepFraction: keepFraction, by: by,
                                keys: keys, output: output, dropped: dropped, limits: limitOptions.limits)
            let s = try job.run()
            printError("clipsafety: \(s.rows) rows: \(s.kept) kept, \(s.droppedWhere) failed --where, \(s.droppedFraction) beyond --keep-fraction, \(s.droppedNull) without a score; kept rows in \(output)")
        }
    }
}
