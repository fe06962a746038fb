import Foundation
import Runtime

/// The formats clipsafety reads, identified from a file's bytes, never its extension.
public enum FileKind: String, Sendable, CaseIterable {
    case native = "clipsafety-native"
    case safetensors
    case savedModelZip = "savedmodel-zip"
    /// A SavedModel folder (`saved_model.pb` + `variables/`), read by `SavedModelFolder`.
    case savedModelFolder = "savedmodel-folder"
    case kerasV3 = "keras-v3"
    case kerasH5 = "keras-h5"
    /// An HDF5 file that holds no Keras model (described as its tree of objects).
    case hdf5
    case torchZip = "torch-zip"
    case torchLegacy = "torch-legacy"
    case npy
    case npz
    case onnx
    case zip

    /// What the kind is, in words for people.
    public var summary: String {
        switch self {
        case .native: return "clipsafety native model (safetensors)"
        case .safetensors: return "safetensors (not a clipsafety model)"
        case .savedModelZip: return "TensorFlow SavedModel in a zip"
        case .savedModelFolder: return "TensorFlow SavedModel folder"
        case .kerasV3: return "Keras 3 .keras archive"
        case .kerasH5: return "Keras HDF5 (.h5)"
        case .hdf5: return "HDF5 file (not a Keras model)"
        case .torchZip: return "PyTorch zip checkpoint (torch.save)"
        case .torchLegacy: return "PyTorch legacy checkpoint (pre-1.6)"
        case .npy: return "NumPy array (.npy)"
        case .npz: return "NumPy archive (.npz)"
        case .onnx: return "ONNX model (protobuf)"
        case .zip: return "zip archive of unknown content"
        }
    }
}

/// What identification may look at: the leading bytes, and for zips the member names.
public struct FileProbe: Sendable {
    public let bytes: Data
    /// Member names when the file is a readable zip; nil otherwise.
    public let zipMembers: [String]?

    init(bytes: Data, limits: ReaderLimits) throws {
        self.bytes = bytes
        let zip = bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) || bytes.starts(with: [0x50, 0x4B, 0x05, 0x06])
        zipMembers = zip ? try ZipArchive(bytes: bytes, limits: limits).entries.map(\.name) : nil
    }

    /// True when the bytes start with `magic`.
    public func starts(with magic: [UInt8]) -> Bool { bytes.starts(with: magic) }
}

/// One format's entry: how to recognise its bytes and how to describe them.
public struct FormatReader: Sendable {
    public let kind: FileKind
    public let matches: @Sendable (FileProbe) -> Bool
    public let describe: @Sendable (Data, ReaderLimits) throws -> FileDescription

    public init(kind: FileKind, matches: @escaping @Sendable (FileProbe) -> Bool,
                describe: @escaping @Sendable (Data, ReaderLimits) throws -> FileDescription) {
        self.kind = kind
        self.matches = matches
        self.describe = describe
    }
}

/// Every format reader, in the order identification tries them. A new format adds its folder
/// under Sources/Converters and one line here.
public enum FormatRegistry {
    public static let readers: [FormatReader] = [
        SafetensorsReader.native,
        SafetensorsReader.plain,
        KerasFormats.h5,
        NumPyReader.npy,
        TorchReader.legacy,
        KerasFormats.savedModel,
        KerasFormats.v3,
        TorchReader.zip,
        NumPyReader.npz,
        ONNXReader.reader,
        ZipReader.unknown,
    ]

    /// The kind of `bytes`, or throws `.unsupported` naming what the first bytes look like.
    public static func identify(_ bytes: Data, limits: ReaderLimits = .init()) throws -> FileKind {
        try reader(for: bytes, limits: limits).kind
    }

    /// Identifies `bytes` and describes them with their format's reader.
    public static func describe(_ bytes: Data, limits: ReaderLimits = .init()) throws -> FileDescription {
        try reader(for: bytes, limits: limits).describe(bytes, limits)
    }

    static func reader(for bytes: Data, limits: ReaderLimits) throws -> FormatReader {
        let probe = try FileProbe(bytes: bytes, limits: limits)
        if let r = readers.first(where: { $0.matches(probe) }) { return r }
        let head = bytes.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
        throw ClipSafetyError.unsupported("unrecognised file format (first bytes: \(head.isEmpty ? "none, the file is empty" : head))")
    }
}
