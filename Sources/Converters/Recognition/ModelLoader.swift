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

    public static func convert(path: String, options: ConversionOptions) throws -> Conversion {
        try convert(bytes: try MappedFile.map(path, limits: options.limits), options: options)
    }

    /// Converts bytes of any supported kind.
    public static func convert(bytes: Data, options: ConversionOptions) throws -> Conversion {
        let kind = try FormatRegistry.identify(bytes, limits: options.limits)
        if kind == .native { return Conversion(model: try native(bytes: bytes, options: options), details: nil, kind: kind) }
        if kind == .onnx { return try ONNXImport.convert(bytes: bytes, options: options) }
        let description = try FormatRegistry.describe(bytes, limits: options.limits)
        let arch = try options.arch.map(ArchSpec.init(parsing:))
        let head = try Recogniser.recognise(description, arch: arch)
        let sha = sha256Hex(bytes)
        if description.format == .npy {
            try CardPolicy.requirePromptMeaning(sha256: sha, rows: head.outputWidth, columns: head.inputWidth, stated: options.stated)
        }
        let card = try CardPolicy.card(sha256: sha, gitBlobOf: bytes, fileName: options.fileName,
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
