import ArgumentParser
import Converters
import Foundation
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

    @Option(help: "Model name in the card.")
    var name: String?

    @Option(help: "CLIP backbone, e.g. ViT-L-14/openai.")
    var backbone: String?

    @Option(help: "Class labels, comma-separated (e.g. other,violent).")
    var labels: String?

    @Option(help: "Default decision threshold.")
    var threshold: Double?

    @Option(help: "Output range as low,high.")
    var outputRange: String?

    @Option(help: "Architecture spec for heads not recognised from their keys (docs/ARCH-SPEC.md).")
    var arch: String?

    @OptionGroup var limitOptions: LimitOptions

    func validate() throws {
        if let outputRange {
            let parts = outputRange.split(separator: ",").compactMap { Double($0) }
            guard parts.count == 2, parts[0] < parts[1] else {
                throw ValidationError("--output-range takes low,high with low < high")
            }
        }
        if let labels, labels.split(separator: ",").isEmpty {
            throw ValidationError("--labels needs at least one label")
        }
        let inPath = URL(fileURLWithPath: input).standardizedFileURL.path
        let outPath = URL(fileURLWithPath: output).standardizedFileURL.path
        guard inPath != outPath else { throw ValidationError("the output must not overwrite the input") }
    }

    func run() throws {
        try ExitStatus.run {
            var options = ConversionOptions(fileName: (input as NSString).lastPathComponent, limits: limitOptions.limits)
            options.name = name
            options.backbone = backbone
            options.labels = labels.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
            options.threshold = threshold
            options.outputRange = outputRange.map { $0.split(separator: ",").compactMap { Double($0) } }
            options.arch = arch
            let model = try withFile(input) { () throws -> NativeModel in
                let m = try ModelLoader.load(path: input, options: options)
                _ = try Scorer(model: m)  // never write a model that cannot run
                return m
            }
            try withFile(output) { try model.write(to: output) }
            print("\(output): \(model.card.name) (\(model.source.sourceFormat) → \(NativeModel.formatTag)), \(model.graph.count) ops, \(model.tensors.count) tensors")
        }
    }
}
