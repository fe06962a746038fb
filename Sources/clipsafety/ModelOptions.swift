import ArgumentParser
import Converters
import Foundation
import Inspect
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

/// Opens a model (native or upstream, converted in memory) and validates it for scoring.
/// `threads` caps the cores one batch uses (nil: all).
func openScorer(_ path: String, limits: ReaderLimits, threshold: Double? = nil, threads: Int? = nil) throws -> Scorer {
    try withFile(path) {
        var options = ConversionOptions(fileName: (path as NSString).lastPathComponent, limits: limits)
        options.threshold = threshold
        return try Scorer(model: try ModelLoader.load(path: path, options: options), parallelism: threads)
    }
}
