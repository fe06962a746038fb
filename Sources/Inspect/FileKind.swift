import Foundation
import Runtime
import Converters

/// The formats clipsafety reads, identified from a file's bytes, never its extension.
public enum FileKind: String, Sendable, CaseIterable {
    case native = "clipsafety-native"
    case safetensors
    case savedModelZip = "savedmodel-zip"
    case kerasV3 = "keras-v3"
    case kerasH5 = "keras-h5"
    case torchZip = "torch-zip"
    case torchLegacy = "torch-legacy"
    case npy
    case npz
    case zip

    /// What the kind is, in words for people.
    public var summary: String {
        switch self {
        case .native: return "clipsafety native model (safetensors)"
        case .safetensors: return "safetensors (not a clipsafety model)"
        case .savedModelZip: return "TensorFlow SavedModel in a zip (autokeras)"
        case .kerasV3: return "Keras 3 .keras archive"
        case .kerasH5: return "Keras HDF5 (.h5)"
        case .torchZip: return "PyTorch zip checkpoint (torch.save)"
        case .torchLegacy: return "PyTorch legacy checkpoint (pre-1.6)"
        case .npy: return "NumPy array (.npy)"
        case .npz: return "NumPy archive (.npz)"
        case .zip: return "zip archive of unknown content"
        }
    }
}

/// Identifies files by their leading bytes (and, for zips, their member names).
public enum FileSniffer {
    static let hdf5Magic: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]
    static let npyMagic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
    static let zipMagic: [UInt8] = [0x50, 0x4B, 0x03, 0x04]
    static let emptyZipMagic: [UInt8] = [0x50, 0x4B, 0x05, 0x06]
    /// Pickle protocol 2 header, then the LONG1 of torch's legacy magic number 0x1950a86a20f9469cfc6c.
    static let torchLegacyPrefix: [UInt8] = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]

    /// The kind of `bytes`, or throws `.unsupported` naming what the first bytes look like.
    public static func identify(_ bytes: Data, limits: ReaderLimits = .init()) throws -> FileKind {
        func starts(_ magic: [UInt8], at offset: Int = 0) -> Bool {
            bytes.count >= offset + magic.count && bytes.dropFirst(offset).prefix(magic.count).elementsEqual(magic)
        }
        if starts(hdf5Magic) { return .kerasH5 }
        if starts(npyMagic) { return .npy }
        if starts(torchLegacyPrefix) { return .torchLegacy }
        if starts(zipMagic) || starts(emptyZipMagic) { return try identifyZip(bytes, limits: limits) }
        if let kind = identifySafetensors(bytes) { return kind }
        let head = bytes.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
        throw ClipSafetyError.unsupported("unrecognised file format (first bytes: \(head.isEmpty ? "none, the file is empty" : head))")
    }

    static func identifyZip(_ bytes: Data, limits: ReaderLimits) throws -> FileKind {
        let names = try ZipArchive(bytes: bytes, limits: limits).entries.map(\.name)
        if names.contains(where: { $0.hasSuffix("saved_model.pb") }) { return .savedModelZip }
        if names.contains("config.json") && names.contains("model.weights.h5") { return .kerasV3 }
        if names.contains(where: { $0 == "data.pkl" || $0.hasSuffix("/data.pkl") }) { return .torchZip }
        if !names.isEmpty && names.allSatisfy({ $0.hasSuffix(".npy") }) { return .npz }
        return .zip
    }

    static func identifySafetensors(_ bytes: Data) -> FileKind? {
        var cursor = ByteCursor(bytes)
        guard let n = cursor.readInteger(UInt64.self, endianness: .little), n >= 2, n <= UInt64(cursor.remaining),
              cursor.peekBytes(1)?.first == UInt8(ascii: "{") else { return nil }
        let header = cursor.peekBytes(Int(n))!
        let tag = Data("\"format\":\"clipsafety/".utf8)
        return header.range(of: tag) != nil ? .native : .safetensors
    }
}
