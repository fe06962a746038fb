import Foundation
import Runtime

/// What the user states about a model's meaning on the command line. Nothing here is ever
/// inferred from the file: not from a sigmoid, a width or a name.
public struct StatedMeaning: Sendable, Equatable {
    /// `--task`.
    public var task: ModelCard.Task?
    /// `--labels`: output column names (one per output), or the two class names of a single
    /// thresholded output (`safe,nsfw`).
    public var labels: [String]?
    /// `--threshold`.
    public var threshold: Double?
    /// `--backbone`.
    public var backbone: String?
    /// `--output-range`.
    public var outputRange: [Double]?
    /// `--name`.
    public var name: String?

    public init(task: ModelCard.Task? = nil, labels: [String]? = nil, threshold: Double? = nil,
                backbone: String? = nil, outputRange: [Double]? = nil, name: String? = nil) {
        self.task = task
        self.labels = labels
        self.threshold = threshold
        self.backbone = backbone
        self.outputRange = outputRange
        self.name = name
    }
}

/// The one place a converted model's card is decided (docs/FORMAT.md, "Card policy"):
/// a file whose bytes are in the catalog gets the catalog's card, whatever its name; anything
/// else gets task `unknown`, columns `output_0…`, no threshold and no precondition. Then what
/// the user stated replaces the matching fields.
public enum CardPolicy {
    /// The card for a head converted from `bytes`, with the widths its graph has.
    public static func card(sha256 digest: String, gitBlobOf bytes: Data? = nil, fileName: String,
                            inputWidth: Int, outputWidth: Int, endsWithSigmoid: Bool,
                            stated: StatedMeaning) throws -> ModelCard {
        var card: ModelCard
        if let known = Catalog.lookup(sha256: digest) ?? bytes.flatMap({ Catalog.lookup(bytes: $0) }) {
            card = known.card
            guard card.embeddingDim == inputWidth, card.outputColumns.count == outputWidth else {
                throw ClipSafetyError.mismatch("this is \(known.file) by its checksum, which takes \(known.embeddingDim) inputs and gives \(card.outputColumns.count) outputs, but its graph has \(inputWidth) and \(outputWidth)")
            }
        } else {
            card = unknown(name: baseName(fileName), inputWidth: inputWidth, outputWidth: outputWidth,
                           endsWithSigmoid: endsWithSigmoid)
        }
        try apply(stated, to: &card)
        return card
    }

    /// A bare `.npy` matrix is a prompt matrix only when the catalog knows it or the user says
    /// so (`--prompts`, `--task prompt-classifier`, `--labels`): otherwise it is far more likely
    /// an embedding matrix given where a model was expected.
    public static func requirePromptMeaning(sha256 digest: String, rows: Int, columns: Int, stated: StatedMeaning) throws {
        guard Catalog.lookup(sha256: digest) == nil, stated.task != .promptClassifier, stated.labels == nil else { return }
        throw ClipSafetyError.usage("looks like an embedding matrix (\(rows)×\(columns)), not a model; did you swap MODEL and INPUT? (a prompt matrix of your own needs --prompts or --labels)")
    }

    /// A card that claims nothing about meaning: numbers without a name. A final sigmoid is a
    /// fact about the numbers (they lie in [0, 1]), not about what they mean.
    public static func unknown(name: String, inputWidth: Int, outputWidth: Int, endsWithSigmoid: Bool) -> ModelCard {
        ModelCard(name: name, task: .unknown, backbone: "unknown", embeddingDim: inputWidth,
                  inputPrecondition: "none", outputKind: endsWithSigmoid ? .probability : .score,
                  outputColumns: (0..<outputWidth).map { "output_\($0)" },
                  outputRange: endsWithSigmoid ? [0, 1] : nil, labels: [],
                  description: "a head converted by clipsafety; what its outputs mean was not stated (--task, --labels)")
    }

    /// Replaces the card's fields with what the user stated; throws `.usage` for statements
    /// that cannot fit the graph (label counts, thresholds on several outputs).
    public static func apply(_ stated: StatedMeaning, to card: inout ModelCard) throws {
        let outputs = card.outputColumns.count
        if let name = stated.name { card.name = name }
        if let backbone = stated.backbone {
            guard card.backbone == "unknown" || card.backbone == backbone else {
                throw ClipSafetyError.usage("--backbone \(backbone) contradicts the model's card, which says \(card.backbone)")
            }
            card.backbone = backbone
        }
        if let task = stated.task, task != card.task { restate(&card, as: task) }
        if let labels = stated.labels { try label(&card, labels, outputs: outputs) }
        if let threshold = stated.threshold {
            guard outputs == 1 else {
                throw ClipSafetyError.usage("--threshold applies to a single output; this model has \(outputs)")
            }
            if card.outputKind == .probability, let range = stated.outputRange ?? card.outputRange,
               range.count == 2, !(range[0]...range[1]).contains(threshold) {
                throw ClipSafetyError.usage("--threshold \(threshold) lies outside the output's range [\(range[0]), \(range[1])]: no row could ever pass it")
            }
            card.threshold = threshold
            card.thresholdSource = "user"
        }
        if let range = stated.outputRange { card.outputRange = range }
    }

    /// Changes the task and the fields that follow from it; the precondition stays what the
    /// card said (`none` unless the catalog knows better).
    static func restate(_ card: inout ModelCard, as task: ModelCard.Task) {
        card.task = task
        card.description = nil
        switch task {
        case .binaryNSFW:
            card.positiveLabel = "nsfw"
            if card.labels.count != 2 { card.labels = ["safe", "nsfw"] }
            if card.outputColumns.count == 1 { card.outputColumns = ["nsfw"] }
        case .promptClassifier:
            card.outputKind = .logits
            if card.labels.count != card.outputColumns.count { card.labels = card.outputColumns }
        case .regression, .unknown:
            card.positiveLabel = nil
            card.threshold = nil
            card.thresholdSource = nil
        }
    }

    /// `--labels`: class names of a prompt classifier (one per output), the `[negative,
    /// positive]` pair of a single thresholded output, or the output columns' names.
    static func label(_ card: inout ModelCard, _ labels: [String], outputs: Int) throws {
        if outputs == 1 && labels.count == 2 {
            card.labels = labels
            card.positiveLabel = labels[1]
            card.outputColumns = [labels[1]]
            return
        }
        guard labels.count == outputs else {
            throw ClipSafetyError.usage("--labels gives \(labels.count) names; the model has \(outputs) outputs")
        }
        card.outputColumns = labels
        if card.task == .promptClassifier || card.task == .binaryNSFW { card.labels = labels }
        if card.task == .promptClassifier, labels.count == 2 { card.positiveLabel = labels[1] }
    }

    /// The file name without directories and its last extension: the default model name.
    public static func baseName(_ fileName: String) -> String {
        let n = (fileName as NSString).lastPathComponent
        let stem = (n as NSString).deletingPathExtension
        return stem.isEmpty ? n : stem
    }
}
