import Foundation
import Runtime

/// Keras `.h5` and `.keras` files and TensorFlow SavedModel zips. (Interim: their readers do
/// not describe layers yet; `InterimHeads` converts them directly.)
enum KerasFormats {
    static let h5 = FormatReader(kind: .kerasH5, matches: { $0.starts(with: [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]) },
                                 describe: { _, _ in FileDescription(format: .kerasH5) })
    static let v3 = FormatReader(kind: .kerasV3, matches: { probe in
        guard let names = probe.zipMembers else { return false }
        return names.contains("config.json") || names.contains("model.weights.h5")
    }, describe: { _, _ in FileDescription(format: .kerasV3) })
    static let savedModel = FormatReader(kind: .savedModelZip, matches: { probe in
        probe.zipMembers?.contains {
            $0.hasSuffix("saved_model.pb") || $0.hasSuffix("keras_metadata.pb") || $0.hasSuffix("variables/variables.index")
        } == true
    }, describe: { bytes, limits in
        FileDescription(format: .savedModelZip, signatures: [try SavedModelConverter.signature(bytes: bytes, limits: limits)].compactMap { $0 })
    })

    /// The head of a Keras-family file, or nil for other formats.
    static func interimHead(_ kind: FileKind, bytes: Data, limits: ReaderLimits) throws -> RecognisedHead? {
        switch kind {
        case .kerasH5: return try KerasH5Converter.head(bytes: bytes, limits: limits)
        case .kerasV3: return try KerasV3Converter.head(bytes: bytes, limits: limits)
        case .savedModelZip: return try SavedModelConverter.head(bytes: bytes, limits: limits)
        default: return nil
        }
    }
}
