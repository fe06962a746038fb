import ArgumentParser
import Converters
import Foundation
import Inspect
import Runtime

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe any file clipsafety reads: format, card, provenance, layers, tensors.",
        discussion: """
            The format is identified from the bytes, not the extension. Upstream models are \
            converted in memory to be described; nothing is run. Native files are read from \
            their header; tensor data is read only for --tensors. --json prints the report as \
            documented in docs/INSPECT-JSON.md (schema clipsafety-inspect/1). An unrecognised \
            file exits 65.
            """)

    @Argument(help: "Any file: a native .safetensors model, an upstream model, .npy, .npz or .safetensors.")
    var file: String

    @Flag(help: "Print the report as JSON (docs/INSPECT-JSON.md).")
    var json = false

    @Flag(help: "List every stored tensor with dtype, shape, bytes, min/max/mean/std and NaN/Inf counts.")
    var tensors = false

    @OptionGroup var limitOptions: LimitOptions

    func run() throws {
        try ExitStatus.run {
            let report = try withFile(file) {
                try FileSummary.inspect(path: file, options: .init(tensors: tensors, limits: limitOptions.limits))
            }
            if json {
                print(try report.json())
            } else {
                print(InspectText.render(report, style: Styler(enabled: Colour.forStandardOutput)))
            }
        }
    }
}
