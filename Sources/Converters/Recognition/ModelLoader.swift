import Foundation
import Runtime

/// A converted model and what the source format showed beyond it (for `inspect`).
public struct Conversion: Sendable {
    public var model: NativeModel
    /// Nil for native files, which carry no source layers.
    public var details: SourceDetails?
    public var kind: FileKind
}

/// Opens any model file clipsafety reads as a native model: native files are validated,
/// others described by their format's reader, recognised, and given a card by the card policy.
/// Every command that takes a model comes through here, with the user's limits.
public enum ModelLoader {
    /// Reads `path` (mapped, within `options.limits.maxFileBytes`) and converts it.
    public static func load(path: String, options: ConversionOptions? = nil) throws -> NativeModel {
        try convert(path: path, options: options ?? ConversionOptions(fileName: path)).model
    }

    /// Converts the file at `path`, or the SavedModel folder when `path` is a folder.
    public static func convert(path: String, options: ConversionOptions) throws -> Conversion {
        if SavedModelFolder.isFolder(path) {
            return try convert(folder: SavedModelFolder(path: path, limits: options.limits), options: options)
        }
        return try convert(bytes: try MappedFile.map(path, limits: options.limits), options: options)
    }

    /// Converts a SavedModel folder; its provenance SHA-256 is the folder digest
    /// (`SavedModelFolder.sha256`), which no catalog entry has, so its card is stated, not known.
    /// `described`: the folder's description when the caller already has it (`inspect`).
    public static func convert(folder: SavedModelFolder, described: FileDescription? = nil, options: ConversionOptions) throws -> Conversion {
        let description = try described ?? folder.describe(limits: options.limits)
        return try convert(description: description, kind: .savedModelFolder, sha: folder.sha256, catalogBytes: nil, options: options)
    }

    /// Converts bytes of any supported kind. `described`: their description when the caller
    /// already made it with the same limits (`inspect` describes a file once, not twice).
    public static func convert(bytes: Data, described: FileDescription? = nil, options: ConversionOptions) throws -> Conversion {
        let kind = try FormatRegistry.identify(bytes, limits: options.limits)
        if kind == .native { return Conversion(model: try native(bytes: bytes, options: options), details: nil, kind: kind) }
        if kind == .onnx { return try ONNXImport.convert(bytes: bytes, options: options) }
        let description = try described ?? FormatRegistry.describe(bytes, limits: options.limits)
        return try convert(description: description, kind: kind, sha: sha256Hex(bytes), catalogBytes: bytes, options: options)
    }

    /// Recognises a head in a description and gives it a card; `kind` is what the bytes were
    /// identified as (the provenance's source format), `catalogBytes` the file's bytes for the
    /// catalog's git-blob match (nil for a folder).
    static func convert(description: FileDescription, kind: FileKind, sha: String, catalogBytes: Data?,
                        options: ConversionOptions) throws -> Conversion {
        let arch = try options.arch.map(ArchSpec.init(parsing:))
        let head = try Recogniser.recognise(description, arch: arch)
        if description.format == .npy {
            try CardPolicy.requirePromptMeaning(sha256: sha, rows: head.outputWidth, columns: head.inputWidth, stated: options.stated)
        }
        let card = try CardPolicy.card(sha256: sha, gitBlobOf: catalogBytes, fileName: options.fileName,
                                       inputWidth: head.inputWidth, outputWidth: head.outputWidth,
                                       endsWithSigmoid: head.graph.last == .sigmoid, stated: options.stated)
        let source = Provenance(originalFile: options.fileName, sha256: sha, sourceFormat: kind.rawValue)
        let model = NativeModel(card: card, source: source, graph: head.graph, tensors: head.tensors)
        try model.validate(limits: options.limits)
        let details = SourceDetails(layers: head.layers, signature: description.signatures.first,
                                    notes: description.notes + head.notes)
        return Conversion(model: model, details: details, kind: kind)
    }

    /// A native file, validated, with the user's statements applied to its card.
    static func native(bytes: Data, options: ConversionOptions) throws -> NativeModel {
        var model = try NativeModel(bytes: bytes)
        try model.validate(limits: options.limits)
        try CardPolicy.apply(options.stated, to: &model.card)
        return model
    }
}
