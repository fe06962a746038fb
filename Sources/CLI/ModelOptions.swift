import ArgumentParser
import Converters
import Foundation
import Inspect
import Jobs
import Runtime

/// Options every command that opens a model shares: limits for upstream files.
struct LimitOptions: ParsableArguments {
    @Option(help: "Largest input file read, in bytes.")
    var maxFileBytes: Int = ReaderLimits().maxFileBytes

    @Option(help: "Largest total of uncompressed bytes read from one archive.")
    var maxUncompressedBytes: Int = ReaderLimits().maxUncompressedBytes

    @Option(help: "Largest element count of one tensor.")
    var maxTensorElements: Int = ReaderLimits().maxTensorElements

    var limits: ReaderLimits {
        var l = ReaderLimits()
        l.maxFileBytes = maxFileBytes
        l.maxUncompressedBytes = maxUncompressedBytes
        l.maxTensorElements = maxTensorElements
        return l
    }

    func validate() throws {
        guard maxFileBytes > 0, maxUncompressedBytes > 0, maxTensorElements > 0 else {
            throw ValidationError("limits must be positive")
        }
    }
}

/// What the user states about a model's meaning; the card policy applies it (docs/FORMAT.md,
/// "Card policy"). Nothing here is guessed from the file.
struct MeaningOptions: ParsableArguments {
    @Option(help: "Model name in the card.")
    var name: String?

    @Option(help: "What the head does: \(ModelCard.Task.allCases.map(\.rawValue).joined(separator: ", ")).")
    var task: String?

    @Flag(help: "The input .npy is a K×D prompt matrix (same as --task prompt-classifier).")
    var prompts = false

    @Option(help: "CLIP backbone, e.g. ViT-L-14/openai.")
    var backbone: String?

    @Option(help: "Output names, comma-separated (e.g. other,violent), or negative,positive for one thresholded output.")
    var labels: String?

    @Option(help: "Decision threshold: positive when the output is above it.")
    var threshold: Double?

    @Option(help: "Output range as low,high.")
    var outputRange: String?

    var stated: StatedMeaning {
        StatedMeaning(task: prompts ? .promptClassifier : task.flatMap(ModelCard.Task.init(rawValue:)),
                      labels: labels.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } },
                      threshold: threshold, backbone: backbone,
                      outputRange: outputRange.map { $0.split(separator: ",").compactMap { Double($0) } }, name: name)
    }

    func validate() throws {
        if prompts, let task, task != ModelCard.Task.promptClassifier.rawValue {
            throw ValidationError("--prompts says prompt-classifier; --task says \(task)")
        }
        if let task, ModelCard.Task(rawValue: task) == nil {
            throw ValidationError("--task must be one of \(ModelCard.Task.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let outputRange {
            let parts = outputRange.split(separator: ",").compactMap { Double($0) }
            guard parts.count == 2, parts[0] < parts[1] else {
                throw ValidationError("--output-range takes low,high with low < high")
            }
        }
        if let labels, labels.split(separator: ",").isEmpty {
            throw ValidationError("--labels needs at least one label")
        }
        if let threshold, !threshold.isFinite { throw ValidationError("--threshold must be a finite number") }
    }
}

/// `--normalize` and `--strict`, shared by the commands that score inputs.
struct InputCheckOptions: ParsableArguments {
    @Flag(help: "L2-normalise every input row before scoring.")
    var normalize = false

    @Flag(help: "Refuse (exit 65) inputs that break the model's precondition or hold NaN/infinity, instead of warning.")
    var strict = false

    var settings: InputCheckSettings { InputCheckSettings(normalize: normalize, strict: strict) }
}
