import Core
import Foundation

/// A clipsafety native model: a safetensors file whose `__metadata__` carries the format
/// version, the graph, the model card and the provenance (docs/FORMAT.md).
public struct NativeModel: Sendable, Equatable {
    /// The format major version this code reads and writes.
    public static let formatMajor = 1
    public static let formatTag = "clipsafety/\(formatMajor)"

    public var card: ModelCard
    public var source: Provenance
    public var graph: [GraphOp]
    public var tensors: [Tensor]

    public init(card: ModelCard, source: Provenance, graph: [GraphOp], tensors: [Tensor]) {
        self.card = card
        self.source = source
        self.graph = graph
        self.tensors = tensors
    }

    public func tensor(named name: String) -> Tensor? { tensors.first { $0.name == name } }

    /// Loads a native file from disk (memory-mapped; tensor data is not copied).
    public init(contentsOf path: String, limits: SafetensorsLimits = .init()) throws {
        try self.init(bytes: try MappedFile.map(path), limits: limits)
    }

    /// Parses a native file from bytes.
    public init(bytes: Data, limits: SafetensorsLimits = .init()) throws {
        let file = try SafetensorsFile(bytes: bytes, limits: limits)
        guard let format = file.metadata["format"] else {
            throw ClipSafetyError.malformed("not a clipsafety model: safetensors __metadata__ has no 'format' key")
        }
        try Self.checkFormatVersion(format)
        self.card = try Self.decodeJSON(ModelCard.self, file.metadata["model"], key: "model")
        self.source = try Self.decodeJSON(Provenance.self, file.metadata["source"], key: "source")
        self.graph = try Self.decodeJSON([GraphOp].self, file.metadata["graph"], key: "graph")
        self.tensors = file.tensors
    }

    /// Accepts `clipsafety/<major>[.<minor>]` with a major this reader knows.
    static func checkFormatVersion(_ format: String) throws {
        let prefix = "clipsafety/"
        guard format.hasPrefix(prefix) else {
            throw ClipSafetyError.malformed("not a clipsafety model: format is '\(format)'")
        }
        let version = format.dropFirst(prefix.count)
        let majorText = version.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard let major = Int(majorText), major >= 1 else {
            throw ClipSafetyError.malformed("format version '\(version)' is not a number")
        }
        guard major <= formatMajor else {
            throw ClipSafetyError.unsupported("format \(format) is newer than this clipsafety reads (clipsafety/\(formatMajor)); upgrade clipsafety")
        }
    }

    private static func decodeJSON<T: Decodable>(_: T.Type, _ text: String?, key: String) throws -> T {
        guard let text else { throw ClipSafetyError.malformed("__metadata__ has no '\(key)' key") }
        do {
            return try JSONDecoder().decode(T.self, from: Data(text.utf8))
        } catch let e as ClipSafetyError {
            throw e
        } catch let DecodingError.keyNotFound(k, ctx) {
            throw ClipSafetyError.malformed("__metadata__ '\(key)': missing field '\(k.stringValue)'\(Self.path(ctx.codingPath))")
        } catch let DecodingError.typeMismatch(_, ctx), let DecodingError.valueNotFound(_, ctx) {
            throw ClipSafetyError.malformed("__metadata__ '\(key)': wrong type\(Self.path(ctx.codingPath))")
        } catch let DecodingError.dataCorrupted(ctx) {
            throw ClipSafetyError.malformed("__metadata__ '\(key)': \(ctx.debugDescription)\(Self.path(ctx.codingPath))")
        } catch {
            throw ClipSafetyError.malformed("__metadata__ '\(key)' is not valid JSON")
        }
    }

    private static func path(_ p: [CodingKey]) -> String {
        p.isEmpty ? "" : " at " + p.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
    }

    /// The metadata strings exactly as written (sorted-key JSON, no escaped slashes).
    public func metadata() throws -> [String: String] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        func s<T: Encodable>(_ v: T) throws -> String { String(decoding: try enc.encode(v), as: UTF8.self) }
        return [
            "format": Self.formatTag,
            "model": try s(card),
            "source": try s(source),
            "graph": try s(graph),
        ]
    }

    /// The bytes of the native file (deterministic; see `SafetensorsFile.serialized`).
    public func serialized() throws -> Data {
        try SafetensorsFile(metadata: try metadata(), tensors: tensors).serialized()
    }

    /// Writes atomically: a temporary file in the same folder, then a rename, so `path`
    /// appears only when the whole file is written. Tensors are streamed, not copied.
    public func write(to path: String) throws {
        let file = SafetensorsFile(metadata: try metadata(), tensors: tensors)
        try AtomicFile.write(to: path) { try file.write(to: $0) }
    }
}
