import Foundation
import Runtime

/// A head found in a file description: the native graph over its tensors, and what a person
/// recognises from the source (its layers, how the head was found).
public struct RecognisedHead: Sendable {
    public var graph: [GraphOp]
    /// The tensors the graph names, under the names the graph uses.
    public var tensors: [Tensor]
    public var inputWidth: Int
    public var outputWidth: Int
    /// The source's layers, with the number of graph ops each became.
    public var layers: [SourceLayer]
    /// One-line facts for people: how the head was recognised, its architecture.
    public var notes: [String]

    public init(graph: [GraphOp], tensors: [Tensor], inputWidth: Int, outputWidth: Int,
                layers: [SourceLayer], notes: [String]) {
        self.graph = graph
        self.tensors = tensors
        self.inputWidth = inputWidth
        self.outputWidth = outputWidth
        self.layers = layers
        self.notes = notes
    }
}

/// The one place a file description becomes a native graph, by its content (never its name):
/// an `--arch` spec over its tensors; a stored layer chain (Keras configs, SavedModel Keras
/// metadata); upstream's heads from their tensor names and shapes; a prompt matrix.
public enum Recogniser {
    public static func recognise(_ d: FileDescription, arch: ArchSpec?) throws -> RecognisedHead {
        if let arch { return try StateDictHead.build(arch, from: d) }
        if let head = try KerasChainHead.recognise(d) { return head }
        if let head = try StateDictHead.recognise(d) { return head }
        if let head = try PromptMatrix.recognise(d) { return head }
        if [.savedModelZip, .savedModelFolder].contains(d.format), d.layers.isEmpty {
            throw ClipSafetyError.unsupported("a SavedModel without keras_metadata.pb (as Keras 3's model.export and plain TensorFlow write it) has no Keras layer list to recognise a head from; its signatures: "
                + (d.signatures.isEmpty ? "none" : d.signatures.map(SavedModelGraph.summary).joined(separator: "; ")))
        }
        switch d.format {
        case .torchZip, .torchLegacy: throw StateDictHead.unknownHead(d)
        case .kerasH5 where d.layers.isEmpty:
            throw ClipSafetyError.unsupported("Keras .h5 without a 'model_config' attribute: a weights-only file (save_weights) has no architecture to convert")
        case .npz: throw ClipSafetyError.unsupported("an .npz archive holds arrays (reference data), not a model")
        case .safetensors:
            throw ClipSafetyError.unsupported("a safetensors file without clipsafety metadata holds tensors but no graph; give its forward pass with --arch (docs/ARCH-SPEC.md)")
        case .zip:
            throw ClipSafetyError.unsupported("a zip archive that is neither a SavedModel, a .keras file, a torch checkpoint nor an .npz")
        case .hdf5:
            throw ClipSafetyError.unsupported("an HDF5 file with no Keras 'model_config' (a model) or 'layer_names' (weights) attribute: no head clipsafety can run was found in it")
        default:
            throw ClipSafetyError.unsupported("\(d.format.summary): no head clipsafety can run was found in it")
        }
    }
}

/// A bare K×D float matrix of prompt embeddings (upstream's violence detectors): scores are
/// `X · Pᵀ`, the class their argmax. clip-retrieval reads the violence matrices this way.
enum PromptMatrix {
    static func recognise(_ d: FileDescription) throws -> RecognisedHead? {
        guard d.format == .npy, d.tensors.count == 1, let t = d.tensors.first else { return nil }
        guard t.shape.count == 2, t.shape[0] > 0, t.shape[1] > 0 else {
            throw ClipSafetyError.mismatch("npy: a prompt matrix is K×D with K, D > 0; this array has shape \(t.shape)")
        }
        guard t.isFloatingPoint else {
            throw ClipSafetyError.mismatch("npy: a prompt matrix holds floats; this one holds \(t.dtype)")
        }
        var prompts = try t.read()
        prompts.name = "prompts"
        let (k, dim) = (t.shape[0], t.shape[1])
        let layer = SourceLayer(name: "", className: "npy array", opCount: 2,
                                notes: ["\(t.dtype) \(k)×\(dim): one row per prompt; class = argmax of the similarities"])
        return RecognisedHead(graph: [.promptScores(prompts: "prompts"), .argmax], tensors: [prompts],
                              inputWidth: dim, outputWidth: k, layers: [layer],
                              notes: ["a bare NumPy matrix: the graph is clip-retrieval's reading of it"])
    }
}
