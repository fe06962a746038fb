import ArgumentParser
import Converters
import Foundation
import Inspect
import Runtime

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Compare two model files tensor by tensor: structure and values.",
        discussion: """
            Any two files clipsafety reads (two checkpoints, a .pth and its .safetensors \
            conversion, a native file and its ONNX export). Tensors are paired by name; a \
            source model against its native file through the converter, a model against \
            clipsafety's ONNX export through the exporter; by position when no name is shared \
            and the shapes agree in order. Reports tensors only in A or B, changed dtypes and \
            shapes, and per pair max |Δ|, max relative Δ, the worst element and how many \
            elements differ beyond --atol (values compared as float64; NaN equals NaN, NaN \
            against a number differs); stored layers and signatures added, removed or changed. \
            Exit 0 when identical within --atol, 1 when they differ. --json: schema \
            clipsafety-diff/1 in docs/INSPECT-JSON.md.
            """)

    @Argument(help: "File A.")
    var a: String

    @Argument(help: "File B.")
    var b: String

    @Option(help: "Largest |a − b| still counted as equal (default 0: values must be equal).")
    var atol: Double = 0

    @Option(help: "Architecture spec for a source file converted to meet a native file (docs/ARCH-SPEC.md).")
    var arch: String?

    @Flag(help: "Print the report as JSON (docs/INSPECT-JSON.md, schema clipsafety-diff/1).")
    var json = false

    @OptionGroup var limitOptions: LimitOptions

    func validate() throws {
        guard atol >= 0, atol.isFinite else { throw ValidationError("--atol must be a finite number ≥ 0") }
    }

    func run() throws {
        var differ = false
        try ExitStatus.run {
            let report = try ModelDiff.diff(a, b, options: .init(atol: atol, limits: limitOptions.limits, arch: arch))
            print(json ? try report.json() : DiffText.render(report, style: Styler(enabled: Colour.forStandardOutput)))
            differ = !report.identical
        }
        if differ { throw ExitCode(ExitStatus.verificationFailed.rawValue) }
    }
}
