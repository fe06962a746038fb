import ArgumentParser
import Converters
import Foundation
import Inspect
import Runtime

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe any file clipsafety reads: format, card, layers, tensors, stored values.",
        discussion: """
            The format is identified from the bytes, not the extension. Any file of a format \
            clipsafety reads is described from its headers (a CNN, a training checkpoint, a \
            Keras model of any layers, an HDF5 data file, a 1.5 GB .npy shard); model files \
            are also converted in memory to show the head they are, or why they are none. \
            Nothing is run. Tensor data is read only for --stats. --json prints the report as \
            documented in docs/INSPECT-JSON.md (schema clipsafety-inspect/2). An unrecognised \
            file exits 65.
            """)

    @Argument(help: "Any file: a native .safetensors model, an upstream model, .npy, .npz or .safetensors.")
    var file: String

    @Flag(help: "Print the report as JSON (docs/INSPECT-JSON.md).")
    var json = false

    @Flag(name: [.customLong("stats"), .customLong("tensors")],
          help: "Also read every tensor for min/max/mean/std and NaN/Inf counts (--tensors is the older name).")
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
