import ArgumentParser
import Converters
import Foundation
import Jobs
import Inspect
import Runtime

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a model file to the clipsafety native format (docs/FORMAT.md).",
        discussion: "The input's format is identified from its bytes. Card fields come from the catalog for upstream files; flags override them.")

    @Argument(help: "Input model file.")
    var input: String

    @Option(name: .shortAndLong, help: "Output .safetensors file (written atomically).")
    var output: String

    @OptionGroup var meaning: MeaningOptions

    @Option(help: "Architecture spec for heads not recognised from their keys (docs/ARCH-SPEC.md).")
    var arch: String?

    @OptionGroup var limitOptions: LimitOptions

    func validate() throws {
        let inPath = URL(fileURLWithPath: input).standardizedFileURL.path
        let outPath = URL(fileURLWithPath: output).standardizedFileURL.path
        guard inPath != outPath else { throw ValidationError("the output must not overwrite the input") }
    }

    func run() throws {
        try ExitStatus.run {
            try OutputSafety.refuseClobbering(output, inputs: [("input", input)])
            let options = ConversionOptions(fileName: input, stated: meaning.stated, arch: arch, limits: limitOptions.limits)
            let model = try withFile(input) { try ModelLoader.load(path: input, options: options) }
            try withFile(output) { try model.write(to: output) }
            print("\(output): \(model.card.name) (\(model.source.sourceFormat) → \(NativeModel.formatTag)), \(model.graph.count) ops, \(model.tensors.count) tensors")
        }
    }
}
