import Foundation
import Runtime

/// What a converter needs besides the bytes: the original file name (provenance and catalog
/// look-up), overrides from flags, and the reader limits.
public struct ConversionOptions: Sendable {
    /// File name of the input, without directories.
    public var fileName: String
    /// Overrides the model name (default: from the catalog, else the file name without extension).
    public var name: String?
    /// Overrides the CLIP backbone (`--backbone`).
    public var backbone: String?
    /// Overrides the class labels (`--labels`).
    public var labels: [String]?
    /// Overrides the decision threshold (`--threshold`); the card then says its source is `user`.
    public var threshold: Double?
    /// Overrides the output range (`--output-range`); nil entries mean unbounded.
    public var outputRange: [Double]?
    /// An explicit architecture spec for heads the converters do not recognise (`--arch`).
    public var arch: String?
    public var limits: ReaderLimits

    public init(fileName: String, name: String? = nil, backbone: String? = nil, labels: [String]? = nil,
                threshold: Double? = nil, outputRange: [Double]? = nil, arch: String? = nil,
                limits: ReaderLimits = .init()) {
        self.fileName = fileName
        self.name = name
        self.backbone = backbone
        self.labels = labels
        self.threshold = threshold
        self.outputRange = outputRange
        self.arch = arch
        self.limits = limits
    }

    /// The file name without its last extension, the default model name.
    public var baseName: String {
        let n = (fileName as NSString).lastPathComponent
        let stem = (n as NSString).deletingPathExtension
        return stem.isEmpty ? n : stem
    }

    /// Applies the flag overrides to a card the converter filled from the file and catalog.
    public func applyOverrides(to card: inout ModelCard) {
        if let name { card.name = name }
        if let backbone { card.backbone = backbone }
        if let labels {
            card.labels = labels
            if card.task == .promptClassifier { card.outputColumns = labels }
            if labels.count == 2 { card.positiveLabel = labels[1] }
        }
        if let threshold {
            card.threshold = threshold
            card.thresholdSource = "user"
        }
        if let outputRange { card.outputRange = outputRange }
    }
}
