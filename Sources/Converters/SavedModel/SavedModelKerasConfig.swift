import Foundation
import Runtime

/// What a SavedModel's `keras_metadata.pb` says about the Keras model: the architecture (the
/// Keras config JSON of the `root` node), and for each layer that owns weights the checkpoint
/// prefix (`layer_with_weights-K`) under which `variables.index` stores them.
struct SavedModelKerasConfig {
    var architecture: KerasArchitecture
    /// Checkpoint prefix by layer name.
    var checkpointPrefixes: [String: String]

    /// Parses `keras_metadata.pb` bytes.
    init(metadata bytes: Data, limits: ReaderLimits) throws {
        let proto = try SavedModelProtobuf.decode(Keras_SavedMetadata.self, from: bytes, what: "keras_metadata.pb", limits: limits)
        guard let root = proto.nodes.first(where: { $0.nodePath == "root" }) else {
            throw ClipSafetyError.malformed("keras_metadata.pb: no node for the model ('root')")
        }
        architecture = try KerasArchitecture(json: Data(root.metadata.utf8), what: "keras_metadata.pb root", limits: limits)
        var prefixes: [String: String] = [:]
        for node in proto.nodes {
            let path = node.nodePath
            guard path.hasPrefix("root.layer_with_weights-"), !path.dropFirst(5).contains(".") else { continue }
            let meta = try JSONValue(parsing: Data(node.metadata.utf8), what: "keras_metadata.pb \(path)", limits: limits)
            guard let name = meta["name"]?.string else {
                throw ClipSafetyError.malformed("keras_metadata.pb: \(path) has no layer name")
            }
            guard prefixes.updateValue(String(path.dropFirst(5)), forKey: name) == nil else {
                throw ClipSafetyError.malformed("keras_metadata.pb: two checkpoint nodes name the layer '\(name)'")
            }
        }
        checkpointPrefixes = prefixes
    }
}
