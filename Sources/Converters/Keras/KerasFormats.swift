import Foundation
import Runtime

/// Keras `.h5` and `.keras` files and TensorFlow SavedModel zips: the formats that store a
/// Keras architecture beside the weights.
enum KerasFormats {
    static let h5 = FormatReader(kind: .kerasH5, matches: { $0.starts(with: [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]) },
                                 describe: KerasH5Reader.describe)
    static let v3 = FormatReader(kind: .kerasV3, matches: { probe in
        guard let names = probe.zipMembers else { return false }
        return names.contains("config.json") || names.contains("model.weights.h5")
    }, describe: KerasV3Reader.describe)
    static let savedModel = FormatReader(kind: .savedModelZip, matches: { probe in
        probe.zipMembers?.contains {
            $0.hasSuffix("saved_model.pb") || $0.hasSuffix("keras_metadata.pb") || $0.hasSuffix("variables/variables.index")
        } == true
    }, describe: SavedModelReader.describe)
}
