import Foundation
import Runtime

/// Converts a `.npy` K×D prompt matrix (upstream's violence detectors) to a native
/// prompt classifier: `prompt_scores` (A = X · Pᵀ) then `argmax`.
///
/// clip-retrieval reads the violence matrices as `argmax(X · Pᵀ) == 1`, so their labels are
/// `["other", "violent"]` (class 1 = violent); `--labels` sets others. The backbone comes from
/// the catalog, else `--backbone`, else `unknown`.
public enum NpyPromptConverter {
    public static func convert(bytes: Data, options: ConversionOptions) throws -> NativeModel {
        try convertWithDetails(bytes: bytes, options: options).model
    }

    /// `convert`, plus the matrix as the one source layer (for `inspect`).
    public static func convertWithDetails(bytes: Data, options: ConversionOptions) throws -> (model: NativeModel, details: SourceDetails) {
        let array = try NpyArray(bytes: bytes)
        guard array.shape.count == 2, array.shape[0] > 0, array.shape[1] > 0 else {
            throw ClipSafetyError.mismatch("npy: a prompt matrix is K×D with K, D > 0; this array has shape \(array.shape)")
        }
        let dtype: DType
        switch array.dtype {
        case .f2: dtype = .f16
        case .f4: dtype = .f32
        case .f8: dtype = .f64
        default:
            throw ClipSafetyError.mismatch("npy: a prompt matrix holds floats; this one holds \(array.dtype.descr)")
        }
        guard array.elementCount <= options.limits.maxTensorElements else {
            throw ClipSafetyError.limitExceeded("npy: \(array.elementCount) elements, above the limit of \(options.limits.maxTensorElements)")
        }
        let (k, d) = (array.shape[0], array.shape[1])
        if let labels = options.labels, labels.count != k {
            throw ClipSafetyError.mismatch("--labels gives \(labels.count) labels; the matrix has \(k) prompts (rows)")
        }
        let prompts = try Tensor(name: "prompts", dtype: dtype, shape: array.shape, data: Data(array.data))
        var card = try card(bytes: bytes, options: options, prompts: k, width: d)
        options.applyOverrides(to: &card)
        let source = Provenance(originalFile: options.fileName, sha256: sha256Hex(bytes), sourceFormat: "npy")
        let model = NativeModel(card: card, source: source,
                                graph: [.promptScores(prompts: "prompts"), .argmax], tensors: [prompts])
        let layer = SourceLayer(name: "", className: "npy array", opCount: 2,
                                notes: ["\(array.dtype.descr) \(k)×\(d): one row per prompt; class = argmax of the similarities"])
        return (model, SourceDetails(layers: [layer], notes: ["a bare NumPy matrix: the graph is clip-retrieval's reading of it"]))
    }

    /// The catalog's card (violence matrices), or a plain prompt-classifier card.
    static func card(bytes: Data, options: ConversionOptions, prompts k: Int, width d: Int) throws -> ModelCard {
        if let m = Catalog.lookup(bytes: bytes) {
            guard m.task == .promptClassifier, m.embeddingDim == d, m.card.outputColumns.count == k else {
                throw ClipSafetyError.mismatch("this is \(m.file) by its checksum, but the matrix is \(k)×\(d)")
            }
            return m.card
        }
        if let m = Catalog.lookup(fileName: options.fileName), m.task == .promptClassifier,
           m.embeddingDim == d, m.card.outputColumns.count == k {
            var c = m.card
            c.name = options.baseName
            return c
        }
        let labels = (0..<k).map { "class_\($0)" }
        return ModelCard(
            name: options.baseName, task: .promptClassifier, backbone: "unknown", embeddingDim: d,
            inputPrecondition: "l2-normalized", outputKind: .logits, outputColumns: labels,
            outputRange: nil, labels: labels, positiveLabel: nil, threshold: nil,
            thresholdSource: nil,
            description: "Similarity of an image embedding to \(k) prompt embeddings; the largest wins")
    }
}
