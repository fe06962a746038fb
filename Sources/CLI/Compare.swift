import ArgumentParser
import Converters
import Foundation
import Inspect
import Jobs
import Runtime

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Run two models on the same inputs and report how their outputs differ.",
        discussion: """
            Models are native files or any file convert reads (converted in memory). Inputs \
            are a 2-D .npy matrix or an .npz holding one (its 'inputs' member), or N random \
            L2-normalised rows from --seed (the same on every machine; default --random 1000 \
            --seed 0). Reports max and mean |A − B|, the worst rows, and the decisions that \
            flip: labels for prompt classifiers, 'output > threshold' for one-column heads. \
            Both models must take the same input width (exit 65 otherwise). Exit 0 whatever \
            the difference, unless --max-abs-diff is given and exceeded (exit 1).
            """)

    @Argument(help: "Model A.")
    var a: String

    @Argument(help: "Model B.")
    var b: String

    @Option(help: "Inputs: a 2-D .npy matrix, or an .npz whose 'inputs' member is one.")
    var inputs: String?

    @Option(help: "Number of random unit rows (when --inputs is not given).")
    var random: Int?

    @Option(help: "Seed of the random rows.")
    var seed: UInt64 = 0

    @Option(help: "Decision threshold (default: A's card, else B's).")
    var threshold: Double?

    @Option(help: "Exit 1 when the max absolute difference exceeds this.")
    var maxAbsDiff: Double?

    @Option(help: "Worst rows listed.")
    var worst: Int = 5

    @Flag(help: "Print the report as JSON (docs/INSPECT-JSON.md, schema clipsafety-compare/1).")
    var json = false

    @OptionGroup var limitOptions: LimitOptions

    func validate() throws {
        if inputs != nil, random != nil { throw ValidationError("give --inputs or --random, not both") }
        if let random, random <= 0 || random > 10_000_000 { throw ValidationError("--random takes 1 … 10000000 rows") }
        if let maxAbsDiff, !(maxAbsDiff >= 0) { throw ValidationError("--max-abs-diff must be a non-negative number") }
        if let threshold, !threshold.isFinite { throw ValidationError("--threshold must be finite") }
        guard worst >= 1, worst <= 1000 else { throw ValidationError("--worst takes 1 … 1000") }
    }

    func run() throws {
        var exceeded = false
        try ExitStatus.run {
            let job = ModelComparison(a: a, b: b, inputs: inputs.map(ModelComparison.Inputs.file)
                                          ?? .random(rows: random ?? ModelComparison.defaultRandomRows, seed: seed),
                                      threshold: threshold, maxAbsDiff: maxAbsDiff, worst: worst, limits: limitOptions.limits)
            let (report, warning) = try job.run()
            if let warning { printError("clipsafety: warning: inputs: \(warning)") }
            print(json ? try report.json() : report.text(style: Styler(enabled: Colour.forStandardOutput)))
            exceeded = report.withinLimit == false
        }
        if exceeded { throw ExitCode(ExitStatus.verificationFailed.rawValue) }
    }
}
