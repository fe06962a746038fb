import ArgumentParser
import Converters
import Foundation
import Jobs
import Runtime

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a model against reference outputs of the original framework (.npz).",
        discussion: """
            The reference holds `inputs` (N×D), `outputs` (N×K) and optionally `labels` (N). \
            A value passes when |ours − ref| ≤ atol + rtol·|ref|. Exit 0 when every value \
            passes and every label and decision at the model's threshold agrees, 1 otherwise.
            """)

    @Argument(help: "Model: a native .safetensors file or any upstream file clipsafety converts.")
    var model: String

    @Option(help: "Reference .npz with inputs, outputs and optionally labels.")
    var reference: String

    @Option(help: "Absolute tolerance.")
    var atol: Double = 1e-5

    @Option(help: "Relative tolerance.")
    var rtol: Double = 0

    @Flag(help: "Print the report as JSON.")
    var json = false

    @OptionGroup var checkOptions: InputCheckOptions

    @OptionGroup var limitOptions: LimitOptions

    func validate() throws {
        guard atol >= 0, rtol >= 0, atol.isFinite, rtol.isFinite else {
            throw ValidationError("--atol and --rtol must be finite and non-negative")
        }
    }

    func run() throws {
        var passed = false
        try ExitStatus.run {
            let verification = Verification(model: model, reference: reference, atol: atol, rtol: rtol,
                                            checks: checkOptions.settings, limits: limitOptions.limits)
            let (report, warning) = try verification.run()
            if let warning { printError("clipsafety: warning: \(reference): \(warning)") }
            if json {
                print(report.json(model: model, reference: reference))
            } else {
                print(report.text(model: model, reference: reference))
            }
            passed = report.passed
        }
        if !passed { throw ExitCode(ExitStatus.verificationFailed.rawValue) }
    }
}
