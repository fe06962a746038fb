import Converters
import Foundation
import Runtime

/// Everything `inspect` reports about one file; `--json` prints it as documented in
/// docs/INSPECT-JSON.md (schema `clipsafety-inspect/2`). Absent values are `null`, never
/// missing keys, so consumers can rely on the shape.
public struct InspectReport: Encodable, Sendable {
    public static let schemaID = "clipsafety-inspect/2"

    public var file: FileInfo
    public var format: FormatInfo
    /// The safety head the file is or converts to; nil for every other file.
    public var model: ModelSection?
    /// Why a model file does not convert (an unrecognised state dict, a model that is not one
    /// chain); nil when it converts or is not a model format.
    public var modelProblem: String?
    /// What the format reader found, for any file.
    public var structure: StructureReport?
    /// Every stored tensor or array, from the headers; statistics only with `--stats`.
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
        /// Nil when the element type's size is unknown or the shape overflows.
        public var bytes: Int?
        /// Nil unless statistics were asked for (`--stats`).
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

    enum CodingKeys: String, CodingKey {
        case schema, file, format, model, structure, tensors
        case modelProblem = "model_problem"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.schemaID, forKey: .schema)
        try c.encode(file, forKey: .file)
        try c.encode(format, forKey: .format)
        try c.encode(model, forKey: .model)
        try c.encode(modelProblem, forKey: .modelProblem)
        try c.encode(structure, forKey: .structure)
        try c.encode(tensors, forKey: .tensors)
    }

    /// Sorted keys, two-space indentation, `/` not escaped.
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

/// Builds an `InspectReport` from a file: identifies the format from the bytes, describes
/// it with its format's reader (headers only), and converts model formats in memory to show
/// the head they are (never running them). Tensor data is read only for statistics.
public enum FileSummary {
    public struct Options: Sendable {
        /// Compute statistics of every stored tensor (one streaming pass each): `--stats`.
        public var tensors: Bool
        public var limits: ReaderLimits
        public init(tensors: Bool = false, limits: ReaderLimits = .init()) {
            self.tensors = tensors
            self.limits = limits
        }
    }

    /// Maps the file without reading it: an `.npy` of any size is described from its header;
    /// other formats keep the file-size limit. The checksum is streamed, not mapped.
    public static func inspect(path: String, options: Options = .init()) throws -> InspectReport {
        if SavedModelFolder.isFolder(path) { return try inspect(folder: path, options: options) }
        let bytes = try MappedFile.map(path, maxBytes: .max)
        if bytes.count > options.limits.maxFileBytes, !bytes.starts(with: [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]) {
            throw ClipSafetyError.limitExceeded("file of \(bytes.count) bytes exceeds the limit of \(options.limits.maxFileBytes) (raise with --max-file-bytes)")
        }
        return try inspect(bytes: bytes, path: path, sha: try sha256Hex(path: path), options: options)
    }

    public static func inspect(bytes: Data, path: String, options: Options = .init()) throws -> InspectReport {
        try inspect(bytes: bytes, path: path, sha: sha256Hex(bytes), options: options)
    }

    static func inspect(bytes: Data, path: String, sha: String, options: Options) throws -> InspectReport {
        // The reader may narrow the kind its bytes suggested (an HDF5 file with no Keras model):
        // `description.format` decides what is tried.
        let description = try FormatRegistry.describe(bytes, limits: options.limits)
        var report = try structure(description, path: path, bytes: bytes.count, sha: sha, options: options)
        try addModel(to: &report, description: description, bytes: bytes, sha: sha, path: path, limits: options.limits)
        return report
    }

    /// A SavedModel folder: `file.bytes` counts the members read, `file.sha256` is the folder
    /// digest (`SavedModelFolder.sha256`).
    static func inspect(folder path: String, options: Options) throws -> InspectReport {
        let folder = try SavedModelFolder(path: path, limits: options.limits)
        let description = try folder.describe(limits: options.limits)
        var report = try structure(description, path: path, bytes: folder.byteCount, sha: folder.sha256, options: options)
        let conversion = ConversionOptions(fileName: path, limits: options.limits)
        try addConversion(to: &report, identification: nil) {
            try ModelLoader.convert(folder: folder, described: description, options: conversion)
        }
        return report
    }

    /// The report of what the reader found (structure and tensors), before any conversion.
    static func structure(_ description: FileDescription, path: String, bytes: Int, sha: String, options: Options) throws -> InspectReport {
        let kind = description.format
        var report = InspectReport(
            file: .init(path: path, bytes: bytes, sha256: sha),
            format: .init(id: kind.rawValue, description: kind.summary, convertedInMemory: false),
            model: nil, modelProblem: nil, structure: StructureReport(description), tensors: nil)
        report.tensors = try description.tensors.map { t in
            var e = entry(t, name: kind == .npy ? CardPolicy.baseName(path) : t.name)
            // Strings, vocabularies and F8 have no statistics.
            if options.tensors, t.isFloatingPoint {
                e.stats = TensorStats(try t.read())
            } else if options.tensors, DType(rawValue: t.dtype) != nil {
                e.stats = (try? t.read()).map(TensorStats.init)  // integers: where the reader gives them
            }
            return e
        }
        return report
    }

    /// The head a model file is or converts to; a conversion that fails because the file is
    /// not such a head is recorded as `model_problem`, not thrown: the structure still stands.
    static func addModel(to report: inout InspectReport, description: FileDescription, bytes: Data, sha: String, path: String,
                         limits: ReaderLimits) throws {
        let conversion = ConversionOptions(fileName: path, limits: limits)
        switch description.format {
        case .native:
            let model = try ModelLoader.convert(bytes: bytes, options: conversion).model
            report.model = section(model: model, details: nil, identification: identification(provenance: model.source), provenance: model.source)
        case .npz, .zip, .hdf5:
            return
        case .npy:
            // A bare matrix is a model only when the catalog knows it as a prompt matrix.
            // Prompt matrices are a few KiB: a large shard is not hashed again for the catalog.
            guard bytes.count <= 64 << 20, let known = identification(bytes: bytes, sha: sha),
                  Catalog.models.first(where: { $0.name == known.name })?.task == .promptClassifier else { return }
            let converted = try ModelLoader.convert(bytes: bytes, described: description, options: conversion)
            report.model = section(model: converted.model, details: converted.details, identification: known, provenance: nil)
            report.format.convertedInMemory = true
        default:
            try addConversion(to: &report, identification: identification(bytes: bytes, sha: sha)) {
                try ModelLoader.convert(bytes: bytes, described: description, options: conversion)
            }
        }
    }

    /// Converts in memory for the model section; a file that is no head gets `model_problem`.
    static func addConversion(to report: inout InspectReport, identification: InspectReport.Identification?,
                              _ convert: () throws -> Conversion) throws {
        do {
            let converted = try convert()
            report.format.convertedInMemory = true
            report.model = section(model: converted.model, details: converted.details, identification: identification, provenance: nil)
        } catch let e as ClipSafetyError where [.unsupported, .mismatch, .usage].contains(e.kind) {
            report.modelProblem = e.message
        }
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

    static func entry(_ t: DescribedTensor, name: String) -> InspectReport.TensorEntry {
        let bytes = t.elementCount.flatMap { n in StructureReport.elementSize(t.dtype).map { n * $0 } }
        return .init(name: name, dtype: t.dtype, shape: t.shape, bytes: bytes, stats: nil)
    }
}
