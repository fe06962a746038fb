import ArgumentParser
import Converters
import Foundation
import Jobs
import Inspect
import Runtime

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a model file to the clipsafety native format (docs/FORMAT.md) or to ONNX (docs/ONNX.md).",
        discussion: "The input's format is identified from its bytes. Card fields come from the catalog for upstream files; flags override them.")

    @Argument(help: "Input model file.")
    var input: String

    @Option(name: .shortAndLong, help: "Output file, written atomically: .safetensors (native) or .onnx (docs/ONNX.md).")
    var output: String

    @Option(help: "Output format, when the extension does not say: native or onnx.")
    var to: OutputFormat?

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
            let onnx = (to ?? OutputFormat(path: output)) == .onnx
            try withFile(output) { onnx ? try ONNXExport.write(model, to: output) : try model.write(to: output) }
            let written = onnx ? "ONNX opset \(ONNXExport.opsetVersion)" : NativeModel.formatTag
            print("\(output): \(model.card.name) (\(model.source.sourceFormat) → \(written)), \(model.graph.count) ops, \(model.tensors.count) tensors")
        }
    }
}

/// What `convert` writes: chosen by `--to`, else by the output's extension (`.onnx`).
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case native, onnx

    init(path: String) {
        self = path.lowercased().hasSuffix(".onnx") ? .onnx : .native
    }
}
