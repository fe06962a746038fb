import Converters
import Foundation
import Runtime

/// Everything `inspect` reports about one file; `--json` prints it as documented in
/// docs/INSPECT-JSON.md (schema `clipsafety-inspect/1`). Absent values are `null`, never
/// missing keys, so consumers can rely on the shape.
public struct InspectReport: Encodable, Sendable {
    public static let schemaID = "clipsafety-inspect/1"

    public var file: FileInfo
    public var format: FormatInfo
    /// Nil for files that are not models (reference arrays, plain safetensors).
    public var model: ModelSection?
    /// Stored tensors or arrays: always for array files, for models only with `--tensors`.
    public var tensors: [TensorEntry]?

    public struct FileInfo: Codable, Equatable, Sendable {
        public var path: String
        public var bytes: Int
        public var sha256: String
    }

    public struct FormatInfo: Codable, Equatable, Sendable {
        /// A `FileKind` raw value (`savedmodel-zip`, `clipsafety-native`, `npz`, …).
        public var id: String
        public var description: String
        /// True when the file was converted in memory to be described (upstream formats).
        public var convertedInMemory: Bool

        enum CodingKeys: String, CodingKey {
            case id, description
            case convertedInMemory = "converted_in_memory"
        }
    }

    /// Which catalog entry the file is, and how that was established.
    public struct Identification: Codable, Equatable, Sendable {
        public enum Method: String, Codable, Sendable {
            /// The file's SHA-256 is the upstream file's.
            case sha256
            /// The file's git blob id is the upstream file's.
            case gitBlob = "git-blob"
            /// A native file whose provenance records the upstream file's SHA-256.
            case provenance
        }
        public var name: String
        public var file: String
        public var matchedBy: Method

        enum CodingKeys: String, CodingKey {
            case name, file
            case matchedBy = "matched_by"
        }
    }

    public struct ModelSection: Encodable, Sendable {
        public var card: ModelCard
        /// The card in one sentence for people (`CardText`).
        public var cardText: String
        public var identification: Identification?
        /// The stored provenance of a native file; nil for upstream files.
        public var provenance: Provenance?
        public var signature: ServingSignature?
        public var sourceNotes: [String]
        public var layers: [LayerRow]
        public var totalParameters: Int

        enum CodingKeys: String, CodingKey {
            case card, identification, provenance, signature, layers
            case cardText = "card_text"
            case sourceNotes = "source_notes"
            case totalParameters = "total_parameters"
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(card, forKey: .card)
            try c.encode(cardText, forKey: .cardText)
            try c.encode(identification, forKey: .identification)
            try c.encode(provenance, forKey: .provenance)
            try c.encode(signature, forKey: .signature)
            try c.encode(sourceNotes, forKey: .sourceNotes)
            try c.encode(layers, forKey: .layers)
            try c.encode(totalParameters, forKey: .totalParameters)
        }
    }

    public struct TensorEntry: Encodable, Equatable, Sendable {
        public var name: String
        public var dtype: String
        public var shape: [Int]
        public var bytes: Int
        /// Nil unless statistics were asked for (`--tensors`) or the file is an array file.
        public var stats: TensorStats?

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(dtype, forKey: .dtype)
            try c.encode(shape, forKey: .shape)
            try c.encode(bytes, forKey: .bytes)
            try c.encode(stats, forKey: .stats)
        }

        enum CodingKeys: String, CodingKey { case name, dtype, shape, bytes, stats }
    }

    enum CodingKeys: String, CodingKey { case schema, file, format, model, tensors }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.schemaID, forKey: .schema)
        try c.encode(file, forKey: .file)
        try c.encode(format, forKey: .format)
        try c.encode(model, forKey: .model)
        try c.encode(tensors, forKey: .tensors)
    }

    /// Sorted keys, two-space indentation, `/` not escaped.
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

/// Builds an `InspectReport` from a file's bytes: identifies the format from the bytes,
/// converts upstream models in memory (never running them), and for native files reads only
/// the header unless tensor statistics are asked for.
public enum FileSummary {
    public struct Options: Sendable {
        /// Compute statistics of every stored tensor (one streaming pass each).
        public var tensors: Bool
        public var limits: ReaderLimits
        public init(tensors: Bool = false, limits: ReaderLimits = .init()) {
            self.tensors = tensors
            self.limits = limits
        }
    }

    public static func inspect(path: String, options: Options = .init()) throws -> InspectReport {
        try inspect(bytes: try MappedFile.map(path, limits: options.limits), path: path, options: options)
    }

    public static func inspect(bytes: Data, path: String, options: Options = .init()) throws -> InspectReport {
        let kind = try FormatRegistry.identify(bytes, limits: options.limits)
        let sha = sha256Hex(bytes)
        var report = InspectReport(
            file: .init(path: path, bytes: bytes.count, sha256: sha),
            format: .init(id: kind.rawValue, description: kind.summary, convertedInMemory: false),
            model: nil, tensors: nil)
        let conversion = ConversionOptions(fileName: path, limits: options.limits)
        switch kind {
        case .native:
            let model = try ModelLoader.convert(bytes: bytes, options: conversion).model
            report.model = section(model: model, details: nil, identification: identification(provenance: model.source), provenance: model.source)
            if options.tensors { report.tensors = model.tensors.map { entry($0, stats: true) } }
        case .safetensors, .npz:
            let description = try FormatRegistry.describe(bytes, limits: options.limits)
            report.tensors = try description.tensors.map { try entry($0.read(), stats: options.tensors || kind == .npz) }
        case .npy:
            // A bare matrix is a model only when the catalog knows it as a prompt matrix.
            let description = try FormatRegistry.describe(bytes, limits: options.limits)
            var array = try description.tensors[0].read()
            array.name = CardPolicy.baseName(path)
            report.tensors = [entry(array, stats: true)]
            if let known = identification(bytes: bytes, sha: sha),
               Catalog.models.first(where: { $0.name == known.name })?.task == .promptClassifier {
                let converted = try ModelLoader.convert(bytes: bytes, options: conversion)
                report.model = section(model: converted.model, details: converted.details, identification: known, provenance: nil)
                report.format.convertedInMemory = true
            }
        default:
            let converted = try ModelLoader.convert(bytes: bytes, options: conversion)
            report.format.convertedInMemory = true
            report.model = section(model: converted.model, details: converted.details,
                                   identification: identification(bytes: bytes, sha: sha), provenance: nil)
            if options.tensors { report.tensors = converted.model.tensors.map { entry($0, stats: true) } }
        }
        return report
    }

    static func section(model: NativeModel, details: SourceDetails?, identification: InspectReport.Identification?,
                        provenance: Provenance?) -> InspectReport.ModelSection {
        let rows = LayerTable.rows(model: model, details: details)
        return InspectReport.ModelSection(
            card: model.card, cardText: CardText.sentence(model.card), identification: identification,
            provenance: provenance, signature: details?.signature, sourceNotes: details?.notes ?? [],
            layers: rows, totalParameters: LayerTable.totalParameters(rows))
    }

    /// The catalog entry of a file, by its bytes.
    static func identification(bytes: Data, sha: String) -> InspectReport.Identification? {
        guard let (m, match) = Catalog.identify(bytes: bytes, sha: sha) else { return nil }
        return .init(name: m.name, file: m.file, matchedBy: match == .sha256 ? .sha256 : .gitBlob)
    }

    /// The catalog entry a native file was converted from, by the SHA-256 its provenance records.
    static func identification(provenance: Provenance) -> InspectReport.Identification? {
        guard let m = Catalog.lookup(sha256: provenance.sha256) else { return nil }
        return .init(name: m.name, file: m.file, matchedBy: .provenance)
    }

    static func entry(_ t: Tensor, stats: Bool) -> InspectReport.TensorEntry {
        .init(name: t.name, dtype: t.dtype.rawValue, shape: t.shape, bytes: t.data.count, stats: stats ? TensorStats(t) : nil)
    }
}
