import ArgumentParser
import Runtime

/// The `clipsafety` command and its subcommands. The executable only calls `main()`; tests
/// parse and run commands in process.
public struct ClipSafetyCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "clipsafety",
        abstract: "Convert, inspect, run and verify CLIP safety heads (NSFW detectors, violence prompts).",
        discussion: ExitStatus.summary,
        version: clipsafetyVersion,
        subcommands: [Convert.self, Score.self, Select.self, Verify.self, InspectCommand.self, DiffCommand.self, CompareCommand.self, Bench.self, ScanCommand.self])

    public init() {}
}
