/// What a converted model is for and what its numbers mean; stored as JSON under the
/// `model` metadata key (docs/FORMAT.md, "Model card").
public struct ModelCard: Codable, Equatable, Sendable {
    public enum Task: String, Codable, Sendable, CaseIterable {
        case binaryNSFW = "binary-nsfw"
        case promptClassifier = "prompt-classifier"
        case regression
        /// Nobody has said what the head is for: the outputs are numbers without a meaning,
        /// and no decision is made from them.
        case unknown
    }

    public enum OutputKind: String, Codable, Sendable, CaseIterable {
        /// In [0, 1] (after a sigmoid).
        case probability
        /// A real number with no fixed range (e.g. H/14's raw regression output).
        case score
        /// Unnormalised class scores (e.g. prompt similarities); read with `argmax`.
        case logits
    }

    public var name: String
    public var task: Task
    /// CLIP backbone the embeddings must come from, e.g. `ViT-L-14/openai`.
    public var backbone: String
    /// Width of the input rows.
    public var embeddingDim: Int
    /// What input rows must satisfy, e.g. `l2-normalized`; `none` when nothing is required.
    public var inputPrecondition: String
    public var outputKind: OutputKind
    /// One name per output column, e.g. `["nsfw"]` or `["other", "violent"]`.
    public var outputColumns: [String]
    /// Known range of every output column, `[low, high]`; nil when unbounded.
    public var outputRange: [Double]?
    /// Class names: index i is class i (prompt classifiers), or `[negative, positive]`.
    public var labels: [String]
    /// The label a positive decision means (`nsfw`, `violent`).
    public var positiveLabel: String?
    /// Decision threshold for single-column outputs: positive when `output > threshold`.
    public var threshold: Double?
    /// Where the threshold comes from (`upstream README`, `clip-retrieval`, `user`).
    public var thresholdSource: String?
    /// One sentence for people.
    public var description: String?

    public init(name: String, task: Task, backbone: String, embeddingDim: Int,
                inputPrecondition: String = "l2-normalized", outputKind: OutputKind,
                outputColumns: [String], outputRange: [Double]? = nil, labels: [String],
                positiveLabel: String? = nil, threshold: Double? = nil,
                thresholdSource: String? = nil, description: String? = nil) {
        self.name = name
        self.task = task
        self.backbone = backbone
        self.embeddingDim = embeddingDim
        self.inputPrecondition = inputPrecondition
        self.outputKind = outputKind
        self.outputColumns = outputColumns
        self.outputRange = outputRange
        self.labels = labels
        self.positiveLabel = positiveLabel
        self.threshold = threshold
        self.thresholdSource = thresholdSource
        self.description = description
    }

    enum CodingKeys: String, CodingKey {
        case name, task, backbone
        case embeddingDim = "embedding_dim"
        case inputPrecondition = "input_precondition"
        case outputKind = "output_kind"
        case outputColumns = "output_columns"
        case outputRange = "output_range"
        case labels
        case positiveLabel = "positive_label"
        case threshold
        case thresholdSource = "threshold_source"
        case description
    }
}

/// Where a native file came from; stored as JSON under the `source` metadata key.
public struct Provenance: Codable, Equatable, Sendable {
    /// File name (no directories) of the converted upstream file.
    public var originalFile: String
    /// Lower-case hex SHA-256 of that file's bytes.
    public var sha256: String
    /// `savedmodel-zip`, `keras-h5`, `keras-v3`, `torch-zip`, `torch-legacy`, `npy`, `hand-built`.
    public var sourceFormat: String
    /// `clipsafety <version>` of the converter that wrote the file.
    public var converter: String

    public init(originalFile: String, sha256: String, sourceFormat: String, converter: String = "clipsafety \(clipsafetyVersion)") {
        self.originalFile = originalFile
        self.sha256 = sha256
        self.sourceFormat = sourceFormat
        self.converter = converter
    }

    enum CodingKeys: String, CodingKey {
        case originalFile = "original_file"
        case sha256
        case sourceFormat = "source_format"
        case converter
    }
}

/// The version of this package, recorded in provenance and printed by `--version`.
public let clipsafetyVersion = "0.1.0"
