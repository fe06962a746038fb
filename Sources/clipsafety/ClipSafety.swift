import ArgumentParser
import Runtime

@main
struct ClipSafety: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clipsafety",
        abstract: "Convert, inspect, run and verify CLIP safety heads (NSFW detectors, violence prompts).",
        discussion: """
            Exit codes: 0 ok, 1 verification failed, 64 usage, 65 bad or unsafe input data, \
            66 missing input, 70 internal error, 73 cannot create output, 74 I/O error.
            """,
        version: clipsafetyVersion,
        subcommands: [Convert.self, Score.self, Verify.self, InspectCommand.self, CompareCommand.self, Bench.self])
}
